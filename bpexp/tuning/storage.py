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
import json
import os
import sys
import time
import warnings
from pathlib import Path

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat  # the interface RDBStorage implements (optuna 5.0)
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import LOCK_FILE_SUFFIX, BaseJournalFileLock  # not re-exported
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


def open_storage(storage: str, *, heartbeat_interval: int = 2, grace_period: int | None = None,
                 stale_trial_callback=None):
    """An Optuna storage for ``storage`` (a database URL or a journal file path) with heartbeats on.

    ``stale_trial_callback(study, trial)`` is called for each trial failed for a
    stale heartbeat (e.g. :class:`RetryDeadWorkerTrials`).

    Raises
    ------
    StorageUnavailableError
        Unknown URL scheme, missing driver, unreachable or refusing server,
        journal file in a missing directory. The message names the storage.
    """
    grace_period = grace_period or 5 * heartbeat_interval
    if is_database_url(storage):
        return _open_rdb(normalize_url(storage), heartbeat_interval, grace_period, stale_trial_callback)
    return _open_journal(storage, heartbeat_interval, grace_period, stale_trial_callback)


def _open_journal(path: str, heartbeat_interval: int, grace_period: int, callback=None):
    file = Path(path).expanduser()
    if not file.parent.is_dir():
        raise StorageUnavailableError(f"cannot use the Optuna journal file {path}: "
                                      f"its folder {file.parent} does not exist")
    if file.is_dir():
        raise StorageUnavailableError(f"cannot use the Optuna journal file {path}: it is a folder")
    try:
        lock = FlockLock(str(file))
        backend = JournalFileBackend(str(file), lock_obj=lock)
        check_journal(str(file), lock)
        return HeartbeatJournalStorage(backend, heartbeat_interval, grace_period, callback)
    except ValueError as exc:  # Optuna's replay met a line that is not a record (json's error is a ValueError)
        found = bad_line(str(file))
        if found is None:
            raise StorageUnavailableError(f"cannot use the Optuna journal file {path}: {exc}") from None
        number, start = found
        raise JournalCorruptError(f"the Optuna journal file {file}, line {number}, is not a JSON record "
                                  f"({start!r}); the study cannot be read past it: restore the file from a "
                                  f"backup or move that line out by hand") from None
    except OSError as exc:
        raise StorageUnavailableError(f"cannot use the Optuna journal file {path}: {exc}") from None


def _open_rdb(url: str, heartbeat_interval: int, grace_period: int, callback=None):
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
                                                      heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                                                      heartbeat_stale_trial_callback=callback)
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
    """The journal's write lock: an ``flock(2)`` on ``<journal>.flock``, then Optuna's own symlink lock.

    The flock is released by the kernel when its holder dies, so bpexp processes
    never wait on a SIGKILLed one (Optuna's symlink lock alone stalls every other
    process for its 30 s grace period, *measured*). Taking Optuna's symlink
    ``<journal>.lock`` as well, inside the flock, makes stock Optuna writers on the
    same file (``JournalFileBackend(path)`` with its default lock) safe: they wait
    for bpexp and bpexp waits for them. A bpexp symlink names its holder
    (``bpexp:host:pid``) instead of the journal, so a bpexp process holding the
    flock knows a bpexp symlink it finds was left behind by a dead process and
    removes it at once; a stock one it waits for, breaking it after Optuna's
    grace period as Optuna does.
    """

    def __init__(self, journal_path: str, grace_period: float = 30.0):
        self._path = journal_path + ".flock"
        self._symlink = journal_path + LOCK_FILE_SUFFIX
        self._grace_period = grace_period
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._fd = fd
            self._take_symlink()
        except BaseException:
            self._fd = None
            os.close(fd)
            raise
        return True

    def _take_symlink(self) -> None:
        me = f"{BPEXP_LOCK_PREFIX}{os.uname().nodename}:{os.getpid()}"
        wait, seen, since = 0.001, None, time.monotonic()
        while True:
            try:
                os.symlink(me, self._symlink)
                return
            except FileExistsError:
                pass
            try:
                target, mtime = os.readlink(self._symlink), os.lstat(self._symlink).st_mtime
            except OSError:
                continue  # released meanwhile
            if target.startswith(BPEXP_LOCK_PREFIX):  # we hold the flock: a bpexp holder is gone
                _unlink(self._symlink)
                continue
            if mtime != seen:
                seen, since = mtime, time.monotonic()
            elif time.monotonic() - since > self._grace_period:
                _unlink(self._symlink)  # a stock Optuna writer died holding it (Optuna breaks it the same way)
                continue
            time.sleep(wait)
            wait = min(wait * 2, 0.1)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                _unlink(self._symlink)
            finally:
                os.close(fd)  # closing the descriptor releases the flock


BPEXP_LOCK_PREFIX = "bpexp:"


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ------------------------------------------------------------------------------ torn records
class JournalCorruptError(StorageUnavailableError):
    """A line in the middle of the journal is not a JSON record; the message names the file and line."""


def check_journal(path: str, lock: BaseJournalFileLock) -> Path | None:
    """Make the journal end on a whole record before anyone appends to it; returns the side file if it did not.

    A crash or a full disk in the middle of a write leaves a torn last record: a
    line without its newline, or one that is not JSON. Optuna's reader skips it,
    but the next append would glue a new record onto it, and from then on the
    whole study is unreadable. The torn bytes are moved (under the write lock) to
    ``<journal>.torn-<time>`` and one line says so.
    """
    with _locked(lock):
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            start = _last_record_start(f, size)
            f.seek(start)
            tail = f.read()
            if not tail or (tail.endswith(b"\n") and _is_json(tail)):
                return None
            side = Path(f"{path}.torn-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
            with open(side, "ab") as out:
                out.write(tail)
                out.flush()
                os.fsync(out.fileno())
            f.truncate(start)
            f.flush()
            os.fsync(f.fileno())
    print(f"bpexp: the Optuna journal {path} ended on a torn record ({len(tail)} bytes, from a crash or a full "
          f"disk); moved it to {side}", file=sys.stderr)
    return side


def _last_record_start(f, size: int) -> int:
    """Offset of the last line's first byte (a trailing newline belongs to the line it ends)."""
    end = max(size - 1, 0)  # the final byte, newline or not, belongs to the last line
    while end > 0:
        pos = max(0, end - 65536)
        f.seek(pos)
        i = f.read(end - pos).rfind(b"\n")
        if i >= 0:
            return pos + i + 1
        end = pos
    return 0


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


class _locked:
    def __init__(self, lock):
        self._lock = lock

    def __enter__(self):
        self._lock.acquire()

    def __exit__(self, *exc):
        self._lock.release()


def bad_line(path: str) -> tuple[int, str] | None:
    """The first line of the journal that is not a JSON record: ``(line number, first bytes)``, else None."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not _is_json(line):
                return number, line[:60].decode("utf-8", "replace").strip()
    return None


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


class RetryDeadWorkerTrials:
    """Run a trial whose worker died again, with the same params, up to ``max_retry`` times.

    Optuna's :class:`~optuna.storages.RetryFailedTrialCallback` semantics (system
    attributes ``failed_trial`` and ``retry_history``, so its static methods read
    them), called for trials failed as stale or as a dead worker's. Unlike it, the
    copy leaves out the dead worker's user attributes (its worker, its MLflow run)
    and heartbeat, and gives the sweep's invocation one more trial slot, so the
    retry runs now rather than on the next resume.
    """

    def __init__(self, max_retry: int, slots=None):
        self.max_retry, self.slots = max_retry, slots

    def __call__(self, study, trial) -> None:
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(history) > self.max_retry:
            return
        system_attrs = {"failed_trial": trial.system_attrs.get("failed_trial", trial.number),
                        "retry_history": history}
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params=trial.params,
                                                  distributions=trial.distributions, system_attrs=system_attrs))
        if self.slots is not None:
            self.slots.give_back()
