"""Metric (and model) writing off the training process.

MLflow's SQL store costs 60-90 µs per metric in its ORM, whatever the batching
(``log_batch``), and a small model's epoch takes a few milliseconds: written
from the training process, logging a dozen per-epoch metrics adds 10-40 % to
training. A writer thread does not help (it holds the GIL for that ORM work,
measured slower still). So metrics go through a queue to a helper process that
writes them with ``MlflowClient.log_batch`` on the other core.

Both ends batch: the trainer hands the queue what accumulated over
``SEND_INTERVAL`` (each ``put`` wakes the queue's feeder thread, which competes
for the GIL), and the helper writes as soon as ``WRITE_BATCH`` metrics or
``WRITE_INTERVAL`` seconds have accumulated, so it keeps up during training,
the flush at the end of a run has little left to write, and the MLflow UI
shows live curves. A run can also end with a :meth:`MetricWriter.checkpoint`
instead of a flush (sweep trials do): the next trial starts at once and the
confirmation is collected later, at the next flush or when the sink closes.
Every run hands the sink its params and summary tags too, and such a run its
FINISHED end (see :data:`Record`): one ``log_batch`` carries them with the
metrics, and the end is written last, so the store never shows the run
FINISHED before the rest.

A sink is opened by whoever opens runs (:func:`open_sink`: ``bpexp.run`` for
its run, a sweep worker for all its trials) and passed to each run it opens.
The helper ignores SIGINT (a Ctrl-C reaches the whole process group; the
trainer decides what to do); on SIGTERM, on a stop message and when its parent
dies it writes what it holds, then exits. The parent keeps every metric until
the helper acknowledges a flush, and writes them itself if the helper is gone,
so no metric is lost on either side.

The helper also logs a run's pyfunc model (:meth:`MetricWriter.start_model`):
it has MLflow imported already, and logging a model costs ~1 s of MLflow work
that would otherwise follow the plots in the training process; now the two
overlap. The model travels as the folder bpexp saves; if the helper dies, the
model is logged from the training process instead.

When every core trains (a sweep with as many workers as cores), a helper has
no idle core to use: it only competes with training, and each one costs an
MLflow import (~2.5 s of CPU) in every worker process. Those workers open an
:class:`InlineWriter` instead, which writes from the training process itself
in one ``log_batch`` per ``INLINE_INTERVAL`` and at each run's end
(*measured*: a 2-worker digits sweep spent ~5 s of its CPU on helper imports
alone). ``benchmarks/bench_tracking.py`` measures both on a standalone run.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from bpexp.redaction import redact
from bpexp.signals import shielded

SEND_INTERVAL = 0.02  # seconds the trainer collects metrics before handing them to the queue
WRITE_INTERVAL = 0.25  # seconds between the helper's writes while metrics trickle in
WRITE_BATCH = 100  # the helper writes as soon as this many metrics are waiting
MAX_BATCH = 1000  # MLflow's log_batch limit on metrics per call
INLINE_INTERVAL = 1.0  # seconds between an InlineWriter's writes during a run (the UI stays live)

# What a sink holds for a run travels as plain tuples, cheap to pickle: a metric as
# (key, value, timestamp_ms, step); a param or tag as (PARAM or TAG, key, value); the run's end
# as (END, status, ""), written after everything queued before it. A sweep trial's params,
# summary tags and end thus cost no store round trip of their own (each one is ~10 ms on sqlite).
MetricTuple = tuple[str, float, int, int]
PARAM, TAG, END = "param", "tag", "end"
Record = MetricTuple | tuple[str, str, str]


def param_records(params: dict[str, str]) -> list[Record]:
    return [(PARAM, k, v) for k, v in params.items()]


def tag_records(tags: dict[str, Any]) -> list[Record]:
    return [(TAG, k, str(v)) for k, v in tags.items()]


class TrackingWriteError(RuntimeError):
    """Metrics could not be written to the tracking store."""


class MetricWriter:
    """Queue metrics for a run; :meth:`flush` blocks until they are stored.

    One is opened by whoever opens runs (:func:`open_sink`) and reused by all of them.
    """

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self._start()
        self._lock = threading.Lock()

    def _start(self) -> None:
        """Start the helper process, with nothing held."""
        ctx = mp.get_context("spawn")  # fork would share MLflow's DB engines and locks
        self._inbox = ctx.Queue()
        self._outbox = ctx.Queue()
        self._proc = ctx.Process(
            target=_serve,
            args=(self.tracking_uri, self._inbox, self._outbox, os.getpid()),
            name="bpexp-metric-writer",
            daemon=True,
        )
        self._proc.start()
        # Metrics not yet confirmed written, in segments sealed by checkpoint tokens: the
        # helper's ("flushed", token) reply confirms every segment up to that token.
        self._segments: list[tuple[int | None, dict[str, list[Record]]]] = [(None, defaultdict(list))]
        self._outgoing: dict[str, list[Record]] = defaultdict(list)
        self._last_send = 0.0
        self._token = 0  # the last checkpoint sent
        self._acked = 0  # the last checkpoint the helper confirmed
        self._errors: list[str] = []
        self._broken = False  # a write failed: closing does not wait for the helper to retry what it holds
        self._models: dict[int, _ModelJob] = {}  # pyfunc models handed to the helper, by token

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    def log(self, run_id: str, metrics: list[Record]) -> None:
        """Queue ``metrics`` (or any :data:`Record`: params, tags, the run's end) for ``run_id`` without waiting.

        Raises
        ------
        TrackingWriteError
            The helper reported a failed write (a full disk, a read-only store...):
            training stops at the first one instead of going on with nowhere to write.
        """
        with self._lock:
            self._segments[-1][1][run_id].extend(metrics)
            self._outgoing[run_id].extend(metrics)
            if time.monotonic() - self._last_send >= SEND_INTERVAL:
                self._send()
                self._collect_acks(wait_for=None)
                if self._errors:
                    self._broken = True
                    raise TrackingWriteError(_error_line(self.tracking_uri, self._errors))

    def checkpoint(self) -> None:
        """Have everything queued so far written soon, without waiting for it.

        The next :meth:`flush` (at the latest when the process exits) waits for
        it and reports any error. Sweep trials end this way, so the next trial
        does not wait for the last one's metrics.
        """
        with self._lock:
            self._seal(urgent=False)
            self._collect_acks(wait_for=None)

    def flush(self, timeout: float = 300.0) -> None:
        """Block until everything queued so far is written.

        Raises
        ------
        TrackingWriteError
            If the store rejected a write. Metrics the helper could not take
            (it died) are written from this process instead.
        """
        with self._lock:
            self._collect_acks(wait_for=None)
            if self._errors:  # the store already failed: do not wait for the helper's retries of the rest
                self._broken = True
                errors, self._errors = self._errors, []
                raise TrackingWriteError(_error_line(self.tracking_uri, errors))
            self._seal(urgent=True)
            alive = self._collect_acks(wait_for=self._token, timeout=timeout)
            pending = self._unconfirmed() if not alive else {}
            self._segments = [(None, defaultdict(list))]
            errors, self._errors = self._errors, []
        if pending:  # the helper is gone: write what it may not have written
            errors += _write_all(_client(self.tracking_uri), pending, self.tracking_uri)
        if errors:
            raise TrackingWriteError(_error_line(self.tracking_uri, errors))

    def _send(self) -> None:
        """Hand what accumulated to the queue (with the lock held)."""
        with shielded():
            for run_id, metrics in self._outgoing.items():
                if metrics:
                    self._inbox.put(("records", run_id, metrics))
            self._outgoing = defaultdict(list)
        self._last_send = time.monotonic()

    def _seal(self, urgent: bool) -> None:
        """Send what accumulated and a checkpoint closing the current segment (if it holds anything).

        An urgent one (a flush) makes the helper write at once; otherwise it confirms
        the checkpoint after its next scheduled write.
        """
        if not any(self._segments[-1][1].values()):
            if urgent and self._acked < self._token:  # an earlier checkpoint is still unconfirmed
                with shielded():
                    self._inbox.put(("flush", self._token))
            return
        self._send()
        self._token += 1
        with shielded():
            self._inbox.put(("flush" if urgent else "mark", self._token))
        self._segments[-1] = (self._token, self._segments[-1][1])
        self._segments.append((None, defaultdict(list)))

    def _collect_acks(self, wait_for: int | None, timeout: float = 0.0) -> bool:
        """Read the helper's confirmations; with ``wait_for``, until that token. False if the helper died."""
        deadline = time.monotonic() + timeout
        while wait_for is None or self._acked < wait_for:
            if self._read_one(timeout=0.2 if wait_for is not None else None):
                continue
            if wait_for is None:
                break
            if not self._proc.is_alive():
                return False
            if time.monotonic() > deadline:
                self._errors.append(f"the metric writer did not finish within {timeout:.0f} s")
                break
        self._segments = [seg for seg in self._segments if seg[0] is None or seg[0] > self._acked]
        return True

    def _read_one(self, timeout: float | None) -> bool:
        """Take one message from the helper, waiting up to ``timeout`` s (None: only one already there)."""
        try:
            with shielded():  # Ctrl-C waits at most one get (0.2 s)
                msg = self._outbox.get(timeout=timeout) if timeout is not None else self._outbox.get_nowait()
        except queue.Empty:
            return False
        self._take(*msg)
        return True

    def _take(self, kind: str, token: int, payload) -> None:
        """One message from the helper: a confirmed checkpoint, a failed write, or a logged model."""
        if kind == "flushed":
            self._acked = max(self._acked, token)
            self._errors.extend(payload)
        elif kind == "error":  # a failed write, reported at once
            self._errors.extend(e for e in payload if e not in self._errors)
        elif kind == "model" and token in self._models:
            self._models[token].outcome = payload

    # -------------------------------------------------------------- the pyfunc model
    def start_model(self, run_id: str, model, example) -> int:
        """Have the helper log ``model`` as ``run_id``'s pyfunc model while this process goes on.

        The helper has MLflow imported already, and this process is free meanwhile
        (``bpexp.run`` draws its plots). :meth:`model_uri` waits for the result.
        """
        job = _ModelJob.saved(self.tracking_uri, run_id, model, example)
        with self._lock:
            token = max(self._models, default=0) + 1
            self._models[token] = job
            self._send()
            with shielded():
                self._inbox.put(("model", token, (run_id, job.folder, example)))
        return token

    def model_uri(self, token: int) -> str:
        """The ``models:/m-...`` URI of the model :meth:`start_model` handed over, once it is logged.

        Raises
        ------
        TrackingWriteError
            The store refused it (the message is one line). If the helper died
            meanwhile, the model is logged from this process instead.
        """
        with self._lock:
            job = self._models[token]
            while job.outcome is None and self._proc.is_alive():
                self._read_one(timeout=0.2)
            del self._models[token]
        return job.result()

    def _unconfirmed(self) -> dict[str, list[Record]]:
        merged: dict[str, list[Record]] = defaultdict(list)
        for _, runs in self._segments:
            for run_id, metrics in runs.items():
                merged[run_id].extend(metrics)
        return {run: ms for run, ms in merged.items() if ms}

    def abandon(self) -> None:
        """The store failed for good: drop what is queued and stop the helper now (it would retry each write).

        A later run on this sink starts a new helper (the store may work again by then).
        """
        with self._lock:
            self._stop_now()
            for job in self._models.values():
                job.outcome = job.outcome or (None, "abandoned: the store failed before the model was logged")
            self._start()

    def _stop_now(self) -> None:
        self._inbox.cancel_join_thread()  # what is still in the pipe has no reader now: exit must not wait for it
        self._proc.kill()
        self._proc.join(timeout=10)

    def close(self) -> None:
        """Flush, then stop the helper process (at once if the store already failed: nothing more can be written)."""
        if self._broken:
            self._stop_now()
            _discard(self._models)
            return
        try:
            self.flush()
        finally:
            if self._proc.is_alive():
                self._inbox.put(("stop",))
                self._proc.join(timeout=30)
            if self._proc.is_alive():
                self._proc.terminate()
            _discard(self._models)  # models nobody asked for any more (Ctrl-C while the plots were drawn)


class InlineWriter:
    """:class:`MetricWriter`'s interface, writing from this process: for processes that share no idle core.

    Metrics are written in one ``log_batch`` call per run once ``INLINE_INTERVAL``
    seconds have passed since the last write, and at every checkpoint and flush
    (a run's end). A write is never cut in half by Ctrl-C: signals wait until it
    is done, so what is held is either written or still held for the next write.
    """

    alive = True

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self._client = _client(tracking_uri)
        self._pending: dict[str, list[Record]] = defaultdict(list)
        self._last_write = time.monotonic()
        self._errors: list[str] = []
        self._models: dict[int, _ModelJob] = {}
        self._lock = threading.Lock()

    def log(self, run_id: str, metrics: list[Record]) -> None:
        """Hold ``metrics`` (any :data:`Record`) for ``run_id``; write all held once ``INLINE_INTERVAL`` passed.

        Raises :class:`TrackingWriteError` at the first failed write.
        """
        with self._lock:
            self._pending[run_id].extend(metrics)
            if time.monotonic() - self._last_write >= INLINE_INTERVAL:
                self._write()
                if self._errors:
                    raise TrackingWriteError(_error_line(self.tracking_uri, self._errors))

    def checkpoint(self) -> None:
        """Write what is held now; errors are raised by the next :meth:`flush`."""
        with self._lock:
            self._write()

    def flush(self, timeout: float = 300.0) -> None:
        """Write what is held now. Raises :class:`TrackingWriteError` if the store rejected a write."""
        with self._lock:
            self._write()
            errors, self._errors = self._errors, []
        if errors:
            raise TrackingWriteError(_error_line(self.tracking_uri, errors))

    def _write(self) -> None:
        with shielded():
            if any(self._pending.values()):
                self._errors += _write_all(self._client, self._pending, self.tracking_uri)
            self._pending = defaultdict(list)
            self._last_write = time.monotonic()

    def start_model(self, run_id: str, model, example) -> int:
        """Log ``model`` as ``run_id``'s pyfunc model now; :meth:`model_uri` gives the result."""
        job = _ModelJob.saved(self.tracking_uri, run_id, model, example)
        job.outcome = _log_model_from_folder(self.tracking_uri, run_id, job.folder, example)
        token = max(self._models, default=0) + 1
        self._models[token] = job
        return token

    def model_uri(self, token: int) -> str:
        """The URI of the model :meth:`start_model` logged (raises :class:`TrackingWriteError` if it failed)."""
        return self._models.pop(token).result()

    def abandon(self) -> None:
        """The store failed for good: drop what is held."""
        with self._lock:
            self._pending, self._errors = defaultdict(list), []

    def close(self) -> None:
        """Write what is held now and remove the folders of models nobody asked for."""
        try:
            self.flush()
        finally:
            _discard(self._models)


MetricSink = MetricWriter | InlineWriter


@dataclass
class _ModelJob:
    """A pyfunc model to log for a run: saved to a folder, logged by the helper or by this process."""

    tracking_uri: str
    run_id: str
    folder: str  # the model saved by bpexp (removed once the job is done)
    example: Any
    outcome: tuple[str | None, str | None] | None = None  # (URI, error line) once logged or refused

    @classmethod
    def saved(cls, tracking_uri: str, run_id: str, model, example) -> _ModelJob:
        job = cls(tracking_uri, run_id, tempfile.mkdtemp(prefix="bpexp-model-"), example)
        try:
            model.save(job.folder)
        except BaseException:
            shutil.rmtree(job.folder, ignore_errors=True)
            raise
        return job

    def result(self) -> str:
        """The model's URI, logging it from this process if nobody answered (the helper died)."""
        try:
            uri, error = self.outcome or _log_model_from_folder(self.tracking_uri, self.run_id, self.folder,
                                                                  self.example)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
        if error is not None:
            raise TrackingWriteError(error)
        return uri


def _discard(jobs: dict[int, _ModelJob]) -> None:
    """Remove the saved folders of model jobs whose result nobody will ask for."""
    for job in jobs.values():
        shutil.rmtree(job.folder, ignore_errors=True)
    jobs.clear()


def open_sink(tracking_uri: str, helper: bool = True) -> MetricSink:
    """A metric sink for runs on ``tracking_uri``, owned by whoever opens the runs.

    The owner passes it to each :class:`~bpexp.tracking.TrackedRun` it opens and
    closes it when its last run has ended (:func:`metric_sink` does both ends).

    Parameters
    ----------
    helper : bool, default True
        Write from a helper process on another core (:class:`MetricWriter`); False
        writes from this process (:class:`InlineWriter`), for processes that share
        no idle core, such as sweep workers on every core.
    """
    return MetricWriter(tracking_uri) if helper else InlineWriter(tracking_uri)


@contextlib.contextmanager
def metric_sink(tracking_uri: str, helper: bool = True):
    """:func:`open_sink` for the block; on leaving it, the sink is flushed and closed.

    A failure to close while another error leaves the block is printed in one
    line rather than raised over that error.
    """
    sink = open_sink(tracking_uri, helper)
    try:
        yield sink
    except BaseException:
        problem = close_sink(sink)
        if problem:
            import sys

            print(f"bpexp: {problem}", file=sys.stderr)
        raise
    sink.close()


def close_sink(sink: MetricSink) -> str | None:
    """Flush and close ``sink``; what went wrong as one line (None: every metric was written)."""
    try:
        sink.close()
    except Exception as exc:  # noqa: BLE001 - reported by the caller, in one line
        return redact(f"could not write every metric to {sink.tracking_uri}: {exc}")
    return None


# --------------------------------------------------------------------------- helper process
def _client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri)


def _write_all(client, pending: dict[str, list[Record]], tracking_uri: str) -> list[str]:
    """Write ``pending``; returns one short line per failed run (never the store's 65 KB SQL text)."""
    from bpexp.tracking.failures import short, store_problem

    errors = []
    for run_id, records in pending.items():
        try:
            _write_run(client, run_id, records)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
            errors.append(store_problem(exc, tracking_uri) or f"could not write to {redact(tracking_uri)}: "
                          f"{short(exc)}")
    return errors


def _write_run(client, run_id: str, records: list[Record]) -> None:
    """One run's records: ``log_batch`` calls within MLflow's limits, then its end if one was queued."""
    from mlflow.entities import Metric, Param, RunTag

    metrics = [Metric(*r) for r in records if len(r) == 4]
    params = [Param(r[1], r[2]) for r in records if r[0] == PARAM and len(r) == 3]
    tags = [RunTag(r[1], r[2]) for r in records if r[0] == TAG and len(r) == 3]
    ends = [r[1] for r in records if r[0] == END and len(r) == 3]
    while metrics or params or tags:
        # At most 100 params, 100 tags and 1000 entities in all per call (MLflow's limits).
        p, t = params[:100], tags[:100]
        m = metrics[: MAX_BATCH - len(p) - len(t)]
        _log_batch(client, run_id, m, p, t)
        metrics, params, tags = metrics[len(m):], params[len(p):], tags[len(t):]
    if ends:
        client.set_terminated(run_id, status=ends[-1])


def _log_batch(client, run_id: str, metrics: list, params: list, tags: list) -> None:
    from bpexp.tracking.failures import connection_cut

    try:
        client.log_batch(run_id, metrics=metrics, params=params, tags=tags, synchronous=True)
    except Exception as exc:
        if not connection_cut(exc):
            raise
        # The server went away in the middle of its answer, which MLflow's bounded (and printed)
        # retries do not cover: ask once more, through them. A record written twice is stored once.
        client.log_batch(run_id, metrics=metrics, params=params, tags=tags, synchronous=True)


def _log_model_from_folder(tracking_uri: str, run_id: str, folder: str, example) -> tuple[str | None, str | None]:
    """Log the model saved in ``folder`` as ``run_id``'s pyfunc model: (its URI, None) or (None, one line)."""
    from bpexp.nn import load_model_folder
    from bpexp.tracking.failures import short, store_problem
    from bpexp.tracking.model import log_pyfunc_model

    try:
        return log_pyfunc_model(tracking_uri, run_id, load_model_folder(folder), example), None
    except Exception as exc:  # noqa: BLE001 - reported to whoever waits for the model, in one line
        return None, store_problem(exc, tracking_uri) or f"could not log the model of run {run_id}: {short(exc)}"


def _error_line(tracking_uri: str, errors: list[str]) -> str:
    """The writer's errors as one line: the distinct ones, the first few."""
    distinct = list(dict.fromkeys(errors))
    more = f" (and {len(distinct) - 3} more)" if len(distinct) > 3 else ""
    return "; ".join(distinct[:3]) + more


class _Terminate(BaseException):
    """SIGTERM in the helper. A BaseException, so that no ``except Exception`` on the way
    (``_write_all`` records store errors that way) can swallow it."""


def _raise_terminate(signum, frame):
    raise _Terminate()


def _serve(tracking_uri: str, inbox, outbox, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_terminate)
    try:
        _serve_loop(tracking_uri, inbox, outbox, parent_pid)
    except _Terminate:
        pass  # _serve_loop wrote what it held on its way out
    # Everything is written and committed. Hand the last confirmations to the pipe, then skip
    # the interpreter's teardown of MLflow (~0.7 s, measured), which a closing parent waits for.
    outbox.close()
    outbox.join_thread()
    os._exit(0)


def _serve_loop(tracking_uri: str, inbox, outbox, parent_pid: int) -> None:
    from bpexp.tracking.store import quiet_mlflow_logs

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    quiet_mlflow_logs()  # a failed write is reported to the trainer in one line, not logged with its traceback
    client = _client(tracking_uri)
    pending: dict[str, list[Record]] = defaultdict(list)
    errors: list[str] = []

    def write() -> None:
        if pending:
            failed = _write_all(client, pending, tracking_uri)
            if failed:
                outbox.put(("error", 0, failed))  # at once: the trainer stops at its next epoch
            errors.extend(failed)
            pending.clear()

    def log_model(token: int, job: tuple) -> None:
        write()  # the run's metrics first
        outbox.put(("model", token, _log_model_from_folder(tracking_uri, *job)))

    try:
        _receive(inbox, outbox, parent_pid, pending, errors, write, log_model)
    finally:
        # Stop message, dead parent or SIGTERM: take what is already queued, write it all.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            try:
                msg = inbox.get_nowait()
            except (queue.Empty, OSError, EOFError):
                break
            if msg[0] == "records":
                pending[msg[1]].extend(msg[2])
        write()


def _receive(inbox, outbox, parent_pid, pending, errors, write, log_model) -> None:
    """Collect metrics, write them in batches, confirm checkpoints once what precedes them is written.

    ``("flush", token)`` writes at once and confirms; ``("mark", token)`` (a
    checkpoint nobody waits for) is confirmed after the next scheduled write, so
    it does not make this process write while the trainer starts its next run.
    """
    last_write = time.monotonic()
    marks: list[int] = []

    def write_and_confirm() -> None:
        nonlocal last_write
        write()
        last_write = time.monotonic()
        if marks:
            outbox.put(("flushed", max(marks), errors[:]))
            marks.clear()
            errors.clear()

    while True:
        try:
            msg = inbox.get(timeout=0.1)
        except queue.Empty:
            msg = None
            if os.getppid() != parent_pid:  # parent gone
                return
        if msg is not None:
            kind = msg[0]
            if kind == "records":
                pending[msg[1]].extend(msg[2])
            elif kind in ("flush", "mark"):
                marks.append(msg[1])
                if kind == "flush" or not any(pending.values()):
                    write_and_confirm()
                    continue
            elif kind == "model":
                log_model(msg[1], msg[2])
            elif kind == "stop":
                return
        waiting = sum(len(m) for m in pending.values())
        if (waiting or marks) and (waiting >= WRITE_BATCH or time.monotonic() - last_write >= WRITE_INTERVAL):
            write_and_confirm()
