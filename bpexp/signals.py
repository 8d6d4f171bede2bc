"""The one owner of SIGINT and SIGTERM in a bpexp process.

Every entry point (a CLI command, a sweep worker, :func:`bpexp.run` called from
a notebook) enters :func:`scope`. Inside it the handlers only *record* the
signal; nothing is raised from a handler, so no store write, queue operation or
``set_terminated`` is ever cut in half (a raising handler did exactly that: two
Ctrl-Cs 10-30 ms apart left runs RUNNING). The code polls instead:

- training calls :func:`check` after every epoch (the runner adds
  :class:`InterruptCheck` to ``fit``'s callbacks), which raises
  :class:`Interrupted` (a ``KeyboardInterrupt``) once;
- the sweep's trial loop asks :attr:`Scope.signalled` between trials;
- the runner checks between its stages (before training, before the model).

A second or third signal is only recorded: the first one already asked to stop.
Scopes nest: an inner :func:`scope` is the outer one. Outside the main thread
Python cannot set handlers; there a scope is passive (records nothing).

This module imports only the standard library: every layer may use it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM was recorded and a check point acted on it.

    Attributes
    ----------
    signum : int
    exit_code : int
        130 for SIGINT (Ctrl-C), 143 for SIGTERM, as shells report them.
    """

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(describe(signum))
        self.signum = signum
        self.exit_code = 128 + int(signum)


def describe(signum: int) -> str:
    return "terminated by SIGTERM" if signum == signal.SIGTERM else "interrupted (Ctrl-C)"


class Scope:
    """The signals recorded while a :func:`scope` is active."""

    def __init__(self, active: bool):
        self.active = active
        self.received: list[int] = []
        self.raised = False

    @property
    def signalled(self) -> int | None:
        """The first signal received (None: none)."""
        return self.received[0] if self.received else None

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal was recorded and none was raised yet."""
        if self.received and not self.raised:
            self.raised = True
            raise Interrupted(self.received[0])

    def _record(self, signum, frame) -> None:
        self.received.append(signum)


_current: Scope | None = None
_lock = threading.Lock()


@contextlib.contextmanager
def scope(redeliver: bool = False) -> Iterator[Scope]:
    """Own SIGINT/SIGTERM for the block (the outermost call installs the handlers).

    Parameters
    ----------
    redeliver : bool
        For entry points called by other code (``bpexp.run`` in a notebook): a
        signal recorded but never acted on is raised again, for the previous
        handler, when the outermost scope ends.
    """
    global _current
    if _current is not None:
        yield _current
        return
    if threading.current_thread() is not threading.main_thread():
        yield Scope(active=False)
        return
    own = Scope(active=True)
    with _lock:
        previous = {sig: signal.signal(sig, own._record) for sig in SIGNALS}
        _current = own
    try:
        yield own
    finally:
        with _lock:
            _current = None
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        if redeliver and not own.raised:
            for signum in dict.fromkeys(own.received):
                signal.raise_signal(signum)


def current() -> Scope | None:
    """The active scope of this process (None outside any)."""
    return _current


def check() -> None:
    """:meth:`Scope.check` of the active scope (nothing outside one)."""
    if _current is not None:
        _current.check()


def shielded():
    """Signals wait until the block is done: a scope that hands them on afterwards.

    For store writes and queue operations reached outside any entry point's scope
    (inside one, this is that scope, and it records them already).
    """
    return scope(redeliver=True)


class InterruptCheck:
    """A ``fit`` callback: :func:`check` after every epoch (kept duck-typed: ``train`` needs no import)."""

    def on_train_begin(self, trainer) -> None:
        check()

    def on_epoch_end(self, epoch, logs) -> None:
        check()

    def on_train_end(self, history) -> None:
        pass
