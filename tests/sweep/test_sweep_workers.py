"""``bpexp sweep`` as a real subprocess with worker processes: SIGKILL of a worker, SIGINT of the sweep, resume."""

from __future__ import annotations

import os
import signal
import time

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from sweep_helpers import (
    SLOW_SWEEP,
    finish,
    open_study,
    parent_runs,
    run_cli,
    running_trials,
    start_cli,
    trial_runs,
    wait_for,
    write_yaml,
)

from bpexp.tuning import PARENT_ATTR, RUN_ID_ATTR

pytestmark = pytest.mark.slow


@pytest.fixture
def slow_sweep(project):
    return write_yaml(project / "experiments" / "slow-sweep.yaml", SLOW_SWEEP)


def test_a_killed_worker_fails_its_trial_and_the_others_go_on(project, slow_sweep, mlflow_sqlite_uri, tmp_path):
    journal = str(tmp_path / "journal.log")
    log = tmp_path / "sweep.log"
    proc = start_cli(["sweep", str(slow_sweep), "--workers", "2", "--n-trials", "4", "--storage", journal,
                      "--tracking-uri", mlflow_sqlite_uri], cwd=project, log=log)
    try:
        # The coordinator (proc) runs trials too; kill a spawned worker.
        victim = wait_for(lambda: [t for t in running_trials(journal, "slow", min_epochs=2)
                                   if not t.user_attrs["bpexp_worker"].endswith(f":{proc.pid}")],
                          120, "a spawned worker's trial in training")[0]
        pid = int(victim.user_attrs["bpexp_worker"].rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
    finally:
        code, output = finish(proc, log)
    assert code == 0, output
    assert f"(pid {pid}) died (signal SIGKILL); trials marked FAIL: [{victim.number}]" in output
    assert "complete" in output and "best val_accuracy" in output  # the progress line

    study = open_study(journal, "slow")
    states = {t.number: t.state for t in study.trials}
    assert sorted(states) == [0, 1, 2, 3]  # --n-trials counts the killed trial; none lost, none extra
    assert states[victim.number] == TrialState.FAIL
    assert [s for n, s in states.items() if n != victim.number] == [TrialState.COMPLETE] * 3
    workers = {t.user_attrs["bpexp_worker"] for t in study.trials}
    assert len(workers) == 2  # two processes shared the work

    client = MlflowClient(mlflow_sqlite_uri)
    runs = {int(r.data.tags["bpexp.trial_number"]): r for r in trial_runs(client, "slow", "slow")}
    assert sorted(runs) == [0, 1, 2, 3]
    killed = runs[victim.number]
    assert killed.info.status == "FAILED" and killed.data.tags["bpexp.trial_state"] == "FAIL"
    assert "worker died (signal SIGKILL)" in killed.data.tags["bpexp.error"]
    assert study.trials[victim.number].user_attrs[RUN_ID_ATTR] == killed.info.run_id
    assert all(runs[n].info.status == "FINISHED" for n in runs if n != victim.number)


def test_sigint_stops_the_sweep_cleanly_and_a_rerun_resumes(project, slow_sweep, mlflow_sqlite_uri, tmp_path):
    journal = str(tmp_path / "journal.log")
    args = ["sweep", str(slow_sweep), "--storage", journal, "--tracking-uri", mlflow_sqlite_uri, "--no-progress"]
    log = tmp_path / "sweep.log"
    # Trials long enough to still be training when the signal lands (a 100-epoch digits trial takes < 1 s).
    proc = start_cli([*args, "--workers", "2", "--n-trials", "6", "--set", "base.training.epochs=5000"], cwd=project,
                     log=log)
    try:
        wait_for(lambda: len(running_trials(journal, "slow", min_epochs=2)) == 2, 120, "two trials in training")
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)  # to the coordinator only: it must stop its workers itself
    finally:
        code, output = finish(proc, log)
    assert code == 130, output
    assert time.monotonic() - started < 60
    assert "interrupted" in output and "Traceback" not in output

    study = open_study(journal, "slow")
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    interrupted = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(interrupted) >= 2
    client = MlflowClient(mlflow_sqlite_uri)
    parent_id = study.user_attrs[PARENT_ATTR]
    assert client.get_run(parent_id).info.status == "KILLED"
    runs = {int(r.data.tags["bpexp.trial_number"]): r for r in trial_runs(client, "slow", "slow")}
    assert all(r.info.status != "RUNNING" for r in runs.values())
    for t in interrupted:
        if t.number in runs:  # a trial interrupted before its run was created has none
            assert runs[t.number].info.status == "FAILED"
            assert runs[t.number].data.tags["bpexp.trial_state"] == "FAIL"
            # no epoch's metrics lost (2 workers on 2 cores write them from the worker itself)
            steps = [m.step for m in client.get_metric_history(runs[t.number].info.run_id, "val_accuracy")]
            assert steps == list(range(1, len(steps) + 1)) and len(steps) >= max(len(t.intermediate_values), 2)

    # Rerun: the study resumes, numbers continue, the parent run is the same and ends FINISHED.
    before = len(study.trials)
    again = run_cli([*args, "--n-trials", "1", "--set", "base.training.epochs=5"], cwd=project)
    assert again.returncode == 0, again.stdout + again.stderr
    study = open_study(journal, "slow")
    assert [t.number for t in study.trials] == list(range(before + 1))
    assert study.trials[-1].state == TrialState.COMPLETE
    assert study.user_attrs[PARENT_ATTR] == parent_id
    assert len(parent_runs(client, "slow", "slow")) == 1
    assert client.get_run(parent_id).info.status == "FINISHED"


def test_cli_names_a_bad_storage(project):
    result = run_cli(["sweep", "experiments/xor-sweep.yaml", "--storage", "postgresql://u:pw@127.0.0.1:1/nodb"],
                     cwd=project)
    assert result.returncode == 1
    assert "error: cannot open the Optuna storage postgresql+psycopg2://u:***@127.0.0.1:1/nodb" in result.stderr
    assert "Traceback" not in result.stderr and "pw@" not in result.stderr
    unreachable = run_cli(["sweep", "experiments/xor-sweep.yaml", "--tracking-uri", "http://127.0.0.1:1"],
                          cwd=project)
    assert unreachable.returncode == 1
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:1" in unreachable.stderr
