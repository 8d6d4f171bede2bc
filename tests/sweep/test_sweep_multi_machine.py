"""Several machines, one study: real PostgreSQL (Optuna RDB storage) and a real ``mlflow server``.

Two separate ``bpexp sweep`` invocations (as two machines would run them, one with two worker
processes) work on one study at the same time. Every trial must be in Optuna and in MLflow
exactly once, under one parent run.
"""

from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from sweep_helpers import finish, open_study, parent_runs, start_cli, trial_runs

from bpexp.tuning import PARENT_ATTR, RUN_ID_ATTR

pytestmark = [pytest.mark.slow, pytest.mark.services]


def test_two_machines_share_one_study(project, postgres_url, mlflow_server_url, tmp_path):
    experiment = f"multi-{uuid.uuid4().hex[:8]}"  # the server is shared by the session
    # The URL as a user writes it (postgresql://); bpexp picks the psycopg2 driver.
    storage = postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    common = ["sweep", "experiments/xor-sweep.yaml", "--storage", storage, "--tracking-uri", mlflow_server_url,
              "--study-name", "shared", "--set", f"study.experiment={experiment}", "--no-progress"]
    logs = [tmp_path / "machine-a.log", tmp_path / "machine-b.log"]
    procs = [start_cli([*common, "--workers", "2", "--n-trials", "4"], cwd=project, log=logs[0]),
             start_cli([*common, "--workers", "1", "--n-trials", "3"], cwd=project, log=logs[1])]
    results = [finish(p, log) for p, log in zip(procs, logs)]
    for code, output in results:
        assert code == 0, output
        assert "error" not in output.lower(), output

    study = open_study(postgres_url, "shared")
    trials = study.trials
    assert sorted(t.number for t in trials) == list(range(7))  # 4 + 3, each number once
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert len({t.user_attrs["bpexp_worker"] for t in trials}) >= 2  # several processes took part

    client = MlflowClient(mlflow_server_url)
    parents = parent_runs(client, experiment, "shared")
    assert [p.info.run_id for p in parents] == [study.user_attrs[PARENT_ATTR]]  # one parent, agreed on by both
    assert parents[0].info.status == "FINISHED"
    runs = trial_runs(client, experiment, "shared")
    numbers = sorted(int(r.data.tags["bpexp.trial_number"]) for r in runs)
    assert numbers == list(range(7))  # every trial in MLflow exactly once
    by_id = {r.info.run_id: r for r in runs}
    for t in trials:
        run = by_id[t.user_attrs[RUN_ID_ATTR]]
        assert run.data.tags["bpexp.trial_number"] == str(t.number)
        assert run.data.tags["bpexp.trial_state"] == t.state.name
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.info.status == "FINISHED"
    best_run = client.get_run(study.best_trial.user_attrs[RUN_ID_ATTR])
    assert best_run.data.tags["bpexp.model_uri"]  # the winner has a pyfunc model, logged through the server
