"""A sweep over a real table (palmerpenguins: strings, NA cells) with two worker processes.

The table is read, split and encoded once per worker; every trial's run records the
roles, and the best trial (a folder-only run) exports to a model that takes raw rows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from sweep_helpers import open_study, trial_runs

import bpexp

REPO = Path(__file__).resolve().parents[2]
PENGUINS_CSV = REPO / "experiments" / "data" / "penguins.csv"

pytestmark = pytest.mark.slow


def test_penguins_sweep_with_two_workers_then_export_the_best(tmp_path, mlflow_sqlite_uri):
    from bpexp.export import export_run, pick_best_run

    storage = str(tmp_path / "journal.log")
    result = bpexp.sweep(str(REPO / "experiments" / "penguins-sweep.yaml"), n_trials=4, workers=2,
                         storage=storage, tracking_uri=mlflow_sqlite_uri, progress=False, plots=False,
                         overrides={"fixed.training.epochs": 15})
    assert result.n_added == 4
    assert len(open_study(storage, "penguins-sweep").trials) == 4
    client = MlflowClient(mlflow_sqlite_uri)
    runs = trial_runs(client, "penguins-sweep", "penguins-sweep")
    assert len(runs) == 4
    assert {r.data.params["features.categorical"] for r in runs} == {"['island', 'sex']"}
    run, why = pick_best_run("final_val_loss", study="penguins-sweep", tracking_uri=mlflow_sqlite_uri)
    exported = export_run(run.info.run_id, tmp_path / "best", tracking_uri=mlflow_sqlite_uri, selection=why)
    model = bpexp.load_model(exported.path)
    raw = pd.read_csv(PENGUINS_CSV)
    assert set(model.predict(raw)) <= {"Adelie", "Chinstrap", "Gentoo"}
    assert bpexp.evaluate(model, raw.dropna(subset=["sex"]), raw.dropna(subset=["sex"])["species"])["accuracy"] > 0.9
