"""Faults lose nothing: divergence, Ctrl-C and SIGTERM on a real `bpexp train` process, read back from the store."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from tracking_helpers import BPEXP, cli_env, run_cli, small_config, store_uri

import bpexp

DIVERGING = small_config("diabetes", model={"hidden": [16]},
                         optimizer={"name": "sgd", "lr": 0.3, "momentum": 0.9}, training={"epochs": 50})
LONG = small_config("digits", model={"hidden": [32]}, training={"epochs": 20000, "batch_size": 16})


def _only_run(project):
    from mlflow import MlflowClient

    client = MlflowClient(store_uri(project))
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    return client, runs[0]


def _steps(client, run_id, key):
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_divergence_fails_the_run_with_the_error_and_keeps_metrics(project, write_config):
    path = write_config("diverge", DIVERGING)
    with pytest.raises(bpexp.TrainingDivergedError):
        bpexp.run(path, progress=False)
    client, run = _only_run(project)
    assert run.info.status == "FAILED"
    assert "training diverged" in run.data.tags["bpexp.error"]
    assert "TrainingDivergedError" in run.data.tags["mlflow.note.content"]
    assert _steps(client, run.info.run_id, "train_loss") == [1]  # the epoch before the blow-up is kept


def test_cli_divergence_exits_nonzero_with_a_clear_message(project, write_config):
    write_config("diverge", DIVERGING)
    done = run_cli("train", "experiments/diverge.yaml", "--no-progress", cwd=project)
    assert done.returncode == 1
    assert "error: training diverged: train loss became inf at epoch 2" in done.stderr
    assert "Traceback" not in done.stderr
    _, run = _only_run(project)
    assert run.info.status == "FAILED"


def _start_long_run(project, write_config):
    write_config("long", LONG)
    log = (project / "train.log").open("w")
    proc = subprocess.Popen([BPEXP, "train", "experiments/long.yaml", "--no-progress"], cwd=project,
                            env=cli_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    from mlflow import MlflowClient

    client = MlflowClient(store_uri(project))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until training is visibly under way in the store
        assert proc.poll() is None, (project / "train.log").read_text()
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        if runs and len(client.get_metric_history(runs[0].info.run_id, "val_loss")) >= 3:
            return proc
        time.sleep(0.2)
    proc.kill()
    pytest.fail("training never reached epoch 3")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("send", "code", "why"),
    [
        (lambda p: p.send_signal(signal.SIGINT), 130, "interrupted"),
        (lambda p: os.killpg(p.pid, signal.SIGINT), 130, "interrupted"),  # Ctrl-C hits the whole process group
        (lambda p: p.send_signal(signal.SIGTERM), 143, "terminated by SIGTERM"),
    ],
    ids=["sigint", "ctrl-c-group", "sigterm"],
)
def test_signal_ends_run_killed_with_every_epoch_flushed(project, write_config, send, code, why):
    proc = _start_long_run(project, write_config)
    send(proc)
    assert proc.wait(timeout=120) == code
    output = (project / "train.log").read_text()
    assert "run ended KILLED with its metrics saved" in output
    client, run = _only_run(project)
    assert run.info.status == "KILLED"
    assert why in run.data.tags["bpexp.error"]
    steps = _steps(client, run.info.run_id, "val_loss")
    assert len(steps) >= 3 and steps == list(range(1, len(steps) + 1))  # every epoch up to the signal, in order
    for key in ("train_loss", "val_accuracy", "lr", "grad_norm/layer1"):
        assert _steps(client, run.info.run_id, key) == steps
