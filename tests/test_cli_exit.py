"""The ``bpexp`` script's quick exit keeps what the interpreter's own exit does: real subprocesses."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import atexit, pathlib, sys, threading, time
    from bpexp.cli import run

    out = pathlib.Path(sys.argv[1])
    atexit.register(lambda: (out / "atexit").write_text("ran"))

    def late_writer():  # a non-daemon thread still working when the command returns
        time.sleep(0.3)
        (out / "thread").write_text("done")

    threading.Thread(target=late_writer).start()
    sys.argv = ["bpexp", *sys.argv[2:]]
    run()
    print("not reached: run() ends the process", file=sys.stderr)
""")


def _bpexp(tmp_path, *args):
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), *args], capture_output=True, text=True,
                          timeout=120)


def test_a_command_exits_with_threads_joined_atexit_run_and_output_flushed(tmp_path):
    done = _bpexp(tmp_path, "sweep", "--help")
    assert done.returncode == 0, done.stderr
    # All of it, to click's last line: a pipe's buffer is flushed before the process ends.
    assert done.stdout.startswith("Usage: bpexp sweep") and done.stdout.rstrip().endswith("Show this message and exit.")
    assert "not reached" not in done.stderr
    assert (tmp_path / "thread").read_text() == "done"  # joined, as the interpreter joins it
    assert (tmp_path / "atexit").read_text() == "ran"


def test_the_exit_status_and_message_of_a_failed_command_are_kept(tmp_path):
    done = _bpexp(tmp_path, "train", str(tmp_path / "missing.yaml"))
    assert done.returncode == 2
    assert "missing.yaml" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "atexit").read_text() == "ran"


def test_the_installed_script_is_the_quick_exit_entry_point():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "bpexp"]
    assert script.value == "bpexp.cli:run"
