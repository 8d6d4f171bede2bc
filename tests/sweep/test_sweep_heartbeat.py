"""Heartbeats on the journal storage: a live trial stays RUNNING, a SIGKILLed worker's trial becomes FAIL.

Optuna 5.0 has heartbeats for RDB storages only; bpexp adds them to the journal file.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
import warnings

import optuna
import pytest
from optuna.trial import TrialState
from sweep_helpers import cli_env, wait_for

from bpexp.tuning.storage import HEARTBEAT_ATTR, HeartbeatJournalStorage, open_storage

pytestmark = pytest.mark.slow

WORKER = textwrap.dedent(
    """
    import sys, time, optuna
    from bpexp.tuning.storage import open_storage
    storage = open_storage(sys.argv[1], heartbeat_interval=1, grace_period=3)
    study = optuna.load_study(study_name="hb", storage=storage)
    study.optimize(lambda trial: time.sleep(120) or 0.0, n_trials=1)
    """
)


def _fail_stale(study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def test_journal_heartbeat_fails_the_trial_of_a_killed_worker(tmp_path):
    path = str(tmp_path / "journal.log")
    storage = open_storage(path, heartbeat_interval=1, grace_period=3)
    assert isinstance(storage, HeartbeatJournalStorage)
    study = optuna.create_study(study_name="hb", storage=storage)
    worker = subprocess.Popen([sys.executable, "-c", WORKER, path], env=cli_env())
    try:
        trial = wait_for(lambda: [t for t in study.get_trials(states=(TrialState.RUNNING,))
                                  if HEARTBEAT_ATTR in t.system_attrs], 60, "the worker's first heartbeat")[0]
        time.sleep(4)  # longer than the grace period: only the heartbeats keep it alive
        _fail_stale(study)
        assert study.trials[trial.number].state == TrialState.RUNNING
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        time.sleep(4)
        _fail_stale(study)
        assert study.trials[trial.number].state == TrialState.FAIL
    finally:
        worker.kill()
        worker.wait()
