"""How many BLAS threads a :func:`bpexp.fit` call uses: measured at the start, not guessed.

Two OpenBLAS threads make an MNIST-sized step ~1.3-1.6x faster on a quiet 2-core
machine, make a digits-sized one slower (thread hand-off costs more than the
small products gain), and make everything 3-6x slower as soon as another
process is busy on the second core: each product then waits for the thread
that shares its core. Which case applies depends on the model, the batch and
the machine *now*, so :class:`BlasThreads` times a few real training steps on
one thread and on all available ones, keeps the faster (one thread unless the
others win clearly), re-measures every :data:`REPROBE_SECONDS` of training at an
epoch boundary, and restores the caller's setting at the end.

Results are bit-identical for a given seed and thread count. Across thread counts
they may differ by rounding: on some CPUs OpenBLAS's kernel splits a product's sums
among threads (``tests/test_threads.py``); pass ``threads=`` for a fixed count when
runs must be comparable bit for bit across machines and loads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from bpexp.errors import InvalidInputError
from bpexp.nn.parallel import available_cores

#: Training seconds between two measurements (between steps): a busy neighbour may arrive later.
REPROBE_SECONDS = 3.0
#: The same after a close call: one thread kept although several were faster, but not by
#: :data:`MIN_SPEEDUP` (or had one slow round), or because another process was running at that
#: moment. On a shared host a few milliseconds of probe can fall into a burst of a neighbour's work
#: (*measured*, MNIST-shaped steps: 2 threads 0.59-0.62x one thread's time in most probes, 0.92-0.97x
#: in some, with epochs on 2 threads 0.66-0.95 s against 0.95-1.13 s on one), so such a choice is
#: checked again soon rather than kept for 3 s.
REPROBE_SOON_SECONDS = 0.5
#: A step this many times slower than the last measurement suggests triggers a new one at once
#: (a neighbour arriving makes multi-threaded products 3-60x slower).
SLOW_STEP_FACTOR = 4.0
#: More threads must be at least this much faster than one to be used (one thread leaves the
#: other cores to the MLflow writer, a notebook, another run).
MIN_SPEEDUP = 1.15
#: Several threads are not used when, while they run, they spend more than this fraction of their
#: time runnable but waiting for a CPU: another process holds a core (the kernel's own count, see
#: :func:`run_queue_wait`). A step's timing alone is fooled by that: for a few milliseconds the
#: neighbour may be descheduled and two threads look fast, then every product waits for it.
MAX_WAIT_FRACTION = 0.1
#: Seconds of multi-threaded training between two looks at how long the threads waited for a CPU
#: (reading the kernel's counters costs ~30 us).
WAIT_CHECK_SECONDS = 0.25
_PROBE_SECONDS = 0.003  # per timed sample (>= 2 steps); a probe is 3 rounds x 2 settings of such samples
_controller = None


def check_threads(threads) -> int | str | None:
    """Validate a ``threads=`` value: a positive int, ``"auto"`` or ``None`` (leave BLAS alone)."""
    if threads is None or threads == "auto":
        return threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidInputError(f"threads must be a positive integer, 'auto' or None, got {threads!r}")
    return threads


def run_queue_wait() -> float | None:
    """Seconds this process's threads have spent runnable but waiting for a CPU, or None if unknown.

    Read from Linux's per-thread ``/proc/self/task/*/schedstat`` (run time, wait time and
    time slices in nanoseconds); a thread that has ended takes its share with it, so only
    differences over an interval in which the threads live are meaningful.
    """
    total = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
    except (OSError, ValueError, IndexError):  # not Linux, or schedstats unavailable
        return None
    return total / 1e9


def runnable_others(looks: int = 5, pause: float = 0.0005) -> int | None:
    """The fewest runnable tasks of other processes seen in a few quick looks, or None if unknown.

    Linux's ``/proc/loadavg`` counts the tasks running or ready to run right now (its fourth
    field); this process's own runnable threads (``/proc/self/task/*/stat``) are subtracted.
    The fewest over the looks ignores a task that only woke up for a moment.
    """
    seen = []
    try:
        for i in range(looks):
            if i:
                time.sleep(pause)
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
            seen.append(running - _own_running_threads())
    except (OSError, ValueError, IndexError):
        return None
    return max(0, min(seen))


def _own_running_threads() -> int:
    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                count += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):  # the thread ended meanwhile
            continue
    return count


def _blas_libraries() -> list:
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - scikit-learn depends on it
            return []
        _controller = ThreadpoolController()  # scans the loaded libraries once (~ms)
    return [lib for lib in _controller.lib_controllers if lib.user_api == "blas"]


class BlasThreads:
    """The BLAS thread count of one :func:`bpexp.fit` call.

    Parameters
    ----------
    threads : int, "auto" or None
        A fixed count, the measured choice, or ``None`` to leave BLAS as the caller set it.
    """

    def __init__(self, threads: int | str | None = "auto"):
        self.requested = check_threads(threads)
        self.libs = [] if self.requested is None else _blas_libraries()
        self.original = [lib.num_threads for lib in self.libs]
        self.current: int | None = max(self.original) if self.original else None
        self.timings: dict[int, float] = {}
        self.auto = bool(self.libs) and self.requested == "auto"
        self._last_probe = 0.0
        self._mark: tuple[float | None, float] = (None, 0.0)  # (run-queue wait, time) at the last check
        self._expected = float("inf")  # seconds of one probe step on the current setting
        self._reprobe_after = REPROBE_SECONDS  # seconds of training until the next probe
        self.wait_fraction: float | None = None  # of the last probe's multi-threaded steps
        self.reason = "fixed" if self.requested != "auto" else ""  # why the last probe chose as it did

    def start(self, step: Callable[[], None]) -> int | None:
        """Set the thread count (timing ``step``, one training step, when auto); returns it."""
        if not self.libs:
            return self.current
        if self.requested != "auto":
            self._set(self.requested)
        else:
            self.probe(step)
        return self.current

    def after_step(self, seconds: float, step: Callable[[], None]) -> None:
        """Called between training steps with the last step's duration: measure again every
        :data:`REPROBE_SECONDS`, or at once when several threads suddenly got much slower or
        waited for a CPU over the last :data:`WAIT_CHECK_SECONDS` (auto only)."""
        if not self.auto:
            return
        now = time.perf_counter()
        since = now - self._last_probe
        if since >= self._reprobe_after or (self.current > 1 and since >= WAIT_CHECK_SECONDS and (
                seconds > SLOW_STEP_FACTOR * self._expected or self._waited_since_mark(now))):
            self.probe(step)

    def _waited_since_mark(self, now: float) -> bool:
        """Whether the threads waited for a CPU more than :data:`MAX_WAIT_FRACTION` since the last
        mark; sets a new mark. A probe lasts milliseconds, and a neighbour that the scheduler held
        back during it (a thread that slept gets the CPU first for a while) shows here."""
        if now - self._mark[1] < WAIT_CHECK_SECONDS:
            return False
        wait = run_queue_wait()
        (w0, t0), self._mark = self._mark, (wait, now)
        return wait is not None and w0 is not None and (wait - w0) > MAX_WAIT_FRACTION * (now - t0) * self.current

    def probe(self, step: Callable[[], None]) -> None:
        """Time ``step`` on one thread and on all available ones, 3 interleaved rounds; keep the faster.

        More threads win only when they are faster by :data:`MIN_SPEEDUP` in the median round, their
        slowest round is no slower than one thread's, and they did not wait for a CPU more than
        :data:`MAX_WAIT_FRACTION` of their time (another process is busy on a core): on a loaded
        machine several threads are sometimes fast for a few milliseconds and then 10-60x slower,
        while one thread costs at most the speed-up it forgoes.
        """
        most = min(max(self.original), available_cores())
        self._last_probe = time.perf_counter()
        if most <= 1:
            self._set(1)
            self.auto = False  # nothing to choose from
            self.reason = "one core available"
            return
        others = runnable_others()
        if others is not None and most - others <= 1:  # the other cores are taken right now
            self.timings, self.wait_fraction = {}, None
            # Seen in a few looks over ~2 ms: it may be gone in a moment (a neighbour that is really busy costs
            # only these looks at the next probe).
            self._choose(1, f"{others} other process{'es' if others > 1 else ''} running on the other cores",
                         soon=True)
            return
        self._set(most)
        t0 = time.perf_counter()
        step()  # also wakes the BLAS threads up
        reps = max(2, min(50, int(_PROBE_SECONDS / max(time.perf_counter() - t0, 1e-7))))
        rounds, waited = self._timed_rounds(step, most, reps)
        ratios = sorted(m / o for m, o in zip(rounds[most], rounds[1]))
        faster = (len(ratios) == 3 and ratios[1] * MIN_SPEEDUP <= 1.0
                  and max(rounds[most]) <= max(rounds[1]) and waited <= MAX_WAIT_FRACTION)
        self.timings = {n: min(t) for n, t in rounds.items()}
        self.wait_fraction = waited
        median_ratio = ratios[len(ratios) // 2]
        close_call = not faster and waited <= MAX_WAIT_FRACTION and median_ratio < 1.0
        self._choose(most if faster else 1,
                     f"{most} threads waited {waited:.0%} of their time for a CPU" if waited > MAX_WAIT_FRACTION
                     else f"{most} threads took {median_ratio:.2f}x one thread's time",
                     soon=close_call)

    def _choose(self, n: int, reason: str, soon: bool = False) -> None:
        """End a probe on ``n`` threads: the step time to expect, when to probe next (``soon``: after a close
        call), and fresh marks for the next checks."""
        self._set(n)
        self.reason = reason
        # Soon is never later than the regular interval (which may be set shorter, e.g. to probe every step).
        self._reprobe_after = min(REPROBE_SOON_SECONDS, REPROBE_SECONDS) if soon else REPROBE_SECONDS
        self._expected = self.timings.get(n, float("inf"))
        self._last_probe = time.perf_counter()
        self._mark = (run_queue_wait(), self._last_probe)

    def _timed_rounds(self, step, most: int, reps: int) -> tuple[dict[int, list[float]], float]:
        """Up to 3 interleaved rounds of ``reps`` steps on 1 and ``most`` threads: seconds a step, and the
        largest fraction of thread time that the ``most`` threads spent waiting for a CPU in a round."""
        rounds: dict[int, list[float]] = {1: [], most: []}
        waited = 0.0
        for _ in range(3):
            for n in (1, most):
                self._set(n)
                step()  # untimed: the first product after a switch wakes the BLAS threads (~6 ms, measured)
                w0, t0 = run_queue_wait(), time.perf_counter()
                for _ in range(reps):
                    step()
                elapsed, w1 = time.perf_counter() - t0, run_queue_wait()
                rounds[n].append(elapsed / reps)
                if n == most and w0 is not None and w1 is not None:
                    waited = max(waited, (w1 - w0) / (elapsed * most))
            if rounds[most][-1] > 2 * rounds[1][-1] or waited > MAX_WAIT_FRACTION:
                break  # a busy neighbour: more rounds would only cost more slow steps
        return rounds, waited

    def _set(self, n: int) -> None:
        if n != self.current:
            for lib in self.libs:
                lib.set_num_threads(n)
            self.current = n

    def restore(self) -> None:
        """Give the caller back its own setting."""
        for lib, n in zip(self.libs, self.original):
            lib.set_num_threads(n)
        self.current = max(self.original) if self.original else None


def limit_blas_threads(n: int = 1):
    """Limit BLAS (OpenBLAS/MKL) to ``n`` threads in this process; returns the limiter (``.restore_original_limits()``).

    ``threadpoolctl`` comes with scikit-learn; without it this does nothing (returns None).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        return None
    return threadpool_limits(limits=n, user_api="blas")
