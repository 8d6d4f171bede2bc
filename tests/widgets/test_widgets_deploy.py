"""Deploy actions through the panel's buttons, checked in the real MLflow registry and on disk."""

from __future__ import annotations

import pytest

import bpexp
from bpexp.shell import bpexp_program
from bpexp.widgets import DeployController, RunBrowser
from bpexp.widgets.deploy import serve_command

pytestmark = pytest.mark.slow  # trains two small real models once for the module


@pytest.fixture
def browser(trained_store):
    uri, run_ids = trained_store
    return RunBrowser(experiment="digits", tracking_uri=uri), run_ids, uri


def test_register_button_registers_the_chosen_run_as_champion(browser):
    from mlflow import MlflowClient

    b, (first, second), uri = browser
    b.select(first)
    b.deploy.name.value = "digits-widget"
    b.deploy.register_button.click()
    o = b.deploy.outcome
    assert o.ok, o.message
    assert o.model_uri == "models:/digits-widget@champion"
    assert o.serve_command == f"{bpexp_program()} serve models:/digits-widget@champion --port 5001 --tracking-uri {uri}"
    assert "models:/digits-widget@champion" in b.deploy.result.value and " serve models:/" in b.deploy.result.value
    client = MlflowClient(uri)
    version = client.get_model_version_by_alias("digits-widget", "champion")
    assert version.run_id == first
    # registering another run moves the alias to a new version
    b.select(second)
    b.deploy.alias.value = "champion"
    b.deploy.register_button.click()
    moved = client.get_model_version_by_alias("digits-widget", "champion")
    assert b.deploy.outcome.ok and moved.run_id == second and int(moved.version) == int(version.version) + 1


def test_export_button_writes_a_loadable_model_folder(browser, tmp_path):
    b, (first, _), _ = browser
    b.select(first)
    out = tmp_path / "exported"
    b.deploy.folder.value = str(out)
    b.deploy.export_button.click()
    o = b.deploy.outcome
    assert o.ok, o.message
    assert (out / "MLmodel").is_file() and o.model_uri == str(out.resolve())
    assert o.serve_command.startswith(f"{bpexp_program()} serve {out.resolve()} ")
    model = bpexp.load_model(out)
    assert model.predict(bpexp.load_dataset("digits").X[:3]).shape == (3,)
    # a second export into the same folder is refused with a readable message, unless "overwrite"
    b.deploy.export_button.click()
    assert not b.deploy.outcome.ok and b.deploy.outcome.message.startswith("Export failed:")
    assert "Traceback" not in b.deploy.result.value
    b.deploy.force.value = True
    b.deploy.export_button.click()
    assert b.deploy.outcome.ok, b.deploy.outcome.message


def test_unavailable_registry_is_a_readable_message(trained_store):
    _, (first, _) = trained_store
    o = DeployController("http://127.0.0.1:9").register(first, "digits")
    assert not o.ok and o.message.startswith("Register failed:") and "127.0.0.1:9" in o.message
    assert "\n" not in o.message


def test_serve_command_quotes_paths():
    assert serve_command("/tmp/my model") == f"{bpexp_program()} serve '/tmp/my model' --port 5001"
