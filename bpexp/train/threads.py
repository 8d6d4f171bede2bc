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

OpenBLAS splits a product's output, not its sums, among threads, so the thread
count does not change the numbers on this build (``tests/test_threads.py``
checks it); pass ``threads=`` for a fixed count anyway when runs must be
comparable across machines and BLAS builds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from bpexp.errors import InvalidInputError

#: Training seconds between two measurements (between steps): a busy neighbour may arrive later.
REPROBE_SECONDS = 3.0
#: A step this many times slower than the last measurement suggests triggers a new one at once
#: (a neighbour arriving makes multi-threaded products 3-60x slower).
SLOW_STEP_FACTOR = 4.0
#: More threads must be at least this much faster than one to be used (one thread leaves the
#: other cores to the MLflow writer, a notebook, another run).
MIN_SPEEDUP = 1.15
_PROBE_SECONDS = 0.003  # per timed sample (>= 2 steps); a probe is 3 rounds x 2 settings of such samples
_controller = None


def check_threads(threads) -> int | str | None:
    """Validate a ``threads=`` value: a positive int, ``"auto"`` or ``None`` (leave BLAS alone)."""
    if threads is None or threads == "auto":
        return threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidInputError(f"threads must be a positive integer, 'auto' or None, got {threads!r}")
    return threads


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's or ``taskset``'s)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


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
        self._expected = float("inf")  # seconds of one probe step on the current setting

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
        :data:`REPROBE_SECONDS`, or at once when several threads suddenly got much slower (auto only)."""
        if not self.auto:
            return
        since = time.perf_counter() - self._last_probe
        if since >= REPROBE_SECONDS or (
            self.current > 1 and since >= 0.25 and seconds > SLOW_STEP_FACTOR * self._expected
        ):
            self.probe(step)

    def probe(self, step: Callable[[], None]) -> None:
        """Time ``step`` on one thread and on all available ones, 3 interleaved rounds; keep the faster.

        More threads win only when they are faster by :data:`MIN_SPEEDUP` in the median round *and*
        their slowest round is no slower than one thread's: on a loaded machine several threads are
        sometimes fast for a few milliseconds and then 10-60x slower, while one thread costs at most
        the speed-up it forgoes.
        """
        most = min(max(self.original), available_cores())
        self._last_probe = time.perf_counter()
        if most <= 1:
            self._set(1)
            self.auto = False  # nothing to choose from
            return
        self._set(most)
        t0 = time.perf_counter()
        step()  # also wakes the BLAS threads up
        reps = max(2, min(50, int(_PROBE_SECONDS / max(time.perf_counter() - t0, 1e-7))))
        rounds: dict[int, list[float]] = {1: [], most: []}
        for _ in range(3):
            for n in (1, most):
                self._set(n)
                step()  # untimed: the first product after a switch wakes the BLAS threads (~6 ms, measured)
                t0 = time.perf_counter()
                for _ in range(reps):
                    step()
                rounds[n].append((time.perf_counter() - t0) / reps)
            if rounds[most][-1] > 2 * rounds[1][-1]:
                break  # clearly slower (a busy neighbour): more rounds would only cost more slow steps
        ratios = sorted(m / o for m, o in zip(rounds[most], rounds[1]))
        faster = (len(ratios) == 3 and ratios[1] * MIN_SPEEDUP <= 1.0
                  and max(rounds[most]) <= max(rounds[1]))
        self.timings = {n: min(t) for n, t in rounds.items()}
        self._set(most if faster else 1)
        self._expected = self.timings[self.current]
        self._last_probe = time.perf_counter()

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
