"""What a user waits for: ``bpexp train experiments/digits.yaml`` end to end, against a plain script.

Each repetition runs, interleaved, as fresh processes (imports included):

* train   - ``bpexp train experiments/digits.yaml --no-progress`` on an existing embedded
            sqlite store (a first, untimed run creates it);
* plain   - a script that loads the same data (``bpexp.runner.load_data``: digits, the same
            split and standardization) and fits the same model with the same options
            (100 epochs, Adam, early stopping) and nothing else: no store, no plots, no model;
* new     - ``bpexp train`` on a brand-new store (MLflow creates its tables once per store).

Then the same ``train`` / ``plain`` pair on a real-sized table (``--table-rows``, default
10^6; 0 skips it): bench_data.py's table (20 float columns, two with blanks, two string
columns, an integer label) as Parquet, 2 epochs of a 60-64-3 MLP, batch 256. No target
of its own; it shows what bpexp adds around training when the data are large (it found
MLflow inferring the dataset schema value by value: 15 s of a 22 s command).

Target (issue 11): train <= 2.0x plain (medians), digits. Medians and ranges are printed; on a shared
machine absolute times drift but same-run ratios hold.

Run:  .venv/bin/python benchmarks/bench_command.py [--reps 5] [--table-rows 1000000]
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
from bpexp.runner import build_model, fit_options, load_data, table_encoder, training_callbacks
cfg, base = load_experiment(sys.argv[1])
dataset, parts = load_data(cfg, base)
model = build_model(cfg, dataset, table_encoder(cfg, base))  # a table's encoder, or None for plain arrays
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


TABLE_CONFIG = """dataset:
  name: table.parquet
  target: label
seed: 0
model:
  hidden: [64]
optimizer:
  name: adam
  lr: 0.001
training:
  epochs: 2
  batch_size: 256
tracking:
  experiment: table
"""


def time_table(rows: int, reps: int) -> None:
    """``bpexp train`` vs the plain script on a generated table of ``rows`` rows (Parquet)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_data import make_table

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_table(rows).to_parquet(folder / "table.parquet", index=False)
        (folder / "table.yaml").write_text(TABLE_CONFIG)
        train = [BPEXP, "train", "table.yaml", "--no-progress"]
        plain = [sys.executable, "-c", PLAIN, "table.yaml"]
        timed(train, folder)  # creates the store: not timed
        times: dict[str, list[float]] = {"train": [], "plain": []}
        for rep in range(reps):
            for name in (("train", "plain") if rep % 2 == 0 else ("plain", "train")):
                times[name].append(timed(train if name == "train" else plain, folder))
            print(f"  table rep {rep + 1}: " + "  ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = sorted(t / p for t, p in zip(times["train"], times["plain"]))
    print(f"{rows:,}-row table: bpexp train {med['train']:.2f} s ({min(times['train']):.2f}-{max(times['train']):.2f})"
          f" vs plain script {med['plain']:.2f} s ({min(times['plain']):.2f}-{max(times['plain']):.2f}) = "
          f"{med['train'] / med['plain']:.2f}x (per-rep range {ratios[0]:.2f}-{ratios[-1]:.2f}; no target)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--table-rows", type=int, default=1_000_000, help="rows of the table run (0: skip it)")
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
    if args.table_rows:
        time_table(args.table_rows, args.reps)


if __name__ == "__main__":
    main()
