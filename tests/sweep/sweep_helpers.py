"""Sweep test helpers (used by the tests and conftest.py).

A throw-away project with tiny experiments, the real CLI as a subprocess, store readers.

Everything is real: Optuna journal files / PostgreSQL, MLflow sqlite stores / servers, spawned
worker processes. Datasets and epochs are tiny so a trial takes well under a second, except
for the "slow" sweep, whose trials train long enough to be interrupted or killed mid-way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

BPEXP = str(Path(sys.executable).with_name("bpexp"))

#: A tiny classification experiment (xor, 200 rows): a trial trains in ~0.1 s.
XOR = {"dataset": {"name": "xor", "n_samples": 200, "noise": 0.15}, "seed": 0,
       "model": {"hidden": [8], "activation": "tanh"}, "optimizer": {"name": "adam", "lr": 0.03},
       "training": {"epochs": 6, "batch_size": 32}, "tracking": {"experiment": "xor"}}

#: Trials that train for a few seconds (digits, 100 epochs, no early stopping): long enough to be
#: caught mid-training.
SLOW_SWEEP = {"base": {"dataset": {"name": "digits"}, "model": {"hidden": [48]},
                       "training": {"epochs": 100, "batch_size": 32}},
              "space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
              "pruner": "none", "study": {"name": "slow", "experiment": "slow", "heartbeat_interval": 1,
                                           "grace_period": 4}}


def make_project(tmp_path: Path) -> Path:
    """``tmp_path/proj`` with ``experiments/xor.yaml`` and ``experiments/xor-sweep.yaml``."""
    root = tmp_path / "proj"
    (root / "experiments").mkdir(parents=True)
    write_yaml(root / "experiments" / "xor.yaml", XOR)
    write_yaml(root / "experiments" / "xor-sweep.yaml", xor_sweep())
    return root


def xor_sweep(**changes) -> dict:
    sweep = {
        "base": "xor.yaml",
        "space": {
            "optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True},
            "model.hidden": {"type": "architecture", "n_layers": {"low": 1, "high": 2},
                             "units": {"low": 2, "high": 16, "log": True}},
            "training.batch_size": {"type": "categorical", "choices": [16, 32]},
        },
        "objective": {"metric": "val_accuracy"},
        "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": 3},
        "pruner": {"name": "median", "n_startup_trials": 2},
        "study": {"name": "xor-sweep", "experiment": "xor-sweep", "n_trials": 4},
    }
    sweep.update(changes)
    return sweep


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1", **extra)
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``bpexp ARGS`` in ``cwd``; output captured as text."""
    return subprocess.run([BPEXP, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout)


def start_cli(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """Start ``bpexp ARGS`` in the background; stdout and stderr go to ``log``."""
    out = open(log, "w")  # noqa: SIM115 - owned by the process; closed by finish()
    return subprocess.Popen([BPEXP, *args], cwd=cwd, env=cli_env(), stdout=out, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 240) -> tuple[int, str]:
    """Wait for a started CLI (killing its group on timeout) and return (exit code, output)."""
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"bpexp did not finish within {timeout} s:\n{log.read_text()[-4000:]}")
    return code, log.read_text()


def open_study(storage: str, name: str):
    """The study as a fresh reader sees it (journal path or database URL)."""
    import optuna

    from bpexp.tuning.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.load_study(study_name=name, storage=open_storage(storage))


def wait_for(condition, timeout: float, what: str, interval: float = 0.3):
    """Poll ``condition()`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def running_trials(storage: str, name: str, min_epochs: int = 1):
    """RUNNING trials that reported at least ``min_epochs`` epochs (empty until the study exists)."""
    from optuna.trial import TrialState

    try:
        study = open_study(storage, name)
    except KeyError:
        return []
    return [t for t in study.get_trials(states=(TrialState.RUNNING,))
            if len(t.intermediate_values) >= min_epochs and "bpexp_worker" in t.user_attrs]


def trial_runs(client, experiment: str, study: str) -> list:
    """Child runs of a study (tagged with a trial number)."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`bpexp.study` = '{study}'", max_results=1000)
    return [r for r in runs if "bpexp.trial_number" in r.data.tags]


def parent_runs(client, experiment: str, study: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`bpexp.study` = '{study}'", max_results=1000)
    return [r for r in runs if "bpexp.trial_number" not in r.data.tags]
