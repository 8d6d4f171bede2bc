"""A sweep in which no trial completed fails; ``study.retry_failed`` reruns the trial of a worker that died."""

from __future__ import annotations

import os
import signal

import pytest
from mlflow import MlflowClient
from optuna.storages import RetryFailedTrialCallback
from optuna.trial import TrialState
from sweep_helpers import (
    SLOW_SWEEP,
    finish,
    open_study,
    parent_runs,
    run_cli,
    running_trials,
    start_cli,
    wait_for,
    write_yaml,
)

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]

ALL_DIVERGE = {
    "base": {"dataset": {"name": "diabetes"}, "model": {"hidden": [8]},
             "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9}, "training": {"epochs": 4}},
    "space": {"optimizer.lr": {"type": "float", "low": 5.0, "high": 10.0}},  # with momentum: inf in epoch 1
    "objective": {"metric": "val_loss"},
    "pruner": "none",
    "study": {"name": "doomed", "experiment": "doomed"},
}


def test_a_sweep_in_which_no_trial_completed_exits_nonzero_with_one_line(project, tmp_path, mlflow_sqlite_uri):
    config = write_yaml(project / "experiments" / "doomed-sweep.yaml", ALL_DIVERGE)
    journal = str(tmp_path / "journal.log")
    done = run_cli(["sweep", str(config), "--n-trials", "2", "--storage", journal, "--tracking-uri",
                    mlflow_sqlite_uri, "--no-progress"], cwd=project)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "no trial of study 'doomed' completed (2 FAIL of 2); trial 0:" in errors[0]
    assert "diverged" in errors[0]
    assert "Traceback" not in done.stderr
    (parent,) = parent_runs(MlflowClient(mlflow_sqlite_uri), "doomed", "doomed")
    assert parent.info.status == "FAILED" and "no trial" in parent.data.tags["bpexp.error"]


def test_retry_failed_reruns_the_trial_of_a_killed_worker(project, mlflow_sqlite_uri, tmp_path):
    slow = write_yaml(project / "experiments" / "slow-sweep.yaml", _long_trials())
    journal = str(tmp_path / "journal.log")
    log = tmp_path / "sweep.log"
    proc = start_cli(["sweep", str(slow), "--workers", "2", "--n-trials", "3", "--storage", journal,
                      "--tracking-uri", mlflow_sqlite_uri, "--no-progress"], cwd=project, log=log)
    try:
        victim = wait_for(lambda: [t for t in running_trials(journal, "slow", min_epochs=2)
                                   if not t.user_attrs["bpexp_worker"].endswith(f":{proc.pid}")] or _ended(proc, log),
                          180, "a spawned worker's trial in training")[0]
        os.kill(int(victim.user_attrs["bpexp_worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    finally:
        code, output = finish(proc, log, timeout=400)
    assert code == 0, output
    # Run identity on the trial: recorded when the run was created, while it still trained.
    client = MlflowClient(mlflow_sqlite_uri)
    victim_run = client.get_run(victim.user_attrs["mlflow_run_id"])
    assert victim_run.data.tags["bpexp.trial_number"] == str(victim.number)
    assert victim_run.info.status == "FAILED" and "its worker died" in victim_run.data.tags["bpexp.error"]
    study = open_study(journal, "slow")
    retried = [t for t in study.trials if RetryFailedTrialCallback.retried_trial_number(t) == victim.number]
    assert study.trials[victim.number].state == TrialState.FAIL
    assert len(retried) == 1, [(t.number, t.state, t.system_attrs) for t in study.trials]
    again = retried[0]
    assert again.params == victim.params
    assert RetryFailedTrialCallback.retry_history(again) == [victim.number]
    assert len(study.trials) == 4  # three asked for, plus the retry
    assert again.state == TrialState.COMPLETE


def test_a_retry_given_back_after_every_other_worker_stopped_is_run_by_the_same_call(
        project, mlflow_sqlite_uri, tmp_path):
    """The race: the worker dies after the coordinator has claimed its last trial and stopped asking.

    The spawned worker is stopped (SIGSTOP, outside the journal's and the store's locks)
    mid-training, the coordinator's only trial completes (2 trials: one each, so it has nothing
    left to claim and only waits), then the worker is killed: the retry's slot comes back when
    no live worker asks for one any more.
    """
    slow = write_yaml(project / "experiments" / "slow-sweep.yaml", _long_trials())
    journal = str(tmp_path / "journal.log")
    log = tmp_path / "sweep.log"
    proc = start_cli(["sweep", str(slow), "--workers", "2", "--n-trials", "2", "--storage", journal,
                      "--tracking-uri", mlflow_sqlite_uri, "--no-progress"], cwd=project, log=log)
    mine = f":{proc.pid}"
    try:
        victim = wait_for(lambda: [t for t in running_trials(journal, "slow", min_epochs=2)
                                   if not t.user_attrs["bpexp_worker"].endswith(mine)] or _ended(proc, log),
                          180, "a spawned worker's trial in training")[0]
        pid = int(victim.user_attrs["bpexp_worker"].rsplit(":", 1)[1])
        _stop_outside_locks(pid, journal, mlflow_sqlite_uri)
        try:
            wait_for(lambda: [t for t in open_study(journal, "slow").trials
                              if t.state == TrialState.COMPLETE and t.user_attrs["bpexp_worker"].endswith(mine)],
                     180, "the coordinator's own trial to complete")
        finally:
            os.kill(pid, signal.SIGKILL)
    finally:
        code, output = finish(proc, log, timeout=400)
    assert code == 0, output
    study = open_study(journal, "slow")
    states = [(t.number, t.state.name, RetryFailedTrialCallback.retried_trial_number(t)) for t in study.trials]
    assert states == [(0, "COMPLETE", None), (1, "FAIL", None), (2, "COMPLETE", 1)] or \
        states == [(0, "FAIL", None), (1, "COMPLETE", None), (2, "COMPLETE", 0)], states
    again = study.trials[2]
    assert again.params == study.trials[victim.number].params
    assert again.user_attrs["bpexp_worker"].endswith(mine)  # the coordinator ran it: nobody else was left
    assert "died (signal SIGKILL)" in output


def _ended(proc, log) -> None:
    if proc.poll() is not None:
        pytest.fail(f"the sweep ended before a spawned worker trained a trial:\n{log.read_text()[-3000:]}")


def _stop_outside_locks(pid: int, journal: str, tracking_uri: str) -> None:
    """SIGSTOP ``pid`` at a moment it holds neither the journal's flock nor the sqlite store's write lock.

    A process stopped inside either would block the coordinator's next write.
    """
    import fcntl
    import sqlite3
    import time

    db = tracking_uri[len("sqlite:///"):]
    for _ in range(500):
        os.kill(pid, signal.SIGSTOP)
        _wait_stopped(pid)  # kill() only queues the signal: a thread still running could take a lock after the check
        free = True
        with open(journal + ".flock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
            except BlockingIOError:
                free = False
        if free:
            con = sqlite3.connect(db, timeout=0, isolation_level=None)
            try:
                con.execute("BEGIN IMMEDIATE")
                con.execute("ROLLBACK")
            except sqlite3.OperationalError:
                free = False
            finally:
                con.close()
        if free:
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    pytest.fail(f"worker {pid} always held a lock")


def _wait_stopped(pid: int, timeout: float = 10.0) -> None:
    """Return once every thread of ``pid`` is in the stopped state (``T`` in ``/proc/<pid>/task/*/stat``)."""
    import glob
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for stat in glob.glob(f"/proc/{pid}/task/*/stat"):
            try:
                with open(stat) as fh:
                    states.append(fh.read().rsplit(")", 1)[1].split()[0])
            except OSError:  # a thread that ended meanwhile
                continue
        if states and all(state in "Tt" for state in states):
            return
        time.sleep(0.005)
    pytest.fail(f"process {pid} did not stop within {timeout} s of SIGSTOP")


def _long_trials() -> dict:
    """The slow sweep with ``retry_failed: 1`` and trials of several seconds.

    100 digits epochs take under a second on a quiet machine: the coordinator can run every
    trial before its spawned worker has finished importing, leaving no worker to kill.
    """
    base = {**SLOW_SWEEP["base"], "training": {"epochs": 1000, "batch_size": 32}}
    return {**SLOW_SWEEP, "base": base, "study": {**SLOW_SWEEP["study"], "retry_failed": 1}}
