"""Helpers for the export tests (a module of its own: several test folders have a conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
BPEXP = str(Path(sys.executable).with_name("bpexp"))


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1", **extra}


def run_cli(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the real ``bpexp`` command."""
    return subprocess.run([BPEXP, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout)
