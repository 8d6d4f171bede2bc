"""Helpers for the widget tests: write runs shaped like bpexp's into a real MLflow store.

Runs are "fake but real": written with ``MlflowClient`` into a real sqlite store (params,
per-epoch curves with ``step=epoch``, final metrics, tags, status) without training, so a
test gets dozens of runs in a fraction of a second.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "digits.yaml"


def log_run(client, experiment_id: str, name: str, params: dict, *, epochs: int = 10, best: float = 0.9,
            status: str = "FINISHED", tags: dict | None = None, task: str = "classification") -> str:
    """Write one bpexp-like run: params, train/val curves for ``epochs`` epochs, final metrics."""
    from mlflow.entities import Metric, Param, RunTag

    run_id = client.create_run(experiment_id, run_name=name, tags={"bpexp.epochs_run": str(epochs),
                                                                   **(tags or {})}).info.run_id
    ts = int(time.time() * 1000)
    metrics = []
    for step in range(1, epochs + 1):
        decay = math.exp(-step / max(epochs / 3, 1))
        metrics += [Metric("train_loss", 0.1 + decay, ts, step), Metric("val_loss", 1.15 - best + decay, ts, step)]
        if task == "classification":
            metrics.append(Metric("val_accuracy", best * (1 - 0.5 * decay), ts, step))
        else:
            metrics.append(Metric("val_r2", best * (1 - 0.5 * decay), ts, step))
    if status == "FINISHED":
        final = {"test_accuracy": best - 0.01, "final_val_accuracy": best, "best_epoch": epochs} \
            if task == "classification" else {"test_r2": best - 0.01, "final_val_r2": best}
        metrics += [Metric(k, v, ts, epochs) for k, v in final.items()]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()],
                     tags=[RunTag("bpexp.task", task)])
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    return run_id


def params(hidden="[64]", lr=0.001, dropout=0.0, **more) -> dict:
    """Flattened-config params as ``bpexp.run`` logs them (a subset)."""
    return {"model.hidden": hidden, "model.activation": "relu", "model.dropout": dropout, "optimizer.name": "adam",
            "optimizer.lr": lr, "training.batch_size": 32, "dataset.name": "digits", "seed": 0, **more}
