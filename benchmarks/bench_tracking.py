"""Cost of MLflow tracking on a 100-epoch digits training, measured side by side in one run.

Each repetition trains the same model (experiments/digits.yaml, exactly 100 epochs,
no early stopping) four ways, interleaved (plain and tracked back to back, their order
alternating from one repetition to the next):

* plain     - ``bpexp.fit`` with no callbacks;
* tracked   - what ``bpexp train`` does around training: create the MLflow run, log
              the params, train with the MLflow logger callback (every per-epoch
              metric, ~14 a epoch, handed to the run's metric sink: a helper process
              that writes on the other core), flush and end the run. Plots and the
              model, logged once after training, are timed separately below;
* inline    - the same with the in-process sink (``open_sink(helper=False)``, what sweep
              workers on every core use): one ``log_batch`` a second and at the end, from
              the training process, no helper;
* per-epoch - the naive alternative for comparison: ``MlflowClient.log_batch`` of
              each epoch's metrics from the training process.

The store is a fresh sqlite database in a temp folder (the embedded default).
Target (issues #3, #11): tracked overhead <= 5% of wall time; the simpler in-process sink
would replace the helper if it met that target too.

Run:  .venv/bin/python benchmarks/bench_tracking.py [--reps 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import bpexp  # noqa: E402
from bpexp.config import load_experiment  # noqa: E402
from bpexp.runner import build_model, fit_options, load_data  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class PerEpochLogBatch(bpexp.Callback):
    """Synchronous ``log_batch`` after every epoch (what the writer process avoids)."""

    def __init__(self, client, run_id):
        self.client, self.run_id = client, run_id

    def on_epoch_end(self, epoch, logs):
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), ts, epoch) for k, v in logs.items()
                                                    if k != "epoch"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()

    from bpexp.tracking import TrackedRun, connect, get_or_create_experiment, open_sink

    config, base = load_experiment(REPO / "experiments" / "digits.yaml",
                                   {"training.epochs": 100, "training.early_stopping": None,
                                    # One BLAS thread in every variant: the thread probe at a fit's start picks 1
                                    # or 2 by what the other core does at that moment, a swing of +-10 % of the
                                    # fit that has nothing to do with tracking (it once made plain slower).
                                    "training.threads": 1})
    dataset, parts = load_data(config, base)
    options = fit_options(config)
    tmp = tempfile.mkdtemp(prefix="bpexp-bench-tracking-")
    uri = f"sqlite:///{tmp}/mlruns/mlflow.db"
    client = connect(uri)
    experiment_id = get_or_create_experiment(client, "bench-tracking", uri)
    helper, inline = open_sink(uri), open_sink(uri, helper=False)  # each reused by every run, as a sweep does

    def train(callbacks):
        model = build_model(config, dataset)
        return bpexp.fit(model, parts.X_train, parts.y_train, validation_data=(parts.X_val, parts.y_val),
                         callbacks=callbacks, **options), model

    def plain():
        t = time.perf_counter()
        train([])
        return time.perf_counter() - t

    def tracked(sink):
        t = time.perf_counter()
        run = TrackedRun(client, uri, experiment_id, sink, tags={"bench": "tracked"})
        run.log_params(config.flat())
        history, model = train([run.callback()])
        run.end("FINISHED")
        elapsed = time.perf_counter() - t
        n = sum(len(client.get_metric_history(run.run_id, k)) for k in history[-1] if k != "epoch")
        assert n == 100 * (len(history[-1]) - 1), "a metric is missing"
        return elapsed, run, model

    def per_epoch():
        t = time.perf_counter()
        run = client.create_run(experiment_id)
        train([PerEpochLogBatch(client, run.info.run_id)])
        client.set_terminated(run.info.run_id)
        return time.perf_counter() - t

    tracked(helper), tracked(inline)  # warm-up: imports, the sinks' first connections, caches
    times: dict[str, list[float]] = {"plain": [], "tracked": [], "inline": [], "per-epoch": []}
    last_run = last_model = None
    for rep in range(args.reps):
        # plain and tracked back to back, in alternating order: each follows the other as often as not
        for name in (("plain", "tracked") if rep % 2 == 0 else ("tracked", "plain")):
            if name == "plain":
                times["plain"].append(plain())
            else:
                elapsed, last_run, last_model = tracked(helper)
                times["tracked"].append(elapsed)
        times["inline"].append(tracked(inline)[0])
        times["per-epoch"].append(per_epoch())
        print(f"  rep {rep + 1}: " + "  ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()), flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    n_metrics = 100 * 14
    print(f"\n100 epochs of digits {config.model.hidden}, batch {config.training.batch_size}; "
          f"~{n_metrics} metric points a run")
    print("median seconds: " + "  ".join(f"{k} {v:.3f}" for k, v in med.items()))
    overhead = med["tracked"] / med["plain"] - 1
    paired = sorted(t / p - 1 for t, p in zip(times["tracked"], times["plain"]))
    print(f"tracked overhead   = {overhead * 100:+.1f}% of wall time (target <= 5%)  "
          f"{'OK' if overhead <= 0.05 else 'MISSED'}  (per back-to-back pair: median "
          f"{statistics.median(paired) * 100:+.1f}%, range {paired[0] * 100:+.1f}% to {paired[-1] * 100:+.1f}%)")
    inline_overhead = med["inline"] / med["plain"] - 1
    print(f"in-process sink    = {inline_overhead * 100:+.1f}% of wall time (target <= 5%)  "
          f"{'OK' if inline_overhead <= 0.05 else 'MISSED'}: "
          f"{'the simpler sink would do' if inline_overhead <= 0.05 else 'the helper process stays'}")
    print(f"per-epoch log_batch = {(med['per-epoch'] / med['plain'] - 1) * 100:+.1f}% (for comparison)")

    from bpexp import plots
    from bpexp.tracking.model import input_example

    t = time.perf_counter()
    last_run.log_figure(plots.learning_curves({"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6]}), "lc.png")
    t_plot = time.perf_counter() - t
    t = time.perf_counter()
    last_run.log_model(last_model, input_example(last_model, parts.X_test, dataset.feature_names))
    t_model = time.perf_counter() - t
    print(f"once per run, after training: a plot {t_plot:.2f}s, the pyfunc model {t_model:.2f}s")
    helper.close()
    inline.close()


if __name__ == "__main__":
    main()
