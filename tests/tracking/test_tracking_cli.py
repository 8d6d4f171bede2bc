"""`bpexp train`, `bpexp runs`, `bpexp ui` as a user runs them: real subprocesses, a real store."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
import services
from tracking_helpers import BPEXP, cli_env, run_cli, small_config, store_uri


def _printed_link(log, fragment: str, timeout: float = 30.0) -> str:
    """The first printed word containing ``fragment`` (the UI prints its links once it answers)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        words = [w for w in log.read_text().split() if fragment in w]
        if words:
            return words[0]
        time.sleep(0.2)
    raise AssertionError(f"no link with {fragment!r} printed:\n{log.read_text()}")


def _runs(project):
    from mlflow import MlflowClient

    client = MlflowClient(store_uri(project))
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_train_prints_run_id_and_summary(project, write_config):
    write_config("moons", small_config("moons", training={"epochs": 5}))
    done = run_cli("train", "experiments/moons.yaml", "--set", "model.hidden=[8,4]", "--no-progress", cwd=project)
    assert done.returncode == 0, done.stderr
    runs = _runs(project)
    assert len(runs) == 1
    run = runs[0]
    assert f"run {run.info.run_id} finished: 5 epochs" in done.stdout
    assert "test_accuracy=" in done.stdout
    assert "bpexp ui" in done.stdout  # tells the user where to look
    assert run.data.params["model.hidden"] == "[8, 4]"
    assert run.info.status == "FINISHED"


def test_train_suggestions_run_as_printed_without_the_venv_on_path(project, write_config):
    """After `make demo` the venv is not on PATH: the printed `bpexp ui` / `bpexp runs` must still run."""
    import os

    write_config("moons", small_config("moons", training={"epochs": 2}))
    env = {**cli_env(), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([BPEXP, "train", "experiments/moons.yaml", "--no-progress"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("see it in the MLflow UI: "))
    ui_command, runs_command = line.removeprefix("see it in the MLflow UI: ").removesuffix(")").split(
        "   (or list runs: ")
    assert ui_command == f"{BPEXP} ui" and os.access(BPEXP, os.X_OK)  # the project's own store: no URI needed
    listed = subprocess.run(["sh", "-c", runs_command], cwd=project, env=env, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert _runs(project)[0].info.run_id[:8] in listed.stdout


def test_invalid_config_exits_2_and_creates_no_run(project, write_config):
    write_config("moons", small_config("moons"))
    done = run_cli("train", "experiments/moons.yaml", "--set", "model.hiden=[8]", cwd=project)
    assert done.returncode == 2
    assert "experiments/moons.yaml" in done.stderr and "model.hiden" in done.stderr
    assert "Traceback" not in done.stderr
    assert _runs(project) == []


def test_missing_config_file_is_a_clear_error(project):
    done = run_cli("train", "experiments/nope.yaml", cwd=project)
    assert done.returncode == 2 and "no such config file" in done.stderr


def test_unreachable_tracking_server_names_the_uri(project, write_config):
    write_config("moons", small_config("moons"))
    uri = f"http://127.0.0.1:{services.free_port()}"
    done = run_cli("train", "experiments/moons.yaml", "--tracking-uri", uri, cwd=project, timeout=60)
    assert done.returncode != 0
    assert uri in done.stderr and "cannot reach the MLflow tracking server" in done.stderr
    assert "Traceback" not in done.stderr


def test_tracking_uri_from_the_environment(project, write_config, tmp_path, mlflow_template_db):
    other = services.copy_mlflow_db(tmp_path / "elsewhere" / "mlflow.db", template=mlflow_template_db)
    write_config("moons", small_config("moons", training={"epochs": 2}))
    done = run_cli("train", "experiments/moons.yaml", "--no-progress", cwd=project, MLFLOW_TRACKING_URI=other)
    assert done.returncode == 0, done.stderr
    assert _runs(project) == []  # nothing in the default store
    from mlflow import MlflowClient

    client = MlflowClient(other)
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == 1


def test_runs_lists_best_first(project, write_config):
    import bpexp

    path = write_config("moons", small_config("moons"))
    for lr in (0.0005, 0.05):
        bpexp.run(path, progress=False, log_model=None, log_plots=False, optimizer__lr=lr, training__epochs=6)
    done = run_cli("runs", "--experiment", "test-moons", "--sort", "test_accuracy", cwd=project)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "name", "state"]
    assert "lr" in lines[0] and "test_accuracy" in lines[0]
    rows = [line for line in lines[2:] if line.strip() and not line.startswith(("2 of", "\n"))][:2]
    header = lines[0].split()
    acc = [float(r.split()[header.index("test_accuracy")]) for r in rows]
    assert acc == sorted(acc, reverse=True)
    assert "best test_accuracy first" in done.stdout


def test_runs_errors_are_clear(project, write_config):
    done = run_cli("runs", cwd=project)
    assert done.returncode == 0 and "no runs yet" in done.stdout
    done = run_cli("runs", "--experiment", "nope", cwd=project)
    assert done.returncode != 0 and "no experiment named 'nope'" in done.stderr
    import bpexp

    bpexp.run(write_config("xor", small_config("xor", training={"epochs": 2})), progress=False, log_model=None,
              log_plots=False)
    done = run_cli("runs", "--sort", "val_accurcy", cwd=project)
    assert done.returncode == 2 and "no run has the metric 'val_accurcy'" in done.stderr


@pytest.mark.services
@pytest.mark.slow
def test_ui_serves_the_projects_runs(project, write_config, browser_page):
    """The API answers; the printed link opens the experiment's runs in the "Model training" view
    (MLflow 3.17's UI would otherwise open it in its GenAI view), in a real chromium."""
    import bpexp

    result = bpexp.run(write_config("xor", small_config("xor", training={"epochs": 4})), progress=False,
                       log_model=None, log_plots=False)
    port = services.free_port()
    log = project / "ui.log"
    with log.open("w") as out:
        proc = subprocess.Popen([BPEXP, "ui", "--port", str(port)], cwd=project, env=cli_env(), stdout=out,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        services.wait_for_http(f"http://127.0.0.1:{port}/health", timeout=90, proc=proc, log_path=log,
                               name="bpexp ui")
        body = json.dumps({"experiment_ids": [result.experiment_id]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", data=body,
                                     headers={"Content-Type": "application/json"})
        found = json.load(urllib.request.urlopen(req, timeout=10))
        assert [r["info"]["run_id"] for r in found["runs"]] == [result.run_id]
        history = json.load(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/metrics/get-history?run_id={result.run_id}&metric_key=val_loss",
            timeout=10))
        assert [m["step"] for m in history["metrics"]] == [1, 2, 3, 4]  # the curve the UI draws
        link = _printed_link(log, f"/#/experiments/{result.experiment_id}?")
        browser_page.goto(link)
        from mlflow import MlflowClient

        run_name = MlflowClient(store_uri(project)).get_run(result.run_id).info.run_name
        browser_page.get_by_text(run_name, exact=True).first.wait_for()  # the runs table lists it
        assert browser_page.get_by_role("heading", name="Runs").count() == 1
        assert browser_page.get_by_text("Detect Issues").count() == 0  # the GenAI overview's button
    finally:
        services.stop_process_group(proc)
    printed = log.read_text()
    assert f"MLflow UI for {store_uri(project)}" in printed
    assert f"open http://127.0.0.1:{port}" in printed
