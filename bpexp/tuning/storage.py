"""Optuna storages: the embedded journal file, database URLs, heartbeats, readable errors.

The embedded default is ``<project>/mlruns/optuna-journal.log`` read and written
through ``JournalStorage(JournalFileBackend(...))``: safe for several processes on
one machine and much faster than SQLite under parallel workers (GUIDE §6).
``--storage`` also takes a database URL (``postgresql://...`` for many machines).

Heartbeats: a running trial's worker records a heartbeat every
``heartbeat_interval`` seconds; a trial whose last heartbeat is older than the
grace period is failed by the next worker that starts a trial (Optuna's
``fail_stale_trials``) or by the sweep's coordinator. Optuna 5.0 implements this
for ``RDBStorage`` only (verified: ``JournalStorage`` is not a ``BaseHeartbeat``),
so :class:`HeartbeatJournalStorage` adds it to the journal, keeping the last beat
in a trial system attribute.
"""

from __future__ import annotations

import fcntl
import os
import time
import warnings
from pathlib import Path

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat  # the interface RDBStorage implements (optuna 5.0)
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import BaseJournalFileLock  # the lock interface (not re-exported)
from optuna.trial import TrialState

from bpexp.errors import BpexpError

JOURNAL_NAME = "optuna-journal.log"
HEARTBEAT_ATTR = "bpexp:heartbeat"
SCHEMA_ATTEMPTS = 5


class StorageUnavailableError(BpexpError):
    """The Optuna storage cannot be opened or reached; the message names it."""


def default_storage(project: Path) -> str:
    """The embedded journal file of a project: ``<project>/mlruns/optuna-journal.log``."""
    return str((project / "mlruns" / JOURNAL_NAME).resolve())


def is_database_url(storage: str) -> bool:
    return "://" in storage


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` -> ``postgresql+psycopg2://`` (the driver bpexp ships with)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def describe(storage: str) -> str:
    """The storage for messages and tags: database passwords masked (:func:`bpexp.redaction.redact`)."""
    from bpexp.redaction import redact

    return redact(storage)


def open_storage(storage: str, *, heartbeat_interval: int = 2, grace_period: int | None = None):
    """An Optuna storage for ``storage`` (a database URL or a journal file path) with heartbeats on.

    Raises
    ------
    StorageUnavailableError
        Unknown URL scheme, missing driver, unreachable or refusing server,
        journal file in a missing directory. The message names the storage.
    """
    grace_period = grace_period or 5 * heartbeat_interval
    if is_database_url(storage):
        return _open_rdb(normalize_url(storage), heartbeat_interval, grace_period)
    return _open_journal(storage, heartbeat_interval, grace_period)


def _open_journal(path: str, heartbeat_interval: int, grace_period: int):
    file = Path(path).expanduser()
    if not file.parent.is_dir():
        raise StorageUnavailableError(f"cannot use the Optuna journal file {path}: "
                                      f"its folder {file.parent} does not exist")
    if file.is_dir():
        raise StorageUnavailableError(f"cannot use the Optuna journal file {path}: it is a folder")
    try:
        backend = JournalFileBackend(str(file), lock_obj=FlockLock(str(file)))
        return HeartbeatJournalStorage(backend, heartbeat_interval, grace_period)
    except (OSError, ValueError) as exc:
        raise StorageUnavailableError(f"cannot use the Optuna journal file {path}: {exc}") from None


def _open_rdb(url: str, heartbeat_interval: int, grace_period: int):
    shown = describe(url)
    engine_kwargs = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # stable since 2.x
                    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                      heartbeat_interval=heartbeat_interval, grace_period=grace_period)
            except Exception as exc:
                # Machines starting together on an empty database race to create Optuna's tables:
                # the loser gets a unique/duplicate-table violation; the tables exist once the winner is done.
                if type(exc).__name__ not in ("IntegrityError", "ProgrammingError") or attempt == SCHEMA_ATTEMPTS - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
    except ImportError as exc:
        raise StorageUnavailableError(f"cannot open the Optuna storage {shown}: missing database driver "
                                      f"({exc.name or exc}); for PostgreSQL: pip install psycopg2-binary") from None
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises many kinds; all mean "unusable"
        raise StorageUnavailableError(f"cannot open the Optuna storage {shown}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    if name == "NoSuchModuleError":
        return "unknown URL scheme (expected e.g. postgresql://user@host/db, sqlite:///file.db or a journal file path)"
    return f"{name}: {text[0] if text else ''}"[:300]


class FlockLock(BaseJournalFileLock):
    """The journal's write lock as an ``flock(2)`` on ``<journal>.flock``, released by the kernel when its holder dies.

    Optuna's default lock is a symlink that a SIGKILLed process leaves behind;
    every other process then waits its 30 s grace period before breaking it
    (*measured*: a killed worker stalled its sweep for 30 s). Every bpexp process
    writes the journal through this lock; readers (optuna-dashboard, widgets) need none.
    """

    def __init__(self, journal_path: str):
        self._path = journal_path + ".flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """``JournalStorage`` with heartbeats, so a killed worker's trial ends FAIL, not RUNNING forever.

    Parameters
    ----------
    backend : optuna.storages.journal.BaseJournalBackend
    heartbeat_interval, grace_period : int
        Seconds between beats; seconds without a beat before a running trial is stale.
    """

    def __init__(self, backend, heartbeat_interval: int, grace_period: int, stale_trial_callback=None):
        super().__init__(backend)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self._stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except (UpdateFinishedTrialError, KeyError):
            pass  # another process already failed it as stale: nothing left to keep alive

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            last = trial.system_attrs.get(HEARTBEAT_ATTR)
            if last is None:  # started, no beat yet: count from its start
                last = trial.datetime_start.timestamp() if trial.datetime_start else now
            if now - float(last) > self.grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        return self._stale_trial_callback


def worker_label() -> str:
    """``host:pid``: who runs a trial (stored on the trial, used to fail a dead worker's trials)."""
    return f"{os.uname().nodename}:{os.getpid()}"
