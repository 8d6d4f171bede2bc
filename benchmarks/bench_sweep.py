"""Sweeps: worker scaling, what the pruner saves, what tracking costs per trial, side by side in one run.

1. **Workers** - ``bpexp sweep experiments/digits-sweep.yaml --n-trials 40`` with 1 and with
   2 workers (the real CLI, end to end: start-up, trials, the best model's pyfunc copy and
   the study plots; fresh Optuna journal and MLflow sqlite store each time,
   interleaved 1, 2, 1, 2, ...): wall time, and epochs trained per second (the two
   sweeps sample differently, so the work differs a little). Then the same with
   ``pruner: none``, whose longer trials make the fixed start-up and finish weigh less.
   Target: >= 1.6x on 2 cores.
2. **Pruning** - the same 40-trial sweep, 1 worker, same seed, default pruner
   (hyperband) vs ``pruner: none``: total epochs trained and best validation
   accuracy. Target: >= 40 % fewer epochs, best value within 0.5 percentage points.
3. **Tracking cost per trial** - identical trials (same enqueued params, same seed,
   pruner none), interleaved: the sweep's objective (a child MLflow run with params,
   dataset, per-epoch metrics, model folder, tags) vs the same training and Optuna
   reporting without MLflow. Target: <= 50 ms per trial.

The machine is shared: absolute times drift, so medians and same-run ratios are printed.

Run:  .venv/bin/python benchmarks/bench_sweep.py [--trials 40] [--reps 2] [--cost-trials 30]
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
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BPEXP = str(Path(sys.executable).with_name("bpexp"))
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
ENV.pop("MLFLOW_TRACKING_URI", None)


def fresh_store(root: Path, name: str) -> str:
    """A new, already migrated sqlite store (migration time is not sweep time)."""
    from bpexp.tracking import connect

    uri = f"sqlite:///{root / name / 'mlflow.db'}"
    connect(uri)
    return uri


def run_sweep(project: Path, root: Path, tag: str, trials: int, workers: int, *extra: str) -> dict:
    """One CLI sweep on its own stores; wall time and the parent run's summary metrics."""
    from mlflow import MlflowClient

    uri = fresh_store(root, tag)
    journal = root / f"{tag}.journal.log"
    cmd = [BPEXP, "sweep", str(project / "experiments" / "digits-sweep.yaml"), "--n-trials", str(trials),
           "--workers", str(workers), "--storage", str(journal), "--tracking-uri", uri, "--no-progress", *extra]
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=project, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"sweep failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("digits-sweep")
    parent = [r for r in client.search_runs([exp.experiment_id]) if "bpexp.trial_number" not in r.data.tags][0]
    m = parent.data.metrics
    trials = open_study(str(journal)).trials
    phase = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    return {"wall": wall, "phase": phase, "epochs": m["total_epochs"], "best": m["best_value"], "pruned": m["n_pruned"]}


def open_study(journal: str):
    import optuna

    from bpexp.tuning.storage import open_storage

    return optuna.load_study(study_name="digits-sweep", storage=open_storage(journal))


# ------------------------------------------------------------------------------ the machine's ceiling
CEILING_CODE = """
import sys, time
import bpexp
from threadpoolctl import threadpool_limits
threadpool_limits(1, user_api="blas")  # as sweep workers do (after NumPy is loaded, or it has no effect)
from bpexp.config import load_experiment
from bpexp.runner import build_model, fit_options, load_data
cfg, base = load_experiment(sys.argv[1], {"training.epochs": 60, "training.early_stopping": None})
dataset, parts = load_data(cfg, base)
model = build_model(cfg, dataset)
t = time.perf_counter()
bpexp.fit(model, parts.X_train, parts.y_train, validation_data=(parts.X_val, parts.y_val), **fit_options(cfg))
print(time.perf_counter() - t)
"""


def ceiling(project: Path, reps: int) -> float:
    """Throughput of 2 processes training at once vs 1 alone (no tracking, no Optuna): what 2 cores give."""
    cmd = [sys.executable, "-c", CEILING_CODE, str(project / "experiments" / "digits.yaml")]
    ratios = []
    for _ in range(reps):
        alone = float(subprocess.run(cmd, capture_output=True, text=True, env=ENV, check=True).stdout)
        pair = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
        together = max(float(p.communicate()[0]) for p in pair)
        ratios.append(2 * alone / together)
    return statistics.median(ratios)


# ------------------------------------------------------------------------------ tracking cost
def tracking_cost(project: Path, root: Path, n_trials: int) -> tuple[list[float], list[float]]:
    """Per-trial seconds with and without MLflow for identical trials, interleaved."""
    import optuna

    from bpexp.config import load_sweep
    from bpexp.tracking import connect, get_or_create_experiment, metric_sink
    from bpexp.tuning.objective import Objective, TrialSetup
    from bpexp.tuning.space import suggest
    from bpexp.tuning.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = load_sweep(project / "experiments" / "digits-sweep.yaml", {"pruner": "none"})
    # One BLAS thread in both: the thread probe at each fit's start otherwise picks 1 or 2 threads by
    # what the other core is doing at that moment, a +-100 ms swing per trial that hides the cost.
    sweep.base_data["training"]["threads"] = 1
    uri = fresh_store(root, "cost")
    client = connect(uri)
    exp_id = get_or_create_experiment(client, "cost", uri)
    parent = client.create_run(exp_id, run_name="cost").info.run_id
    sampled = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    params = []
    for _ in range(n_trials):
        t = sampled.ask()
        suggest(t, sweep.space)
        params.append(t.params)
        sampled.tell(t, 0.0)

    def study(name: str):
        storage = open_storage(str(root / f"{name}.journal.log"))
        s = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                pruner=optuna.pruners.NopPruner())
        for p in params:
            s.enqueue_trial(p)
        return s

    tracked, plain = study("tracked"), study("plain")
    setup = TrialSetup(sweep, "val_accuracy", "maximize", uri, "cost", exp_id, parent, "", "tracked")
    untracked = UntrackedObjective(sweep)
    with_t, without_t = [], []
    with metric_sink(uri) as sink:  # one sink for the worker's trials, as a sweep worker opens it
        objective = Objective(setup, sink)
        objective(_warm_trial(optuna, sweep))  # the first trial warms the sink's helper and caches
        for i in range(n_trials):
            pair = ((tracked, objective, with_t), (plain, untracked, without_t))
            for s, f, out in pair if i % 2 == 0 else pair[::-1]:  # either goes first: drift cancels
                t = time.perf_counter()
                s.optimize(f, n_trials=1)
                out.append(time.perf_counter() - t)
    return with_t, without_t


def _warm_trial(optuna, sweep):
    s = optuna.create_study(direction="maximize")
    return s.ask()


class UntrackedObjective:
    """The sweep objective's training and Optuna reporting, without MLflow."""

    def __init__(self, sweep):
        self.sweep = sweep

    def __call__(self, trial) -> float:
        from bpexp import evaluate, fit
        from bpexp.config import load_experiment
        from bpexp.runner import build_model, fit_options, load_data, training_callbacks
        from bpexp.tuning.objective import PruningCallback
        from bpexp.tuning.space import suggest

        cfg, base = load_experiment(self.sweep.base_data, suggest(trial, self.sweep.space))
        dataset, parts = load_data(cfg, base)
        model = build_model(cfg, dataset)
        callbacks = [*training_callbacks(cfg), PruningCallback(trial, "val_accuracy")]
        fit(model, parts.X_train, parts.y_train, validation_data=(parts.X_val, parts.y_val), callbacks=callbacks,
            **fit_options(cfg))
        return float(evaluate(model, parts.X_val, parts.y_val)["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--reps", type=int, default=2, help="repetitions of each worker count")
    parser.add_argument("--cost-trials", type=int, default=30)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from bpexp.cli.common import quiet_mlflow_logs

    quiet_mlflow_logs()

    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        project = root / "project"
        shutil.copytree(REPO / "experiments", project / "experiments")
        print(f"digits sweep, {args.trials} trials, {os.cpu_count()} cores; {args.reps} runs per worker count, "
              "interleaved\n")
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for rep in range(args.reps):
            for workers in (1, 2):
                r = run_sweep(project, root, f"w{workers}-{rep}", args.trials, workers)
                runs[workers].append(r)
                print(f"  {workers} worker(s), run {rep + 1}: {r['wall']:6.1f} s (trials {r['phase']:5.1f} s)  "
                      f"{r['epochs']:5.0f} epochs  best {r['best']:.4f}  pruned {r['pruned']:.0f}")
        nopruner = run_sweep(project, root, "nopruner", args.trials, 1, "--set", "pruner=none")
        nopruner2 = run_sweep(project, root, "nopruner-w2", args.trials, 2, "--set", "pruner=none")
        print(f"  without pruning: 1 worker {nopruner['wall']:6.1f} s ({nopruner['epochs']:.0f} epochs), "
              f"2 workers {nopruner2['wall']:6.1f} s ({nopruner2['epochs']:.0f} epochs)")

        limit = ceiling(project, args.reps + 1)

        one, two = runs[1], runs[2]

        def med(rs, f):
            return statistics.median(f(r) for r in rs)

        wall1, wall2 = med(one, lambda r: r["wall"]), med(two, lambda r: r["wall"])
        phase1, phase2 = med(one, lambda r: r["phase"]), med(two, lambda r: r["phase"])
        rate1, rate2 = med(one, lambda r: r["epochs"] / r["phase"]), med(two, lambda r: r["epochs"] / r["phase"])
        print("\n1. workers (medians)                1 worker    2 workers    speed-up   target")
        print(f"   wall time, end to end            {wall1:7.1f} s  {wall2:8.1f} s    {wall1 / wall2:5.2f}x    >= 1.6x")
        print(f"   trials phase (first start..last end) {phase1:5.1f} s  {phase2:8.1f} s    {phase1 / phase2:5.2f}x")
        print(f"   epochs per second in that phase  {rate1:9.1f}  {rate2:10.1f}    {rate2 / rate1:5.2f}x")
        print(f"   ceiling: plain NumPy training, 2 processes vs 1 (no MLflow, no Optuna)      {limit:5.2f}x")
        print("   the same 40 trials without the pruner (longer trials; the fixed start-up and end of a sweep,")
        print("   ~5 s of imports, plots and the best model's pyfunc copy, weigh less):")
        w1, w2 = nopruner["wall"], nopruner2["wall"]
        print(f"   wall time, end to end            {w1:7.1f} s  {w2:8.1f} s    {w1 / w2:5.2f}x    >= 1.6x")
        r1, r2 = nopruner["epochs"] / nopruner["phase"], nopruner2["epochs"] / nopruner2["phase"]
        print(f"   epochs per second in the trials phase {r1:6.1f}  {r2:10.1f}    {r2 / r1:5.2f}x")

        pruned = one[0]  # 1 worker, default pruner, same seed as the no-pruner run (deterministic)
        saved = 1 - pruned["epochs"] / nopruner["epochs"]
        gap = (nopruner["best"] - pruned["best"]) * 100
        print("\n2. pruning (1 worker, seed 0)   hyperband   no pruner    change     target")
        print(f"   epochs trained               {pruned['epochs']:9.0f}  {nopruner['epochs']:10.0f}    "
              f"{-saved * 100:+5.1f} %    <= -40 %")
        print(f"   best val_accuracy            {pruned['best']:9.4f}  {nopruner['best']:10.4f}    "
              f"{-gap:+5.2f} pp   within 0.5 pp")

        with_t, without_t = tracking_cost(project, root, args.cost_trials)
        med_with, med_without = statistics.median(with_t), statistics.median(without_t)
        diffs = [a - b for a, b in zip(with_t, without_t)]
        paired = statistics.median(diffs)
        q1, _, q3 = statistics.quantiles(diffs, n=4)
        print(f"\n3. tracking cost per trial ({args.cost_trials} identical trial pairs, interleaved, medians)")
        print(f"   with MLflow {med_with * 1000:7.1f} ms   without {med_without * 1000:7.1f} ms   "
              f"cost {paired * 1000:6.1f} ms (median of pair differences; quartiles {q1 * 1000:.0f} to "
              f"{q3 * 1000:.0f} ms: a trial's training alone swings that much)   target <= 50 ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
