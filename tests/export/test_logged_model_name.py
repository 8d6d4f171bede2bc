"""The logged model of a run says what it is, and ``runs:/<run_id>/model`` still loads it.

MLflow 3 resolves ``runs:/<run_id>/<path>`` by searching the run's logged models for
one *named* ``<path>``: the name is the artifact path. So the logged model keeps the
name ``model`` and carries ``<experiment>-<run name>`` in its ``bpexp.name`` tag and at the
start of its description (``mlflow.note.content``, which the MLflow UI shows on the model's
page). All are read back from the real sqlite store of the session's trained runs.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

import bpexp
from bpexp.tracking.model import model_label, using_store


@pytest.fixture(scope="module")
def logged(store):
    client = MlflowClient(store.uri)
    run = client.get_run(store.digits_a.run_id)
    model_id = store.digits_a.model_uri.removeprefix("models:/")
    return client, run, client.get_logged_model(model_id)


def test_the_logged_model_is_labelled_after_its_experiment_and_run(store, logged):
    client, run, model = logged
    assert store.digits_a.model_uri.startswith("models:/m-")
    assert model.name == "model" and model.source_run_id == run.info.run_id
    assert run.info.run_name  # the runner names every run
    assert model.tags["bpexp.name"] == model_label("exp-digits", run.info.run_name)
    assert model.tags["bpexp.name"].startswith("exp-digits-")
    assert model.tags["bpexp.experiment"] == "exp-digits"
    assert model.tags["bpexp.run_name"] == run.info.run_name
    # The description, which the MLflow UI shows on the model's page (it shows no tags there).
    assert model.tags["mlflow.note.content"] == (
        f"{model.tags['bpexp.name']}: the bpexp MLP of run {run.info.run_name} in experiment 'exp-digits'; "
        f"load it as runs:/{run.info.run_id}/model")
    label = model.tags["bpexp.name"]
    found = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                        filter_string=f"tags.`bpexp.name` = '{label}'")
    assert [m.model_id for m in found] == [model.model_id]
    # Each run's model has its own label: the two digits runs of one experiment are told apart.
    other = client.get_logged_model(store.digits_b.model_uri.removeprefix("models:/"))
    assert other.tags["bpexp.name"] != label


def test_runs_uri_and_models_uri_load_the_same_logged_model(store, logged):
    _, run, model = logged
    with using_store(store.uri):
        by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert by_run.metadata.model_id == model.model_id
    trained = store.digits_a.model
    X = np.linspace(0, 16, 3 * trained.n_inputs).reshape(3, trained.n_inputs)
    expected = trained.predict(X)
    short = run.info.run_id[:8]  # a prefix, as bpexp runs shows it
    for uri in (f"runs:/{run.info.run_id}/model", f"models:/{model.model_id}", f"runs:/{short}/model"):
        assert np.array_equal(bpexp.load_model(uri, tracking_uri=store.uri).predict(X), expected), uri

@pytest.mark.parametrize("experiment, run_name, label", [
    ("digits", "lr=0.01 trial.3", "digits-lr=0-01-trial-3"),
    ("team/a:b", "it's \"x\" 5%", "team-a-b-it-s-x-5"),
    ("digits", None, "digits"),
    ("...", "", "model"),
])
def test_model_label_keeps_to_the_characters_mlflow_allows_in_a_name(experiment, run_name, label):
    from mlflow.utils.validation import _validate_logged_model_name

    assert model_label(experiment, run_name) == label
    _validate_logged_model_name(label)  # raises on a character MLflow refuses
