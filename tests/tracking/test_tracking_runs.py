"""A tracked run on the embedded sqlite store, read back with MlflowClient."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import services
import yaml
from checks import (
    EPOCH_METRICS_CLASSIFICATION,
    EPOCH_METRICS_REGRESSION,
    check_artifacts,
    check_epoch_metrics,
    check_params,
    check_pyfunc_model,
    check_tags_and_input,
)
from tracking_helpers import small_config, store_uri

import bpexp


def _project(root: Path, template: Path) -> Path:
    (root / "experiments").mkdir(parents=True)
    services.copy_mlflow_db(root / "mlruns" / "mlflow.db", template=template,
                            default_artifact_location=(root / "mlruns" / "artifacts" / "0").as_uri())
    return root


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin"}).stdout.strip()


@pytest.fixture(scope="module")
def moons(tmp_path_factory, mlflow_template_db):
    """One moons run in a git checkout, with the project's default store (no URI given)."""
    root = _project(tmp_path_factory.mktemp("moons-project"), mlflow_template_db)
    config = root / "experiments" / "moons.yaml"
    config.write_text(yaml.safe_dump(small_config("moons")))
    _git(root, "init", "-q")
    _git(root, "add", "experiments/moons.yaml")
    _git(root, "commit", "-qm", "config")
    result = bpexp.run(config, progress=False)
    return root, result


@pytest.fixture(scope="module")
def client_for(moons):
    from mlflow import MlflowClient

    return MlflowClient(store_uri(moons[0]))


def test_run_uses_the_projects_default_store(moons, client_for):
    root, result = moons
    assert result.tracking_uri == store_uri(root)
    artifacts = (root / "mlruns" / "artifacts").resolve()
    run = client_for.get_run(result.run_id)
    assert run.info.artifact_uri.startswith(artifacts.as_uri())  # not ./mlruns of the current directory
    assert (artifacts / "test-moons" / result.run_id / "artifacts" / "config.yaml").is_file()


def test_params_are_the_flattened_resolved_config(moons, client_for):
    check_params(client_for, moons[1])


def test_every_epoch_of_every_metric_is_stored_in_order(moons, client_for):
    check_epoch_metrics(client_for, moons[1], EPOCH_METRICS_CLASSIFICATION)


def test_final_metrics_are_logged(moons, client_for):
    result = moons[1]
    metrics = client_for.get_run(result.run_id).data.metrics
    for key in ("test_accuracy", "test_f1", "test_log_loss", "test_loss", "final_val_accuracy", "final_val_f1"):
        assert key in metrics
    assert metrics["test_accuracy"] == pytest.approx(result.test_metrics["test_accuracy"])
    assert metrics["test_accuracy"] > 0.8
    assert result.summary().startswith(f"{len(result.history)} epochs")
    assert "test_accuracy=" in result.summary()


def test_tags_git_and_dataset_input(moons, client_for):
    root, result = moons
    tags = check_tags_and_input(client_for, result, "moons")
    assert tags["mlflow.source.git.commit"] == _git(root, "rev-parse", "HEAD")
    assert tags["bpexp.git_dirty"] == "false"
    assert tags["suite"] == "tracking"  # the config's own tags
    assert tags["mlflow.runName"]  # MLflow's generated name, shown by the progress bar and `bpexp runs`


def test_artifacts_config_and_plots(moons, client_for, tmp_path):
    check_artifacts(client_for, moons[1], tmp_path, ("learning_curve", "confusion_matrix", "decision_boundary"))


def test_pyfunc_model_predicts_like_the_trained_model(moons):
    result = moons[1]
    X = result.dataset.X
    check_pyfunc_model(result, X)


def test_regression_run_logs_r2_and_mae(project, write_config):
    config = write_config("diabetes", small_config("diabetes", model={"hidden": [8]}, training={"epochs": 6}))
    result = bpexp.run(config, progress=False, log_model=None)
    from mlflow import MlflowClient

    client = MlflowClient(result.tracking_uri)
    check_epoch_metrics(client, result, EPOCH_METRICS_REGRESSION)
    metrics = client.get_run(result.run_id).data.metrics
    assert {"test_r2", "test_mae", "test_mse", "final_val_r2"} <= set(metrics)
    from checks import artifact_files

    files = artifact_files(client, result.run_id)
    assert "plots/learning_curve.png" in files
    assert "plots/confusion_matrix.png" not in files  # no confusion matrix for a regressor


def test_python_api_overrides_and_experiment_name(project, write_config):
    config = write_config("xor", small_config("xor"))
    result = bpexp.run(config, progress=False, log_model=None, log_plots=False, experiment="renamed",
                       training__epochs=3, optimizer__lr=0.05)
    from mlflow import MlflowClient

    client = MlflowClient(result.tracking_uri)
    run = client.get_run(result.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "renamed"
    assert run.data.params["training.epochs"] == "3" and run.data.params["optimizer.lr"] == "0.05"
    assert len(result.history) == 3


def test_csv_dataset_with_string_labels(project):
    import shutil

    repo = Path(__file__).resolve().parents[2] / "experiments"
    (project / "experiments" / "data").mkdir()
    shutil.copy(repo / "data" / "iris.csv", project / "experiments" / "data" / "iris.csv")
    shutil.copy(repo / "iris-csv.yaml", project / "experiments" / "iris-csv.yaml")
    result = bpexp.run(project / "experiments" / "iris-csv.yaml", progress=False, log_plots=False,
                       training__epochs=20)
    assert set(result.model.classes_) == {"setosa", "versicolor", "virginica"}
    check_pyfunc_model(result, result.dataset.X[:20])


def test_model_folder_only_option_logs_the_native_folder(project, write_config):
    config = write_config("moons", small_config("moons", training={"epochs": 3}))
    result = bpexp.run(config, progress=False, log_model="folder", log_plots=False)
    from checks import artifact_files
    from mlflow import MlflowClient

    files = artifact_files(MlflowClient(result.tracking_uri), result.run_id)
    assert {"bpexp_model/model.json", "bpexp_model/weights.npz", "bpexp_model/input_example.json"} <= files
    assert result.model_uri is None
    assert np.isfinite(result.model.params).all()


def test_best_validation_values_are_summarised(moons, client_for):
    result = moons[1]
    metrics = client_for.get_run(result.run_id).data.metrics
    assert metrics["best_val_loss"] == pytest.approx(min(result.history["val_loss"]))
    assert metrics["best_val_accuracy"] == pytest.approx(max(result.history["val_accuracy"]))
