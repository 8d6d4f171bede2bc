"""A sweep worker: claim a trial slot, run one trial, repeat (in-process or as a spawned process).

Workers are processes, not threads: NumPy training holds the GIL most of an
epoch, so threads barely overlap (GUIDE §6). Each worker opens its own storage
connection and its own seeded sampler on a study the coordinator already created.

``--n-trials N`` is a total over the invocation's workers: they claim slots from
one shared counter before each trial, so exactly N trials are added however
the work is split (a killed worker's trial is one of them, recorded FAIL).

One BLAS thread per worker: NumPy's OpenBLAS starts a thread per core in every
process, so K workers on K cores oversubscribe them (*measured* on 2 cores: two
processes training digits side by side each took 3.5x as long as one alone; with
one BLAS thread each, both ran at full speed, and one thread is as fast as two for
these matrix sizes).

Ctrl-C (and SIGTERM) are recorded by the process's :func:`bpexp.signals.scope`:
a signal while a trial trains ends it after the current epoch (its run ends
KILLED, the trial FAIL); a signal between trials, or a second one, only stops
the worker before the next trial, so Optuna's bookkeeping is never cut in half.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass

from bpexp import signals
from bpexp.train.loop import limit_blas_threads

EXIT_INTERRUPTED = 130


class Slots:
    """How many trials are left to start, shared by the workers of one invocation."""

    def __init__(self, total: int | None, ctx=None):
        ctx = ctx or mp.get_context("spawn")
        self._left = ctx.Value("q", -1 if total is None else int(total))  # -1: unlimited
        self._started = ctx.Value("q", 0)
        self._finished = ctx.Value("q", 0)
        self._stop = ctx.Value("b", 0)

    def claim(self) -> bool:
        """Take one slot; False when none is left or a stop was requested."""
        with self._left.get_lock():
            if self._stop.value or self._left.value == 0:
                return False
            if self._left.value > 0:
                self._left.value -= 1
            self._started.value += 1
            return True

    def give_back(self) -> None:
        """One more trial to start (a retried trial replaces one that failed)."""
        with self._left.get_lock():
            if self._left.value >= 0:
                self._left.value += 1

    def done(self) -> None:
        with self._finished.get_lock():
            self._finished.value += 1

    def stop(self) -> None:
        self._stop.value = 1

    @property
    def left(self) -> int:
        """Slots not yet claimed (-1: unlimited)."""
        return self._left.value

    @property
    def stopped(self) -> bool:
        return bool(self._stop.value)

    @property
    def started(self) -> int:
        return self._started.value

    @property
    def finished(self) -> int:
        return self._finished.value


@dataclass
class WorkerSpec:
    setup: object  # TrialSetup
    index: int
    seed: int
    deadline: float | None  # time.time() after which no trial starts
    parent_pid: int | None = None  # a spawned worker stops taking trials when its coordinator is gone
    #: Write metrics from the worker itself, not through a helper process: every core trains
    #: (see bpexp.tracking.writer).
    inline_metrics: bool = False


def run_worker(spec: WorkerSpec, slots: Slots, on_trial_end=None, sink=None) -> bool:
    """Run trials until the slots, the deadline or a stop run out; True unless interrupted.

    Parameters
    ----------
    on_trial_end : callable, optional
        Called with no arguments after each trial (the in-process progress line).
    sink : MetricWriter or InlineWriter, optional
        The metric sink for the trials' runs, owned by the caller. By default the
        worker opens its own (inline when ``spec.inline_metrics``) and closes it
        after its last trial, printing one line if a metric could not be written.
    """
    from bpexp.tracking.writer import close_sink, open_sink

    with signals.scope() as scope:
        own = sink is None
        sink = open_sink(spec.setup.tracking_uri, helper=not spec.inline_metrics) if own else sink
        try:
            return _run_worker(spec, slots, on_trial_end, scope, sink)
        finally:
            problem = close_sink(sink) if own else None
            if problem:
                print(f"bpexp: {problem}", file=sys.stderr)


def _run_worker(spec: WorkerSpec, slots: Slots, on_trial_end, scope, sink) -> bool:
    import optuna

    from bpexp.tuning.objective import Objective
    from bpexp.tuning.space import make_pruner, make_sampler
    from bpexp.tuning.storage import RetryDeadWorkerTrials, open_storage, worker_label

    setup = spec.setup
    study_cfg = setup.sweep.config.study
    quiet_optuna()
    retry = RetryDeadWorkerTrials(study_cfg.retry_failed, slots) if study_cfg.retry_failed else None
    storage = open_storage(setup.storage, heartbeat_interval=study_cfg.heartbeat_interval,
                           grace_period=study_cfg.grace_period, stale_trial_callback=retry)
    sampler = make_sampler(setup.sweep.config.sampler, spec.seed)
    study = optuna.load_study(study_name=setup.study_name, storage=storage, sampler=sampler,
                              pruner=make_pruner(setup.sweep))
    objective = Objective(setup, sink, worker=worker_label())
    try:
        _trial_loop(spec, slots, study, objective, on_trial_end, scope)
    except KeyboardInterrupt:
        slots.stop()
        return False
    return scope.signalled is None


def _trial_loop(spec: WorkerSpec, slots: Slots, study, objective, on_trial_end, scope) -> None:
    """One trial per claimed slot, until the slots, the deadline, a stop, a signal or the coordinator run out."""
    while not slots.stopped:
        if scope.signalled is not None:
            slots.stop()  # the other workers stop before their next trial too
            break
        if spec.deadline is not None and time.time() >= spec.deadline:
            break
        if spec.parent_pid is not None and os.getppid() != spec.parent_pid:
            break  # the coordinator was killed: finish the current trial (done) and stop
        if not slots.claim():
            break
        try:
            # catch=(Exception,): a failing trial is recorded FAIL and the sweep goes on.
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)
        finally:
            slots.done()
            if on_trial_end is not None:
                on_trial_end()


def worker_main(conn, slots: Slots) -> None:
    """Entry point of a spawned worker process; exit code 130 when interrupted.

    The coordinator starts its workers first thing, before it loads the data,
    opens the storage and creates the study, so the seconds a new process spends
    importing MLflow, Optuna and scikit-learn overlap with that setup. The worker
    then waits for its :class:`WorkerSpec` on ``conn`` (``None``: the
    sweep did not start, nothing to do). The signal scope is in place from the start.
    """
    with signals.scope():
        _worker_main(conn, slots)


def _worker_main(conn, slots: Slots) -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from bpexp.tracking.store import quiet_mlflow_logs

        quiet_mlflow_logs()
        limit_blas_threads(1)
        _warm_up()
        spec = conn.recv()
        conn.close()
        ok = True if spec is None else run_worker(spec, slots)
    except (KeyboardInterrupt, EOFError):  # EOFError: the coordinator went away before sending a spec
        ok = False
    sys.stdout.flush()
    sys.stderr.flush()
    # Trials, runs and metrics are all written: skip the interpreter's teardown of MLflow, Optuna and
    # scikit-learn (most of a second, measured), which the coordinator waits for before it finishes.
    os._exit(0 if ok else EXIT_INTERRUPTED)


def _warm_up() -> None:
    """Import what every trial needs while the coordinator is still setting the sweep up."""
    import mlflow  # noqa: F401

    import bpexp.runner  # noqa: F401
    import bpexp.tuning.objective  # noqa: F401


class Standby:
    """Worker processes started early, waiting for their specs (see :func:`worker_main`)."""

    def __init__(self, n: int, slots: Slots):
        ctx = mp.get_context("spawn")  # fork would copy MLflow's and Optuna's open connections and locks
        self.procs, self._conns = [], []
        for i in range(1, n + 1):
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=worker_main, args=(receive, slots), name=f"bpexp-sweep-worker-{i}")
            proc.start()
            receive.close()  # the child holds its end: EOF for it if this process dies
            self.procs.append(proc)
            self._conns.append(send)

    def launch(self, specs: list[WorkerSpec]) -> list:
        """Send each waiting process its spec; returns the processes."""
        for conn, spec in zip(self._conns, specs):
            conn.send(spec)
            conn.close()
        self._conns = []
        return self.procs

    def cancel(self) -> None:
        """The sweep never started: release the waiting processes (no-op after :meth:`launch`)."""
        for conn in self._conns:
            try:
                conn.send(None)
                conn.close()
            except OSError:
                pass
        if self._conns:
            for proc in self.procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.kill()
        self._conns = []


class _NoTraceback(logging.Filter):
    """Keep Optuna's one-line "Trial 3 failed ..." warning, drop the traceback under it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def quiet_optuna() -> None:
    """Optuna logs every finished trial at INFO; the sweep's own progress line replaces that."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Records of child loggers ("optuna.study._optimize") reach the library's handler, not
    # the "optuna" logger's own filters: filter at the handler.
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())
