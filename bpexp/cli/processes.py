"""Running a server (``mlflow ui``, the scoring server of ``bpexp serve``) in the foreground of a bpexp command.

The server runs in its own process group so that bpexp decides what happens on
Ctrl-C or SIGTERM: the signal is forwarded to the whole group (the mlflow
process and the uvicorn/gunicorn workers it starts), bpexp waits for them and
kills what is left, so nothing keeps serving after ``bpexp ui``/``bpexp serve``
is gone. ``subprocess.call`` would leave the children running on SIGTERM.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE = 10.0  # seconds the server gets to stop after a forwarded signal before SIGKILL


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound now (None when it can)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As uvicorn binds: connections a stopped server left in TIME_WAIT do not keep it from
        # listening again, so they must not make the port look busy; another listener still does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use (another server?); pick another with --port"
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def env_with_own_bin(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child that must find this environment's programs (uvicorn) first on PATH."""
    own_bin = str(Path(sys.executable).absolute().parent)
    env = {**os.environ, **(extra or {})}
    env["PATH"] = os.pathsep.join([own_bin, *[p for p in env.get("PATH", "").split(os.pathsep) if p]])
    return env


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers a GET with HTTP 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1 only
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(proc: subprocess.Popen, signum: int = signal.SIGTERM) -> None:
    """Signal the group, wait up to STOP_GRACE for it to go, then SIGKILL what is left."""
    _signal_group(proc, signum)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline and (proc.poll() is None or _group_alive(proc.pid)):
        time.sleep(0.05)
    if proc.poll() is None or _group_alive(proc.pid):
        _signal_group(proc, signal.SIGKILL)
    proc.wait()


def run_server(cmd: list[str], env: dict[str, str], *, ready_url: str, ready_timeout: float,
               on_ready: Callable[[], None], on_early_exit: Callable[[int], None],
               on_slow: Callable[[], None] | None = None) -> int:
    """Run ``cmd`` until it exits or a signal arrives; return the exit code for the bpexp command.

    ``on_ready`` is called once ``ready_url`` answers; ``on_early_exit(code)`` if the
    server exits before that (the caller reports it); ``on_slow`` if it has not
    answered after ``ready_timeout`` seconds (it keeps running). A forwarded signal gives
    ``128 + signum`` (130 for Ctrl-C, 143 for SIGTERM), as a shell would.
    """
    received: list[int] = []
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)

    def forward(signum, _frame):
        received.append(signum)  # only note it and pass it on: the main loop below does the rest
        _signal_group(proc, signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        deadline = time.monotonic() + ready_timeout
        ready = False
        while not received and proc.poll() is None and time.monotonic() < deadline:
            if answers(ready_url):
                ready = True
                break
            time.sleep(0.25)
        if not received and proc.poll() is not None and not ready:
            on_early_exit(proc.returncode)
            return proc.returncode or 1
        if ready:
            on_ready()
        elif not received and proc.poll() is None and on_slow is not None:
            on_slow()
        while not received and proc.poll() is None:
            time.sleep(0.2)
    finally:
        _stop_group(proc, received[0] if received else signal.SIGTERM)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        return 128 + received[0]
    code = proc.returncode
    return 128 - code if code < 0 else code
