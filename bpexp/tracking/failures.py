"""Store failures as one line: the one place that turns an MLflow store's exceptions into bpexp's message.

A full disk, a read-only or locked sqlite store and a tracking server that is gone
raise, from deep inside MLflow, SQLAlchemy or requests, exceptions whose text
quotes whole SQL statements with their parameters (tens of KB). Callers catch
what they must and ask :func:`store_problem` for the line to show and to store
(as ``bpexp.error``): it names the problem and the store's path or URL, and says
what to do. Everything else is left to the caller (None).
"""

from __future__ import annotations

import contextlib
import errno
import os

from bpexp.redaction import redact
from bpexp.tracking.store import TrackingUnavailableError

#: Longest message kept from an exception we do not recognize (an error tag is never 65 KB).
MAX_DETAIL = 300

#: Bounded retries for tracking servers, instead of MLflow's 7 retries with backoff factor 2
#: (~4.5 minutes of silence, *measured* in issue 11): 3 retries, 0, 2 and 4 s apart (plus up to 1 s
#: of jitter each), each request given up after 20 s. An environment variable set by the user wins.
HTTP_RETRY_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


class StoreWriteError(TrackingUnavailableError):
    """A write to the tracking store failed and cannot be retried; the message names the store."""


def bounded_http_retries() -> str:
    """Set MLflow's HTTP retry variables (unless set); returns the backoff as printed, e.g. ``"1, 2, 4 s"``."""
    for key, value in HTTP_RETRY_ENV.items():
        os.environ.setdefault(key, value)
    retries = int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    factor = float(os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"])
    # urllib3 sleeps factor * 2 ** (n - 1) before the n-th retry, none before the first (MLflow adds jitter)
    return ", ".join(f"{factor * 2 ** i if i else 0:g}" for i in range(retries)) + " s" if retries else "no retries"


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def where(tracking_uri: str) -> str:
    """The store as a person finds it: the database file of a sqlite store, else the (masked) URI."""
    if tracking_uri.startswith("sqlite:///"):
        return tracking_uri[len("sqlite:///") :]
    return redact(tracking_uri)


def short(exc: BaseException) -> str:
    """``Type: first line`` of an exception, at most :data:`MAX_DETAIL` characters."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:MAX_DETAIL]


def _read_only(path: str) -> bool:
    """A sqlite store's file or folder is on a read-only mount or not writable by us."""
    folder = os.path.dirname(path)
    if not os.path.isabs(path) or not os.path.isdir(folder):
        return False
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK))


def store_problem(exc: BaseException, tracking_uri: str) -> str | None:
    """One line for a store failure we recognize (disk full, read-only, locked, server gone), else None."""
    chain = list(_chain(exc))
    codes = {e.errno for e in chain if isinstance(e, OSError) and e.errno}
    text = " ".join(str(e).split("\n", 1)[0] for e in chain).lower()
    path = where(tracking_uri)
    if errno.ENOSPC in codes or "disk is full" in text or "no space left" in text:
        return f"the MLflow store {path} is out of disk space: free some space on its disk and run again"
    if errno.EROFS in codes or "readonly database" in text or "read-only file system" in text or _read_only(path):
        return f"the MLflow store {path} is read-only: use a writable store (--tracking-uri) or make it writable"
    if "database is locked" in text:
        return (f"the MLflow store {path} is locked: another process held it for longer than MLflow's 20 s busy "
                f"timeout; wait for it to finish (or stop it) and run again")
    if errno.EACCES in codes or "unable to open database file" in text:
        return (f"cannot open the MLflow store {path}: its file or folder cannot be opened for writing "
                f"(read-only or missing)")
    if any(type(e).__name__ in ("ConnectionError", "MaxRetryError", "NewConnectionError", "ReadTimeout",
                                "ConnectTimeout") for e in chain) or "max retries exceeded" in text:
        return (f"the MLflow tracking server at {path} stopped answering (gave up after "
                f"{os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES', '7')} retries, backoff {bounded_http_retries()})")
    return None


def connection_cut(exc: BaseException) -> bool:
    """The HTTP transport failed without MLflow's retries being spent (the server died mid-answer)."""
    chain = list(_chain(exc))
    transport = any(type(e).__module__.split(".")[0] in ("requests", "urllib3", "http") for e in chain)
    spent = any(type(e).__name__ in ("MaxRetryError", "RetryError") for e in chain)
    return transport and not spent and "max retries exceeded" not in " ".join(map(str, chain)).lower()


def as_store_error(exc: BaseException, tracking_uri: str, doing: str = "") -> StoreWriteError | None:
    """:class:`StoreWriteError` for a recognized store failure (``doing``: what failed), else None."""
    from bpexp.tracking.writer import TrackingWriteError

    if isinstance(exc, StoreWriteError):
        return exc
    if isinstance(exc, TrackingWriteError):  # the writer's errors are already short lines
        return StoreWriteError(str(exc))
    problem = store_problem(exc, tracking_uri)
    if problem is None:
        return None
    return StoreWriteError(f"{problem} ({doing} failed)" if doing else problem)


@contextlib.contextmanager
def store_errors(tracking_uri: str, doing: str = ""):
    """Within this block a recognized store failure is raised as one-line :class:`StoreWriteError`."""
    try:
        yield
    except Exception as exc:
        error = as_store_error(exc, tracking_uri, doing)
        if error is None:
            raise
        raise error from None


class _RetryLine:
    """Turns urllib3's "Retrying (Retry(total=2...)) after connection broken" warning into one short line."""

    def __init__(self):
        import logging

        self.handler = logging.Handler()
        self.handler.emit = self.emit

    def emit(self, record) -> None:
        import re
        import sys

        message = record.getMessage()
        if message.startswith("Retrying"):
            left = re.search(r"total=(\d+)", message)
            url = re.search(r"\): (\S+)$", message)
            print(f"bpexp: the tracking server did not answer{f' {url.group(1)}' if url else ''}; retrying "
                  f"({left.group(1) if left else '?'} retries left, backoff {bounded_http_retries()})",
                  file=sys.stderr)


_retry_line: _RetryLine | None = None


def print_retries() -> None:
    """Print one line per HTTP retry to the tracking server (its backoff is bounded: :data:`HTTP_RETRY_ENV`)."""
    import logging

    global _retry_line
    if _retry_line is None:
        _retry_line = _RetryLine()
        log = logging.getLogger("urllib3.connectionpool")
        log.addHandler(_retry_line.handler)
        log.propagate = False  # the one line above replaces urllib3's
