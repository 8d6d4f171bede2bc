"""Commands bpexp prints run as printed from a fresh shell, and the servers they start stop cleanly.

* ``bpexp export`` prints a ``serve it:`` line: it is run in ``sh -c`` with the venv NOT on
  PATH (as after ``make demo``), answers ``/invocations`` with the export's example body, and
  SIGTERM to it leaves no process of the server behind.
* ``bpexp ui`` prints its URL only once the server answers; a busy port is one line and a
  non-zero exit; SIGINT and SIGTERM reach the server and nothing is left running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import services
from export_helpers import BPEXP, cli_env

pytestmark = [pytest.mark.services, pytest.mark.slow]

FRESH_PATH = "/usr/local/bin:/usr/bin:/bin"  # no venv on it


def fresh_env(**extra: str) -> dict[str, str]:
    return {**cli_env(), "PATH": FRESH_PATH, **extra}


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc), recursively."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


def read_line_with(proc: subprocess.Popen, needle: str, timeout: float) -> tuple[str, list[str]]:
    """The first stdout line containing ``needle`` (and every line read so far)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line.rstrip("\n"))
        if needle in line:
            return line.rstrip("\n"), seen
    raise AssertionError(f"no line with {needle!r} in {seen} (exit code {proc.poll()})")


def stop_and_check(proc: subprocess.Popen, signum: int, expected_code: int) -> None:
    """Send ``signum`` to the bpexp process only; it must exit ``expected_code`` leaving nothing behind."""
    below = descendants(proc.pid)
    assert below, "the server process was not started"
    proc.send_signal(signum)
    try:
        code = proc.wait(timeout=30)
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    left = set()
    for _ in range(50):  # reparented workers may need a moment to exit
        left = alive(below)
        if not left:
            break
        time.sleep(0.1)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert code == expected_code
    assert not left, f"processes left running after {signal.Signals(signum).name}: {sorted(left)}"


def post_example(port: int, folder: Path) -> dict:
    body = (folder / "serving_input_example.json").read_bytes()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310 - local server
        return json.loads(resp.read())


def test_printed_serve_command_runs_from_a_fresh_shell(store, tmp_path):
    out = tmp_path / "digits-export"
    done = subprocess.run([BPEXP, "export", store.digits_a.run_id, "--out", str(out), "--tracking-uri", store.uri],
                          cwd=tmp_path, env=fresh_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    printed = next(line for line in done.stdout.splitlines() if line.startswith("serve it:"))
    command = printed.removeprefix("serve it:").strip()
    assert command.startswith(BPEXP) and command.endswith("--port 5001"), command
    # The same card command works as well.
    assert command.replace(BPEXP, "", 1).strip() in (out / "README.md").read_text()
    port = services.free_port()  # 5001 may be taken on a shared machine: only the port number changes
    command = command.removesuffix("5001") + str(port)
    proc = subprocess.Popen(["sh", "-c", f"exec {command}"], cwd=tmp_path, env=fresh_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready, seen = read_line_with(proc, "serving ", timeout=150)
        assert f"http://127.0.0.1:{port}/invocations" in ready
        answer = post_example(port, out)
        assert len(answer["predictions"]) >= 1 and "prediction" in answer["predictions"][0], answer
        stop_and_check(proc, signal.SIGTERM, 143)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_serve_refuses_a_busy_port_and_a_folder_without_mlmodel(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        (tmp_path / "MLmodel").write_text("flavors: {}\n")
        busy = subprocess.run([BPEXP, "serve", str(tmp_path), "--port", str(port)], env=fresh_env(),
                              capture_output=True, text=True, timeout=60)
    assert busy.returncode == 1
    assert busy.stderr.strip() == f"error: port {port} on 127.0.0.1 is already in use (another server?); pick " \
                                  f"another with --port"
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = subprocess.run([BPEXP, "serve", str(empty)], env=fresh_env(), capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2 and "no MLmodel file" in missing.stderr


@pytest.fixture
def ui_store(tmp_path, mlflow_template_db):
    return services.copy_mlflow_db(tmp_path / "mlflow.db", template=mlflow_template_db,
                                   default_artifact_location=(tmp_path / "artifacts" / "0").as_uri())


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_ui_prints_the_url_once_it_answers_and_stops_on_signals(ui_store, tmp_path, signum, code):
    port = services.free_port()
    proc = subprocess.Popen([BPEXP, "ui", "--port", str(port), "--tracking-uri", ui_store], cwd=tmp_path,
                            env=fresh_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        line, _ = read_line_with(proc, "open http://", timeout=150)
        assert line.startswith(f"open http://127.0.0.1:{port}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:  # noqa: S310
            assert resp.status == 200  # answering when the URL is printed, not 10-20 s later
        stop_and_check(proc, signum, code)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_ui_on_a_busy_port_is_one_line_and_a_failure(ui_store, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = subprocess.run([BPEXP, "ui", "--port", str(port), "--tracking-uri", ui_store], cwd=tmp_path,
                              env=fresh_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use (another server?); pick another with --port"]


def test_a_port_a_stopped_server_left_in_time_wait_is_not_busy():
    """Restarting a server on its port at once: the old connections' TIME_WAIT must not count as in use."""
    from bpexp.cli.processes import port_in_use

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn listens
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    assert port_in_use("127.0.0.1", port)  # a listener: busy
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server closes first: its end of the connection goes to TIME_WAIT
    client.close()
    listener.close()
    time.sleep(0.2)
    states = Path("/proc/net/tcp").read_text().splitlines()[1:]
    assert any(f":{port:04X} " in line.split()[1] + " " and line.split()[3] == "06" for line in states), \
        "no TIME_WAIT socket on the port: the case under test did not arise"
    assert port_in_use("127.0.0.1", port) is None
