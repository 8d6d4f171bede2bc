"""A second thread for the elementwise half of a training step.

An optimizer step is ~10 whole-array NumPy passes over the parameters, and NumPy
releases the GIL inside each pass. When the BLAS thread policy found a free core
for the matrix products (see ``bpexp.train.threads``), that core is idle while one
thread runs the step; :class:`SecondThread` runs the second half of the parameter
array there at the same time. Halves are disjoint slices and every pass is
elementwise, so the numbers are the same bits as on one thread.

The hand-off is two locks used as binary semaphores (a few microseconds), not a
``concurrent.futures`` pool (a Future and a queue per step, ~30 us).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class SecondThread:
    """A daemon thread that runs one function while the calling thread runs another.

    Call :meth:`close` when done (``bpexp.fit`` does, also when training fails).
    """

    def __init__(self, name: str = "bpexp-step"):
        self._go = threading.Lock()
        self._done = threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._job: Callable[[], None] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            self._go.acquire()
            job = self._job
            if job is not None:
                try:
                    job()
                except BaseException as exc:  # handed to the caller of run()
                    self._error = exc
            self._done.release()
            if job is None:
                return

    def run(self, mine: Callable[[], None], theirs: Callable[[], None]) -> None:
        """Run ``theirs`` on the second thread and ``mine`` here; return when both are done."""
        self._job = theirs
        self._go.release()
        try:
            mine()
        finally:
            self._done.acquire()  # never leave the other half still writing
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """End the thread (idempotent)."""
        if self._thread.is_alive():
            self._job = None
            self._go.release()
            self._done.acquire()
            self._thread.join()
