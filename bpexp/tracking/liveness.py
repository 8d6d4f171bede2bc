"""No run RUNNING forever: every run records who runs it and a heartbeat; dead runs are found and ended KILLED.

A run that bpexp creates carries ``bpexp.host``, ``bpexp.pid`` and
``bpexp.heartbeat`` (seconds since the epoch). The heartbeat is refreshed at
most every :data:`HEARTBEAT_INTERVAL` seconds, at an epoch's end (one tag write
per 30 s: nothing next to training). A SIGKILL, an OOM kill or a lost machine
then leaves evidence: the first :func:`bpexp.tracking.connect` of a process
(``bpexp train``, ``bpexp sweep``, ``bpexp runs``, the widgets) looks at the
store's RUNNING runs and ends KILLED, with a note saying it was found dead,
every run whose process is gone: same host and the pid is not alive, or a
heartbeat older than :data:`STALE_AFTER` (a generous hour, for runs of other
machines). Runs without these tags (not made by bpexp, or older) are left alone.
"""

from __future__ import annotations

import os
import time

from bpexp.tracking.tags import ERROR_TAG, HEARTBEAT_TAG, HOST_TAG, PID_TAG

HEARTBEAT_INTERVAL = 30.0  # seconds between heartbeats of a training run
STALE_AFTER = 3600.0  # a heartbeat this old means dead even when the process cannot be checked (other host)


def identity_tags() -> dict[str, str]:
    """Host, pid and a first heartbeat, for a run being created by this process."""
    return {HOST_TAG: os.uname().nodename, PID_TAG: str(os.getpid()), HEARTBEAT_TAG: f"{time.time():.0f}"}


class Heartbeat:
    """Refreshes a run's heartbeat tag, at most every ``interval`` seconds (call :meth:`beat` as often as you like)."""

    def __init__(self, client, run_id: str, interval: float = HEARTBEAT_INTERVAL):
        self.client, self.run_id, self.interval = client, run_id, interval
        self._last = time.monotonic()

    def beat(self) -> None:
        if time.monotonic() - self._last < self.interval:
            return
        self._last = time.monotonic()
        try:
            self.client.set_tag(self.run_id, HEARTBEAT_TAG, f"{time.time():.0f}")
        except Exception:  # noqa: BLE001 - a missed beat is harmless; the metric writes report store failures
            pass


def death_of(tags: dict[str, str], now: float | None = None, host: str | None = None) -> str | None:
    """Why the run with these tags is dead (its process is gone), or None if it may be alive or cannot be told."""
    if HOST_TAG not in tags or PID_TAG not in tags:
        return None
    now = time.time() if now is None else now
    host = host or os.uname().nodename
    try:
        beat = float(tags.get(HEARTBEAT_TAG, "nan"))
    except ValueError:
        beat = float("nan")
    age = f"last heartbeat {now - beat:.0f} s ago" if beat == beat else "no heartbeat"
    if tags[HOST_TAG] == host and not pid_alive(tags[PID_TAG]):
        return f"found dead: its process {host}:{tags[PID_TAG]} is gone ({age})"
    if beat == beat and now - beat > STALE_AFTER:
        return f"found dead: {age} (process {tags[HOST_TAG]}:{tags[PID_TAG]})"
    return None


def pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def end_dead_runs(client) -> list[str]:
    """End KILLED every RUNNING run of the store whose process is gone (see the module docstring); returns their ids."""
    from mlflow.entities import RunTag

    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    ended = []
    for run in client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=1000):
        why = death_of(run.data.tags)
        if why is None:
            continue
        beat = run.data.tags.get(HEARTBEAT_TAG, "")
        end_ms = int(float(beat) * 1000) if beat.replace(".", "", 1).isdigit() else None
        client.log_batch(run.info.run_id, tags=[RunTag(ERROR_TAG, why),
                                                RunTag("mlflow.note.content", f"**KILLED**: {why}")])
        client.set_terminated(run.info.run_id, status="KILLED", end_time=end_ms)
        ended.append(run.info.run_id)
    return ended
