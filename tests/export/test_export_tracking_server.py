"""Export, register and load through a real ``mlflow server`` (artifacts proxied over HTTP)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from export_helpers import EXPERIMENTS

import bpexp
from bpexp.export import export_run, pick_best_run, register_model

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_export_register_and_load_through_a_tracking_server(mlflow_server_url, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    experiment = f"export-{uuid.uuid4().hex[:8]}"  # the server is shared by the session
    name = f"srv-{uuid.uuid4().hex[:8]}"
    common = {"tracking_uri": mlflow_server_url, "experiment": experiment, "progress": False, "log_plots": False,
              "overrides": {"training.epochs": 3}}
    pyfunc_run = bpexp.run(str(EXPERIMENTS / "moons.yaml"), **common)
    folder_run = bpexp.run(str(EXPERIMENTS / "moons.yaml"), log_model="folder", **common)

    run, reason = pick_best_run("final_val_accuracy", experiment=experiment, tracking_uri=mlflow_server_url)
    assert run.info.run_id in (pyfunc_run.run_id, folder_run.run_id) and "among 2 finished runs" in reason

    result = export_run(pyfunc_run.run_id, tmp_path / "out", tracking_uri=mlflow_server_url, onnx=True,
                        register=name)
    assert result.registered_uri == f"models:/{name}@champion" and result.onnx_check.max_abs_diff <= 1e-5
    X = pyfunc_run.dataset.X[:20]
    assert np.array_equal(bpexp.load_model(result.path).predict(X), pyfunc_run.model.predict(X))
    loaded = bpexp.load_model(result.registered_uri, tracking_uri=mlflow_server_url)
    assert np.array_equal(loaded.params, pyfunc_run.model.params)

    # A run with only the native folder: its pyfunc model is logged (over HTTP) before registering.
    assert register_model(folder_run.run_id, name, tracking_uri=mlflow_server_url) == f"models:/{name}@champion"
    loaded = bpexp.load_model(f"models:/{name}@champion", tracking_uri=mlflow_server_url)
    assert np.array_equal(loaded.params, folder_run.model.params)
    assert not (tmp_path / "mlflow.db").exists()
