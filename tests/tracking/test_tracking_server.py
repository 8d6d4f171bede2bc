"""The same tracked run against a real `mlflow server` (REST store, proxied artifacts)."""

from __future__ import annotations

import pytest
from checks import (
    EPOCH_METRICS_CLASSIFICATION,
    check_artifacts,
    check_epoch_metrics,
    check_params,
    check_pyfunc_model,
    check_tags_and_input,
)
from tracking_helpers import run_cli, small_config

import bpexp

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="module")
def server_run(mlflow_server_url, tmp_path_factory):
    import yaml

    root = tmp_path_factory.mktemp("server-project")
    (root / "experiments").mkdir()
    config = root / "experiments" / "moons.yaml"
    config.write_text(yaml.safe_dump(small_config("moons", tracking={"experiment": "server-moons"})))
    return bpexp.run(config, tracking_uri=mlflow_server_url, progress=False)


@pytest.fixture(scope="module")
def client(mlflow_server_url):
    from mlflow import MlflowClient

    return MlflowClient(mlflow_server_url)


def test_params(server_run, client):
    check_params(client, server_run)


def test_every_epoch_in_order(server_run, client):
    check_epoch_metrics(client, server_run, EPOCH_METRICS_CLASSIFICATION)


def test_tags_and_dataset(server_run, client):
    check_tags_and_input(client, server_run, "moons")


def test_artifacts(server_run, client, tmp_path):
    check_artifacts(client, server_run, tmp_path, ("learning_curve", "confusion_matrix", "decision_boundary"))


def test_pyfunc_model(server_run):
    check_pyfunc_model(server_run, server_run.dataset.X[:50])


def test_cli_against_the_server_prints_where_to_look(mlflow_server_url, tmp_path):
    import yaml

    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "xor.yaml").write_text(
        yaml.safe_dump(small_config("xor", training={"epochs": 3}, tracking={"experiment": "server-xor"})))
    done = run_cli("train", "experiments/xor.yaml", "--tracking-uri", mlflow_server_url, "--no-progress",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"see it at {mlflow_server_url}/#/experiments/" in done.stdout
    assert "?workflowType=machine_learning" in done.stdout  # opens the "Model training" view
