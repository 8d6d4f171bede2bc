"""Store failures are one clear line, never a traceback storm: real `bpexp train` processes, real stores.

A full disk (a small tmpfs, mid-run and before the store exists), a read-only mount, a sqlite
store locked past MLflow's busy timeout, a dead port and a real `mlflow server` killed mid-run.
Each test asserts the exit code, that stderr holds one ``error:`` line naming the problem and the
store and no traceback, and reads the store back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import services
from tracking_helpers import BPEXP, cli_env, run_cli, small_config

LONG = small_config("digits", model={"hidden": [32]}, training={"epochs": 20000, "batch_size": 16})

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    """A tmpfs of ``size`` mounted at ``where`` (root only); unmounted afterwards, whatever happened."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        services.skip_or_fail(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True, capture_output=True)


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert len(errors[0]) < 1000
    return errors[0]


def runs_of(uri: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def start_train(project: Path, config: str, uri: str, log: Path) -> subprocess.Popen:
    out = log.open("w")
    return subprocess.Popen([BPEXP, "train", config, "--no-progress", "--tracking-uri", uri], cwd=project,
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=out, start_new_session=True)


def wait_for_epochs(uri: str, proc: subprocess.Popen, log: Path, epochs: int = 3, timeout: float = 120) -> str:
    """Wait until the only run has ``epochs`` val_loss points in the store; returns its id."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        with contextlib.suppress(Exception):
            runs = runs_of(uri)
            if runs and len(client.get_metric_history(runs[0].info.run_id, "val_loss")) >= epochs:
                return runs[0].info.run_id
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("training never reached epoch 3")


def fill(folder: Path) -> Path:
    """Write zeros into ``folder`` until its disk is full."""
    path = folder / "filler"
    with open(path, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * (1 << 16))
    return path


def test_disk_full_mid_run_stops_training_and_ends_the_run_failed(project, write_config, mlflow_template_db):
    write_config("long", LONG)
    with tmpfs(project / "disk", "40M") as disk:
        uri = services.copy_mlflow_db(disk / "mlflow.db", template=mlflow_template_db,
                                      default_artifact_location=(disk / "artifacts" / "0").as_uri())
        log = project / "train.log"
        proc = start_train(project, "experiments/long.yaml", uri, log)
        run_id = wait_for_epochs(uri, proc, log)
        filler = fill(disk)
        try:
            code = proc.wait(timeout=120)  # training stops at the first failed write, not after 20000 epochs
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        stderr = log.read_text()
        line = one_error_line(stderr)
        assert code == 1
        assert f"the MLflow store {disk / 'mlflow.db'} is out of disk space" in line
        filler.unlink()
        (run,) = runs_of(uri)
        assert run.info.run_id == run_id
        if "could not record the end state" in line:
            assert run.info.status == "RUNNING"  # what it said: the next command on the store ends it KILLED
        else:
            assert f"run {run_id} ended FAILED" in line
            assert run.info.status == "FAILED"
            assert "out of disk space" in run.data.tags["bpexp.error"] and len(run.data.tags["bpexp.error"]) < 1000


def test_disk_full_before_the_store_exists_leaves_no_half_created_store(project, write_config):
    write_config("small", small_config())
    with tmpfs(project / "disk", "300K") as disk:
        uri = f"sqlite:///{disk / 'mlflow.db'}"
        done = run_cli("train", "experiments/small.yaml", "--no-progress", "--tracking-uri", uri, cwd=project)
        assert done.returncode == 1
        line = one_error_line(done.stderr)
        assert f"the MLflow store {disk / 'mlflow.db'} is out of disk space" in line
        assert "no store was created" in line
        assert sorted(p.name for p in disk.iterdir()) == []  # nothing half-made left behind
        remount(disk, "size=40M")  # space freed: the next command creates the store and runs
        again = run_cli("train", "experiments/small.yaml", "--no-progress", "--tracking-uri", uri, cwd=project)
        assert again.returncode == 0, again.stderr[-3000:]
        (run,) = runs_of(uri)
        assert run.info.status == "FINISHED"


def _old_revision() -> str:
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    revisions = list(ScriptDirectory.from_config(_get_alembic_config(db_url="")).walk_revisions())
    return revisions[len(revisions) // 2].revision


def _set_revision(db: Path, revision: str) -> None:
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def test_a_half_created_store_without_runs_is_moved_aside_and_recreated(project, write_config, mlflow_template_db):
    write_config("small", small_config())
    db = project / "half" / "mlflow.db"
    uri = services.copy_mlflow_db(db, template=mlflow_template_db)
    _set_revision(db, _old_revision())  # a migration cut short (by a full disk, in issue 11)
    done = run_cli("train", "experiments/small.yaml", "--no-progress", "--tracking-uri", uri, cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    (note,) = [line for line in done.stderr.splitlines() if "half-created" in line]
    assert f"the MLflow store {db} was left half-created" in note
    aside = [p for p in db.parent.iterdir() if p.name.startswith("mlflow.db.half-created-")]
    assert len(aside) == 1 and aside[0].name in note  # kept, not deleted
    (run,) = runs_of(uri)
    assert run.info.status == "FINISHED"


def test_a_half_created_store_with_runs_is_refused_with_the_fix(project, write_config):
    write_config("small", small_config())
    uri = f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    assert run_cli("train", "experiments/small.yaml", "--no-progress", cwd=project).returncode == 0
    _set_revision(project / "mlruns" / "mlflow.db", _old_revision())
    done = run_cli("train", "experiments/small.yaml", "--no-progress", cwd=project)
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert f"the MLflow store {project / 'mlruns' / 'mlflow.db'} holds 1 runs but its schema is at revision" in line
    assert f"mlflow db upgrade {uri}" in line
    assert (project / "mlruns" / "mlflow.db").exists()  # left as it was


def test_read_only_store_is_one_line_naming_it(project, write_config, mlflow_template_db):
    write_config("small", small_config())
    with tmpfs(project / "ro", "40M") as disk:
        uri = services.copy_mlflow_db(disk / "mlflow.db", template=mlflow_template_db,
                                      default_artifact_location=(disk / "artifacts" / "0").as_uri())
        remount(disk, "ro")
        done = run_cli("train", "experiments/small.yaml", "--no-progress", "--tracking-uri", uri, cwd=project)
        assert done.returncode == 1
        line = one_error_line(done.stderr)
        assert f"the MLflow store {disk / 'mlflow.db'} is read-only" in line
        assert runs_of(uri) == []  # nothing was written


def test_store_locked_past_the_busy_timeout_is_one_line(project, write_config):
    write_config("small", small_config())
    db = project / "mlruns" / "mlflow.db"
    locker = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"con = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "con.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(90)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        started = time.monotonic()
        done = run_cli("train", "experiments/small.yaml", "--no-progress", cwd=project, timeout=85)
        took = time.monotonic() - started
    finally:
        locker.kill()
        locker.wait()
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert f"the MLflow store {db} is locked" in line and "busy timeout" in line
    assert took < 80
    assert all(r.info.status != "RUNNING" for r in runs_of(f"sqlite:///{db}"))  # no run left open


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dead_tracking_server_port_is_one_line_at_once(project, write_config):
    write_config("small", small_config())
    uri = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    done = run_cli("train", "experiments/small.yaml", "--no-progress", "--tracking-uri", uri, cwd=project)
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert f"cannot reach the MLflow tracking server at {uri}" in line
    assert time.monotonic() - started < 60


def _server_pids(port: int) -> list[int]:
    """The pids of the `mlflow server` this test started on ``port``: its command line names the port, and
    its uvicorn child, which listens on it (``ss`` names the listener)."""
    import re

    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
                if b"server" in cmd and b"--port" in cmd and str(port).encode() in cmd:
                    pids.append(int(entry.name))
    listening = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    pids += [int(pid) for pid in re.findall(r"pid=(\d+)", listening)]
    return sorted(set(pids))


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_tracking_server_killed_mid_run_retries_briefly_then_one_line(project, write_config, mlflow_template_db,
                                                                     tmp_path):
    write_config("long", LONG)
    try:
        server = services.mlflow_server(tmp_path / "server", template=mlflow_template_db)
        url = server.__enter__()
    except services.ServiceUnavailable as exc:
        services.skip_or_fail(str(exc))
    try:
        log = project / "train.log"
        proc = start_train(project, "experiments/long.yaml", url, log)
        wait_for_epochs(url, proc, log)
        port = int(url.rsplit(":", 1)[1])
        pids = _server_pids(port)
        assert pids, "found no server process to kill"
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        while _answers(port):  # the server is gone for good: nothing answers on its port
            assert time.monotonic() - killed < 10, f"the server still listens: {_server_pids(port)}"
            time.sleep(0.1)
        try:
            code = proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        took = time.monotonic() - killed
    finally:
        with contextlib.suppress(Exception):
            server.__exit__(None, None, None)
    stderr = log.read_text()
    line = one_error_line(stderr)
    assert code == 1
    assert f"the MLflow tracking server at {url} stopped answering (gave up after 3 retries" in line
    assert "retrying" in stderr  # the backoff is printed as it happens, not minutes of silence
    assert took < 150, f"took {took:.0f} s after the server died"
    print(f"exit {took:.1f} s after the server was killed; stderr:\n{stderr}")


def test_a_connection_cut_mid_answer_is_asked_again_but_spent_retries_are_not():
    """A server dying mid-answer is not covered by MLflow's retries, so the writer asks once more through
    them; a request whose retries are spent (the server is gone) is reported, not retried again."""
    import requests
    import urllib3

    from bpexp.tracking.failures import connection_cut

    def raised(inner, outer):
        try:
            try:
                raise inner
            except Exception as exc:
                raise outer(exc) from exc
        except Exception as exc:
            return exc

    cut = raised(urllib3.exceptions.ProtocolError("Connection aborted."), requests.exceptions.ConnectionError)
    spent = raised(urllib3.exceptions.MaxRetryError(None, "/api/2.0/mlflow/runs/log-batch", "refused"),
                   requests.exceptions.ConnectionError)
    assert connection_cut(cut) and connection_cut(requests.exceptions.ChunkedEncodingError("Connection broken"))
    assert not connection_cut(spent) and not connection_cut(ValueError("not a transport error"))
