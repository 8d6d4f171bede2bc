"""Helpers for tracked-run tests: small experiment configs, the project store, running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BPEXP = str(Path(sys.executable).with_name("bpexp"))


def small_config(dataset: str = "moons", **sections) -> dict:
    """A quick experiment: a small net, a handful of epochs."""
    config = {
        "dataset": {"name": dataset, **({"n_samples": 300} if dataset in ("moons", "xor") else {})},
        "seed": 0,
        "model": {"hidden": [16], "activation": "relu"},
        "optimizer": {"name": "adam", "lr": 0.01},
        "training": {"epochs": 12, "batch_size": 32},
        "tracking": {"experiment": f"test-{dataset}", "tags": {"suite": "tracking"}},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


def store_uri(project: Path) -> str:
    return f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1", **extra}


def run_cli(*args: str, cwd: Path, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([BPEXP, *args], cwd=cwd, env=cli_env(**env), capture_output=True, text=True,
                          timeout=timeout)
