"""Fixtures for the widget tests: MLflow stores holding runs shaped like bpexp's.

Runs are "fake but real": written with ``MlflowClient`` into a real sqlite store (params,
per-epoch curves with ``step=epoch``, final metrics, tags, status) without training, so
a test gets dozens of runs in a fraction of a second. Tests that need a real model
(deploy) train with ``bpexp.run`` once per module.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import services
from widget_stores import CONFIG, log_run, params

#: Bump when the shape of the cached 500-run store changes.
BIG_STORE_VERSION = "1"


@pytest.fixture
def client(mlflow_sqlite_uri):
    from mlflow import MlflowClient

    return MlflowClient(mlflow_sqlite_uri)


@pytest.fixture
def small_store(mlflow_sqlite_uri, client):
    """Experiment "digits": 5 runs (one failed, one better but still running) and a sweep
    "sweep-a" (parent + 3 trials, one pruned with a higher accuracy), plus "sweep-b"."""
    exp = client.create_experiment("digits")
    ids = {
        "base": log_run(client, exp, "base", params(), best=0.90),
        "wide": log_run(client, exp, "wide", params(hidden="[128, 64]"), best=0.95, epochs=12),
        "fast": log_run(client, exp, "fast", params(lr=0.01), best=0.93),
        "broken": log_run(client, exp, "broken", params(lr=1.0), status="FAILED", epochs=3, best=0.1),
        "running": log_run(client, exp, "running", params(lr=0.003), status="RUNNING", epochs=4, best=0.99),
    }
    sweep = client.create_experiment("digits-sweep")
    parent = client.create_run(sweep, run_name="sweep-a", tags={"bpexp.study": "sweep-a", "bpexp.role": "sweep"}
                               ).info.run_id
    client.log_param(parent, "objective.metric", "val_accuracy")
    for n, (state, best, lr) in enumerate([("COMPLETE", 0.91, 0.001), ("PRUNED", 0.97, 0.01),
                                           ("COMPLETE", 0.94, 0.003)]):
        ids[f"trial{n}"] = log_run(
            client, sweep, f"trial-{n}", params(lr=lr), best=best,
            tags={"bpexp.study": "sweep-a", "bpexp.trial_number": str(n), "bpexp.trial_state": state,
                  "mlflow.parentRunId": parent})
    ids["other"] = log_run(client, sweep, "other-0", params(), best=0.99,
                           tags={"bpexp.study": "sweep-b", "bpexp.trial_number": "0",
                                 "bpexp.trial_state": "COMPLETE"})
    ids["parent"] = parent
    return mlflow_sqlite_uri, ids


@pytest.fixture(scope="session")
def big_store_uri(request, mlflow_template_db, tmp_path_factory) -> str:
    """A store with 500 finished runs in experiment "big" (built once, cached in .pytest_cache)."""
    cache = getattr(request.config, "cache", None)
    where = Path(cache.mkdir("bpexp-widgets-500-runs")) if cache is not None else tmp_path_factory.mktemp("big")
    cached = where / f"big-v{BIG_STORE_VERSION}.db"
    if not cached.exists():
        building = where / f"building-{time.time_ns()}.db"
        uri = services.copy_mlflow_db(building, template=mlflow_template_db,
                                      default_artifact_location=(where / "artifacts").as_uri())
        from mlflow import MlflowClient

        client = MlflowClient(uri)
        exp = client.create_experiment("big", artifact_location=(where / "artifacts").as_uri())
        hidden = ["[32]", "[64]", "[128]", "[64, 32]", "[128, 64]"]
        for i in range(500):
            log_run(client, exp, f"run-{i:03d}", params(hidden=hidden[i % 5], lr=[1e-3, 3e-3, 1e-2, 3e-2][i % 4],
                                                         dropout=[0.0, 0.1, 0.2][i % 3]),
                    epochs=20, best=0.5 + 0.45 * ((i * 37) % 500) / 500)
        building.replace(cached)  # atomic: a half-built store is never taken for the cache
    dest = tmp_path_factory.mktemp("big-store") / "mlflow.db"
    shutil.copyfile(cached, dest)
    return f"sqlite:///{dest}"


@pytest.fixture(scope="module")
def trained_store(request, mlflow_template_db, tmp_path_factory):
    """A store with two real digits runs (pyfunc models) in experiment "digits": ``(uri, [run ids])``."""
    import bpexp

    root = tmp_path_factory.mktemp("trained")
    uri = services.copy_mlflow_db(root / "mlflow.db", template=mlflow_template_db,
                                  default_artifact_location=(root / "artifacts" / "0").as_uri())
    results = [bpexp.run(CONFIG, tracking_uri=uri, progress=False, log_plots=False, training__epochs=8,
                         optimizer__lr=lr, tracking__run_name=f"lr-{lr}") for lr in (0.001, 0.01)]
    return uri, [r.run_id for r in results]
