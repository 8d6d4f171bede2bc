"""Fixtures for export tests: one MLflow store with real trained runs, shared by the session.

Training is the slow part (a few seconds a run), so the runs are trained once, with
the real runner, into a sqlite store copied from the migrated template:

* two digits runs (pyfunc models) in experiment ``exp-digits``, for ``--best``;
* an iris run from the shipped CSV config (string class labels) in ``exp-iris``;
* a penguins run from the shipped table (strings, NA cells) in ``exp-penguins``;
* a diabetes regression run in ``exp-diabetes``;
* a run without any model (``log_model=None``) in ``exp-nomodel``;
* a sweep-like study ``study-moons``: a parent run and three trial child runs that
  log only the native folder (two COMPLETE, one PRUNED), as the sweep agreement says;
* a study ``study-pruned`` whose trials were all pruned or failed (runs with tags only).

Tests must not change these runs' metrics; registering or exporting them is fine.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import services
from export_helpers import EXPERIMENTS

from bpexp.runner import ChildRun


@dataclass
class Store:
    uri: str
    root: Path
    digits_a: object  # RunResult
    digits_b: object
    iris: object
    penguins: object  # a real table: strings and NA cells
    diabetes: object
    no_model_run_id: str
    study_parent_id: str
    trials: list  # RunResult of the study-moons trials, in trial order
    trial_states: list[str]


def _quiet_run(config, uri, **kwargs):
    import bpexp

    return bpexp.run(config, tracking_uri=uri, progress=False, log_plots=False, **kwargs)


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory, mlflow_template_db: Path) -> Store:
    """The shared store with trained runs (see the module docstring)."""
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    root = tmp_path_factory.mktemp("export-store")
    uri = services.copy_mlflow_db(root / "mlflow.db", template=mlflow_template_db,
                                  default_artifact_location=(root / "artifacts" / "0").as_uri())
    digits = str(EXPERIMENTS / "digits.yaml")
    small = {"model.hidden": [16], "training.epochs": 6}
    a = _quiet_run(digits, uri, experiment="exp-digits", overrides={**small, "optimizer.lr": 0.01})
    b = _quiet_run(digits, uri, experiment="exp-digits", overrides={**small, "optimizer.lr": 0.0003})
    iris = _quiet_run(str(EXPERIMENTS / "iris-csv.yaml"), uri, experiment="exp-iris",
                      overrides={"training.epochs": 40})
    penguins = _quiet_run(str(EXPERIMENTS / "penguins.yaml"), uri, experiment="exp-penguins",
                          overrides={"training.epochs": 40})
    diabetes = _quiet_run(str(EXPERIMENTS / "diabetes.yaml"), uri, experiment="exp-diabetes",
                          overrides={"training.epochs": 15, "model.activation": "gelu"})
    nomodel = _quiet_run(str(EXPERIMENTS / "moons.yaml"), uri, experiment="exp-nomodel", log_model=None,
                         overrides={"training.epochs": 2})

    client = MlflowClient(uri)
    exp_id = client.get_experiment_by_name("exp-nomodel").experiment_id
    parent = client.create_run(exp_id, run_name="study-moons", tags={"bpexp.study": "study-moons"})
    states = ["COMPLETE", "PRUNED", "COMPLETE"]
    trials = []
    for number, (state, lr) in enumerate(zip(states, (0.003, 0.05, 0.03))):
        tags = {"bpexp.study": "study-moons", "bpexp.trial_number": str(number), "bpexp.trial_state": state}
        trials.append(_quiet_run(str(EXPERIMENTS / "moons.yaml"), uri, experiment="exp-nomodel",
                                 child=ChildRun(parent.info.run_id), tags=tags, log_model="folder",
                                 overrides={"training.epochs": 8, "optimizer.lr": lr,
                                            "model.activation": "leaky_relu"}))
    client.set_terminated(parent.info.run_id)
    bad_parent = client.create_run(exp_id, run_name="study-pruned", tags={"bpexp.study": "study-pruned"})
    for number, state in enumerate(("PRUNED", "FAIL")):
        r = client.create_run(exp_id, tags={"bpexp.study": "study-pruned", "bpexp.trial_number": str(number),
                                            "bpexp.trial_state": state,
                                            "mlflow.parentRunId": bad_parent.info.run_id})
        client.log_metric(r.info.run_id, "final_val_accuracy", 0.5)
        client.set_terminated(r.info.run_id, "KILLED" if state == "PRUNED" else "FAILED")
    client.set_terminated(bad_parent.info.run_id)
    return Store(uri, root, a, b, iris, penguins, diabetes, nomodel.run_id, parent.info.run_id, trials, states)


@pytest.fixture(scope="session")
def iris_export(store: Store, tmp_path_factory: pytest.TempPathFactory):
    """The iris run exported once with ONNX (read-only for tests)."""
    from bpexp.export import export_run

    return export_run(store.iris.run_id, tmp_path_factory.mktemp("iris-export") / "model",
                      tracking_uri=store.uri, onnx=True)


@pytest.fixture(scope="session")
def penguins_export(store: Store, tmp_path_factory: pytest.TempPathFactory):
    """The penguins run exported once (read-only for tests)."""
    from bpexp.export import export_run

    return export_run(store.penguins.run_id, tmp_path_factory.mktemp("penguins-export") / "model",
                      tracking_uri=store.uri)


@pytest.fixture(scope="session")
def iris_rows() -> tuple[list[str], list[list[float]], list[str]]:
    """(feature names, feature rows, labels) of the shipped iris CSV."""
    import csv

    with (EXPERIMENTS / "data" / "iris.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], [r for r in rows[1:] if r]
    return header[:-1], [[float(v) for v in r[:-1]] for r in body], [r[-1] for r in body]


@pytest.fixture
def export_copy(iris_export, tmp_path) -> Path:
    """A copy of the iris export that a test may damage."""
    dest = tmp_path / "copy"
    shutil.copytree(iris_export.path, dest)
    return dest
