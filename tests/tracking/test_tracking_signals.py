"""Two Ctrl-Cs in quick succession on a real `bpexp train`: never a RUNNING run; the CLI says what the store holds."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time

import pytest
from tracking_helpers import BPEXP, cli_env, small_config

LONG = small_config("digits", model={"hidden": [32]}, training={"epochs": 20000, "batch_size": 16})


def _statuses(project) -> dict[str, str]:
    """run id -> status, straight from the sqlite store."""
    con = sqlite3.connect(project / "mlruns" / "mlflow.db", timeout=30)
    try:
        return dict(con.execute("SELECT run_uuid, status FROM runs").fetchall())
    finally:
        con.close()


def _training_run(project, proc, known: set[str], log) -> str:
    """Wait until a new run has logged a few epochs; returns its id."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        con = sqlite3.connect(project / "mlruns" / "mlflow.db", timeout=30)
        try:
            rows = con.execute("SELECT run_uuid, COUNT(*) FROM metrics WHERE key = 'val_loss' GROUP BY run_uuid")
            ready = [run for run, n in rows.fetchall() if run not in known and n >= 3]
        finally:
            con.close()
        if ready:
            return ready[0]
        time.sleep(0.1)
    proc.kill()
    pytest.fail("training never reached epoch 3")


@pytest.mark.slow
def test_two_ctrl_c_10_to_30_ms_apart_never_leave_a_run_running(project, write_config):
    write_config("long", LONG)
    known: set[str] = set()
    for attempt, gap in enumerate((0.010, 0.030, 0.020)):  # bounded: three tries over 10-30 ms
        log = project / f"train-{attempt}.log"
        with log.open("w") as out:
            proc = subprocess.Popen([BPEXP, "train", "experiments/long.yaml", "--no-progress"], cwd=project,
                                    env=cli_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            run_id = _training_run(project, proc, known, log)
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
            time.sleep(gap)
            os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(timeout=120)
        known.add(run_id)
        output = log.read_text()
        assert code == 130, output
        assert "Traceback" not in output
        status = _statuses(project)[run_id]
        assert status == "KILLED", f"gap {gap}: the store holds {status}\n{output}"
        printed = [line for line in output.splitlines() if line.startswith("error: interrupted")]
        assert len(printed) == 1, output
        assert run_id in printed[0]
        said = re.search(r"ended (\w+)|as (\w+)", printed[0])
        assert said and (said.group(1) or said.group(2)) == status  # what it says is what the store holds
    assert "RUNNING" not in _statuses(project).values()
