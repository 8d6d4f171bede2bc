"""Smoke tests of the real test services in tests/services.py (and their fixtures)."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import services

# --------------------------------------------------------------------------------------------
# the machinery itself (fast, no external services)
# --------------------------------------------------------------------------------------------


def test_skip_or_fail_follows_require_env(monkeypatch):
    monkeypatch.delenv(services.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is missing"):
        services.skip_or_fail("chromium is missing")
    monkeypatch.setenv(services.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="chromium is missing.*BPEXP_REQUIRE_SERVICES=1"):
        services.skip_or_fail("chromium is missing")


def test_start_failure_reports_the_log_tail(tmp_path):
    crash = [sys.executable, "-c", "import sys; print('port parse exploded'); sys.exit(3)"]
    with pytest.raises(services.ServiceStartError, match=r"(?s)exited with code 3.*port parse exploded"):
        with services._serve(
            "crashy", lambda port: crash, probe=lambda port: f"http://127.0.0.1:{port}/",
            log_path=tmp_path / "crashy.log", env=dict(os.environ), cwd=tmp_path, timeout=20,
        ):  # fmt: skip
            pytest.fail("must not get here")


def test_server_group_is_stopped_even_when_the_body_raises(tmp_path):
    # A parent that spawns a child which ignores SIGTERM: both must be gone afterwards.
    code = textwrap.dedent(
        """
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        import http.server
        http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, bind="127.0.0.1", port=int(sys.argv[1]))
        """
    )
    seen = {}
    with pytest.raises(RuntimeError, match="test body failed"):
        with services._serve(
            "http.server", lambda port: [sys.executable, "-c", code, str(port)],
            probe=lambda port: f"http://127.0.0.1:{port}/", log_path=tmp_path / "http.log",
            env=dict(os.environ), cwd=tmp_path, timeout=30,
        ) as (port, proc):  # fmt: skip
            seen.update(port=port, pgid=proc.pid)
            raise RuntimeError("test body failed")
    deadline = time.monotonic() + 10  # SIGKILLed orphans are reaped by init, not by us
    while services._group_alive(seen["pgid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not services._group_alive(seen["pgid"]), "a process of the server's group survived"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", seen["port"])) != 0, "the server still listens"


def test_missing_postgres_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("BPEXP_PG_BINDIR", str(tmp_path / "no-postgres-here"))
    with pytest.raises(services.ServiceUnavailable, match="PostgreSQL server binaries"):
        with services.postgres_server(tmp_path):
            pass


def test_missing_chromium_is_unavailable(monkeypatch):
    pytest.importorskip("playwright")
    monkeypatch.setenv("BPEXP_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(services.ServiceUnavailable, match="no chromium executable"):
        with services.chromium_browser():
            pass


# --------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------

MODEL_CODE = """
import mlflow
import pandas as pd


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return model_input * 2


mlflow.models.set_model(Doubler())
"""


@pytest.mark.services
@pytest.mark.slow
def test_mlflow_server_logs_a_run_artifact_and_model(mlflow_server_url, tmp_path):
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    assert mlflow_server_url.startswith("http://127.0.0.1:")
    client = MlflowClient(tracking_uri=mlflow_server_url)
    exp_id = client.create_experiment(f"smoke-{uuid.uuid4().hex[:8]}")
    assert client.get_experiment(exp_id).artifact_location.startswith("mlflow-artifacts:/")
    run = client.create_run(exp_id)
    rid = run.info.run_id
    client.log_param(rid, "lr", "0.1")
    for step, loss in enumerate([0.9, 0.5, 0.25]):
        client.log_metric(rid, "loss", loss, step=step)
    note = tmp_path / "note.txt"
    note.write_text("hello through the proxy")
    client.log_artifact(rid, str(note), artifact_path="notes")

    (tmp_path / "model.py").write_text(MODEL_CODE)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(mlflow_server_url)
    try:
        with mlflow.start_run(run_id=rid):
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(tmp_path / "model.py"), pip_requirements=["mlflow", "pandas"]
            )
        loaded = mlflow.pyfunc.load_model(info.model_uri)
    finally:
        mlflow.set_tracking_uri(previous)
    assert loaded.predict(pd.DataFrame({"x": [1.0, 2.5]}))["x"].tolist() == [2.0, 5.0]

    history = client.get_metric_history(rid, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.5), (2, 0.25)]
    assert client.get_run(rid).data.params == {"lr": "0.1"}
    assert [a.path for a in client.list_artifacts(rid, "notes")] == ["notes/note.txt"]
    local = client.download_artifacts(rid, "notes/note.txt", str(tmp_path / "down"))
    assert Path(local).read_text() == "hello through the proxy"


def test_mlflow_sqlite_uri_is_a_migrated_store(mlflow_sqlite_uri, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_sqlite_uri)
    default = client.get_experiment("0")
    assert default.artifact_location == (tmp_path / "artifacts" / "0").as_uri()
    rid = client.create_run("0").info.run_id
    note = tmp_path / "a.txt"
    note.write_text("x")
    client.log_artifact(rid, str(note))
    assert (tmp_path / "artifacts" / "0" / rid / "artifacts" / "a.txt").read_text() == "x"


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


@pytest.mark.services
def test_postgres_runs_an_optuna_study(postgres_url):
    import optuna

    assert postgres_url.startswith("postgresql+psycopg2://postgres@127.0.0.1:")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="smoke", storage=postgres_url, direction="minimize")
    study.optimize(lambda t: (t.suggest_float("x", -3, 3) - 1) ** 2, n_trials=3)

    # a second, independent storage object (its own engine and connections) sees the same trials
    storage = optuna.storages.RDBStorage(postgres_url)
    again = optuna.load_study(study_name="smoke", storage=storage)
    assert len(again.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in again.trials)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    assert again.best_value == pytest.approx(study.best_value)
    storage.remove_session()
    storage.engine.dispose()


@pytest.mark.services
@pytest.mark.slow
def test_postgres_is_an_mlflow_backend_store(postgres_url, tmp_path):
    from mlflow import MlflowClient

    # Migrating a fresh PostgreSQL database to MLflow's schema is what takes the time here.
    # Keep "+psycopg2": SQLAlchemy 2.1 maps a bare postgresql:// to psycopg (3), not installed.
    client = MlflowClient(tracking_uri=postgres_url)
    exp_id = client.create_experiment("pg", artifact_location=(tmp_path / "art").as_uri())
    rid = client.create_run(exp_id).info.run_id
    client.log_metric(rid, "acc", 0.75, step=3)
    [metric] = client.get_metric_history(rid, "acc")
    assert (metric.step, metric.value) == (3, 0.75)


# --------------------------------------------------------------------------------------------
# Browser: Voilà + chromium
# --------------------------------------------------------------------------------------------

WIDGET_CELL = """\
import ipywidgets as w

sel = w.SelectMultiple(options=["alpha", "beta", "gamma"], description="runs")
out = w.Output()


def on_change(change):
    with out:
        out.clear_output()
        print("selected: " + ",".join(change["new"]))


sel.observe(on_change, names="value")
w.VBox([sel, out])
"""


@pytest.mark.services
@pytest.mark.slow
def test_voila_widgets_in_chromium(tmp_path, serve_notebook, browser_page, test_artifacts_dir):
    page = browser_page
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(WIDGET_CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "select.ipynb"
    nbformat.write(nb, path)

    url = serve_notebook(path)
    assert url.startswith("http://127.0.0.1:")
    page.goto(url)
    select = page.locator("select[multiple]")
    try:
        select.wait_for(timeout=60_000)  # the kernel starts and runs the notebook on page load
        select.select_option(["alpha", "gamma"])
        page.get_by_text("selected: alpha,gamma").wait_for()
    finally:
        page.screenshot(path=str(test_artifacts_dir / "voila-select-multiple.png"), full_page=True)
