"""No run RUNNING forever: a SIGKILLed `bpexp train` is found dead by the next command (real processes and store)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from tracking_helpers import BPEXP, cli_env, run_cli, small_config, store_uri

LONG = small_config("digits", model={"hidden": [32]}, training={"epochs": 20000, "batch_size": 16})


def _client(project):
    from mlflow import MlflowClient

    return MlflowClient(store_uri(project))


def _runs(client):
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.slow
def test_a_sigkilled_train_is_marked_killed_by_the_next_bpexp_runs(project, write_config):
    write_config("long", LONG)
    log = project / "train.log"
    with log.open("w") as out:
        proc = subprocess.Popen([BPEXP, "train", "experiments/long.yaml", "--no-progress"], cwd=project,
                                env=cli_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        client = _client(project)
        deadline = time.monotonic() + 120
        while not (runs := _runs(client)) or not client.get_metric_history(runs[0].info.run_id, "val_loss"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the OOM killer, kill -9: nothing of bpexp runs after it
        proc.wait(timeout=30)
    run = client.get_run(runs[0].info.run_id)
    assert run.info.status == "RUNNING"  # what the kill left
    assert run.data.tags["bpexp.host"] == os.uname().nodename
    assert run.data.tags["bpexp.pid"] == str(proc.pid)
    assert float(run.data.tags["bpexp.heartbeat"]) <= time.time()

    listed = run_cli("runs", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert f"run {run.info.run_id} was left RUNNING by a process that is gone; marked it KILLED" in listed.stderr
    run = client.get_run(run.info.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["bpexp.error"].startswith(f"found dead: its process {os.uname().nodename}:{proc.pid}")
    assert "found dead" in run.data.tags["mlflow.note.content"]
    assert run.info.end_time is not None


def test_a_run_whose_heartbeat_is_long_stale_is_marked_killed_by_the_next_train(project, write_config):
    from bpexp.tracking.liveness import STALE_AFTER

    client = _client(project)
    exp = client.create_experiment("elsewhere")
    old = f"{time.time() - STALE_AFTER - 60:.0f}"
    remote = client.create_run(exp, tags={"bpexp.host": "another-machine", "bpexp.pid": "1", "bpexp.heartbeat": old})
    fresh = client.create_run(exp, tags={"bpexp.host": "another-machine", "bpexp.pid": "1",
                                         "bpexp.heartbeat": f"{time.time():.0f}"})
    foreign = client.create_run(exp)  # not made by bpexp: no way to tell, left alone
    write_config("quick", small_config())
    done = run_cli("train", "experiments/quick.yaml", "--no-progress", cwd=project)
    assert done.returncode == 0, done.stderr
    assert client.get_run(remote.info.run_id).info.status == "KILLED"
    assert "found dead: last heartbeat" in client.get_run(remote.info.run_id).data.tags["bpexp.error"]
    assert client.get_run(fresh.info.run_id).info.status == "RUNNING"  # another machine, beating: alive
    assert client.get_run(foreign.info.run_id).info.status == "RUNNING"
    trained = [r for r in _runs(client) if r.data.tags.get("suite") == "tracking"]
    assert len(trained) == 1 and trained[0].info.status == "FINISHED"
    assert trained[0].data.tags["bpexp.pid"] != "1"


def test_heartbeat_is_refreshed_at_most_every_interval(project):
    from bpexp.tracking.liveness import HEARTBEAT_TAG, Heartbeat

    client = _client(project)
    run = client.create_run("0", tags={HEARTBEAT_TAG: "0"})
    beat = Heartbeat(client, run.info.run_id, interval=3600)
    beat.beat()
    assert client.get_run(run.info.run_id).data.tags[HEARTBEAT_TAG] == "0"  # not due yet: no write
    beat.interval = 0
    beat.beat()
    assert abs(float(client.get_run(run.info.run_id).data.tags[HEARTBEAT_TAG]) - time.time()) < 60
