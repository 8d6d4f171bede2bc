"""What a user waits for: ``bpexp train experiments/digits.yaml`` end to end, against a plain script.

Each repetition runs, interleaved, as fresh processes (imports included):

* train   - ``bpexp train experiments/digits.yaml --no-progress`` on an existing embedded
            sqlite store (a first, untimed run creates it);
* plain   - a script that loads the same data (``bpexp.runner.load_data``: digits, the same
            split and standardization) and fits the same model with the same options
            (100 epochs, Adam, early stopping) and nothing else: no store, no plots, no model;
* new     - ``bpexp train`` on a brand-new store (MLflow creates its tables once per store).

Target (issue 11): train <= 2.0x plain (medians). Medians and ranges are printed; on a shared
machine absolute times drift but same-run ratios hold.

Run:  .venv/bin/python benchmarks/bench_command.py [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BPEXP = str(Path(sys.executable).with_name("bpexp"))
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
TARGET = 2.0

PLAIN = """
import sys
import bpexp
from bpexp.config import load_experiment
from bpexp.runner import build_model, fit_options, load_data, training_callbacks
cfg, base = load_experiment(sys.argv[1])
dataset, parts = load_data(cfg, base)
model = build_model(cfg, dataset)
history = bpexp.fit(model, parts.X_train, parts.y_train, validation_data=(parts.X_val, parts.y_val),
                    callbacks=training_callbacks(cfg), **fit_options(cfg))
print(len(history), "epochs")
print((model.predict(parts.X_test) == parts.y_test).mean())
"""


def timed(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return wall


def project_copy(root: Path, name: str) -> Path:
    """A project folder with the shipped experiments and its own (not yet created) store."""
    folder = root / name
    shutil.copytree(REPO / "experiments", folder / "experiments")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    train = [BPEXP, "train", "experiments/digits.yaml", "--no-progress"]
    plain = [sys.executable, "-c", PLAIN, "experiments/digits.yaml"]
    times: dict[str, list[float]] = {"train": [], "plain": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        existing = project_copy(Path(tmp), "existing")
        timed(train, existing)  # creates the store: not timed
        for rep in range(args.reps):
            times["train"].append(timed(train, existing))
            times["plain"].append(timed(plain, existing))
            times["new"].append(timed(train, project_copy(Path(tmp), f"new-{rep}")))
            print(f"  rep {rep + 1}: " + "  ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("median (range) seconds: " + "  ".join(
        f"{k} {med[k]:.2f} ({min(v):.2f}-{max(v):.2f})" for k, v in times.items()))
    ratios = sorted(t / p for t, p in zip(times["train"], times["plain"]))
    ratio = med["train"] / med["plain"]
    verdict = "OK" if ratio <= TARGET else f"MISSED by {ratio / TARGET - 1:.0%}"
    print(f"bpexp train / plain script = {ratio:.2f}x (per-rep range {ratios[0]:.2f}-{ratios[-1]:.2f}; "
          f"target <= {TARGET})  {verdict}")
    print(f"a brand-new store adds {med['new'] - med['train']:.2f} s once")


if __name__ == "__main__":
    main()
