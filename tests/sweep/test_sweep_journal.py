"""The journal file survives a torn write and shares its lock with stock Optuna writers (real files, processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState
from sweep_helpers import run_cli

from bpexp.tuning.storage import FlockLock

TORN = b'{"op_code":6,"worker_id":"x","trial_id":1,"state":1,"val'  # a record cut mid-write: no newline


def stock_study(journal, name="xor-sweep"):
    """The study as stock Optuna reads it: default lock, no bpexp code."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(journal))))


def sweep(project, journal, mlflow_sqlite_uri, n):
    return run_cli(["sweep", "experiments/xor-sweep.yaml", "--n-trials", str(n), "--storage", str(journal),
                    "--tracking-uri", mlflow_sqlite_uri, "--no-progress"], cwd=project)


def test_torn_last_record_is_moved_aside_and_the_study_stays_readable(project, tmp_path, mlflow_sqlite_uri):
    journal = tmp_path / "journal.log"
    first = sweep(project, journal, mlflow_sqlite_uri, 2)
    assert first.returncode == 0, first.stderr
    before = [t.state for t in stock_study(journal).trials]
    assert before == [TrialState.COMPLETE, TrialState.COMPLETE]
    with open(journal, "ab") as f:
        f.write(TORN)  # what a crash or a full disk mid-append leaves

    resumed = sweep(project, journal, mlflow_sqlite_uri, 1)
    assert resumed.returncode == 0, resumed.stderr
    said = [line for line in resumed.stderr.splitlines() if "torn record" in line]
    assert len(said) == 1 and str(journal) in said[0] and f"({len(TORN)} bytes" in said[0]
    side = list(tmp_path.glob("journal.log.torn-*"))
    assert len(side) == 1 and side[0].read_bytes() == TORN  # the bytes are kept, next to the journal
    assert TORN not in journal.read_bytes()
    study = stock_study(journal)  # stock Optuna reads it, the COMPLETE trials stay COMPLETE
    states = [t.state for t in study.trials]
    assert states[:2] == [TrialState.COMPLETE] * 2 and states[2] in (TrialState.COMPLETE, TrialState.PRUNED)


def test_newline_terminated_garbage_at_the_end_is_moved_aside_too(tmp_path):
    from bpexp.tuning.storage import open_storage

    journal = tmp_path / "journal.log"
    optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(journal))))
    whole = journal.read_bytes()
    journal.write_bytes(whole + b"\x00\x00\x00\n")  # a full disk can leave zeros where a record was
    optuna.load_study(study_name="s", storage=open_storage(str(journal)))
    assert journal.read_bytes() == whole


def test_a_line_that_is_not_json_in_the_middle_is_one_clear_error(project, tmp_path, mlflow_sqlite_uri):
    journal = tmp_path / "journal.log"
    study = optuna.create_study(study_name="xor-sweep", direction="maximize",
                                storage=JournalStorage(JournalFileBackend(str(journal))))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:2]) + b'{"op_code":5,"wor{"op_code":0}\n' + b"".join(lines[2:]))
    done = sweep(project, journal, mlflow_sqlite_uri, 1)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, done.stderr
    assert f"{journal}, line 3, is not a JSON record" in errors[0]
    assert "Traceback" not in done.stderr


STOCK_WRITER = """
import sys, optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage = JournalStorage(JournalFileBackend(sys.argv[1]))
print("opened", flush=True)
optuna.create_study(study_name="stock", storage=storage)
print("written", flush=True)
"""


def test_stock_optuna_writers_wait_for_bpexp_and_bpexp_waits_for_them(tmp_path):
    journal = str(tmp_path / "journal.log")
    open(journal, "ab").close()
    lock = FlockLock(journal)
    lock.acquire()  # bpexp holds the journal's write lock
    proc = subprocess.Popen([sys.executable, "-c", STOCK_WRITER, journal], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "opened"
        time.sleep(1.5)
        assert proc.poll() is None  # the stock writer waits
        assert os.path.getsize(journal) == 0
    finally:
        lock.release()
    assert proc.wait(timeout=60) == 0
    assert os.path.getsize(journal) > 0

    stock = JournalFileSymlinkLock(journal)
    stock.acquire()  # now a stock writer holds Optuna's lock
    got = threading.Event()
    waiter = threading.Thread(target=lambda: (FlockLock(journal).acquire(), got.set()), daemon=True)
    waiter.start()
    assert not got.wait(1.0)  # bpexp waits for it
    stock.release()
    assert got.wait(10)


def test_a_symlink_left_by_a_killed_bpexp_writer_is_broken_at_once(tmp_path):
    journal = str(tmp_path / "journal.log")
    open(journal, "ab").close()
    child = subprocess.run([sys.executable, "-c", "import os, sys\nfrom bpexp.tuning.storage import FlockLock\n"
                            "FlockLock(sys.argv[1]).acquire()\nos._exit(0)", journal], timeout=60)
    assert child.returncode == 0 and os.path.islink(journal + ".lock")  # died holding both locks
    started = time.monotonic()
    lock = FlockLock(journal)
    lock.acquire()
    assert time.monotonic() - started < 1.0  # not Optuna's 30 s grace period
    lock.release()
    assert not os.path.lexists(journal + ".lock")


@pytest.fixture(autouse=True)
def _quiet():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
