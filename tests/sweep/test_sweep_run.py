"""Sweeps in process (``bpexp.sweep``) on a real sqlite MLflow store and a real Optuna journal file."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from sweep_helpers import open_study, parent_runs, trial_runs, write_yaml, xor_sweep

import bpexp
from bpexp.tracking.model import using_store
from bpexp.tuning import PARENT_ATTR, RUN_ID_ATTR, StorageUnavailableError

pytestmark = pytest.mark.slow


def test_sweep_tracks_every_trial_and_resumes(project, mlflow_sqlite_uri, monkeypatch):
    config = project / "experiments" / "xor-sweep.yaml"
    result = bpexp.sweep(config, n_trials=4, tracking_uri=mlflow_sqlite_uri, progress=False)

    # The embedded default storage: a journal file under the project's mlruns/.
    journal = project / "mlruns" / "optuna-journal.log"
    assert result.storage_url == str(journal) and journal.is_file()
    study = open_study(str(journal), "xor-sweep")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert result.n_added == 4 and result.study_name == "xor-sweep"
    assert study.user_attrs[PARENT_ATTR] == result.parent_run_id
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}

    client = MlflowClient(mlflow_sqlite_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["bpexp.study"] == "xor-sweep"
    runs = {int(r.data.tags["bpexp.trial_number"]): r for r in trial_runs(client, "xor-sweep", "xor-sweep")}
    assert sorted(runs) == [0, 1, 2, 3]
    for trial in study.trials:
        run = runs[trial.number]
        assert trial.user_attrs[RUN_ID_ATTR] == run.info.run_id
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
        assert run.data.tags["bpexp.trial_state"] == trial.state.name
        assert run.info.status == "FINISHED"
        # the trial's params are the run's config params; the per-epoch curve is complete
        assert float(run.data.params["optimizer.lr"]) == pytest.approx(trial.params["optimizer.lr"])
        assert run.data.params["model.hidden"] == str([trial.params[f"n_units_l{i}"]
                                                       for i in range(trial.params["n_layers"])])
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        assert steps == list(range(1, len(trial.intermediate_values) + 1))
        if trial.state.name == "COMPLETE":
            assert run.data.metrics["final_val_accuracy"] == pytest.approx(trial.value)

    # The parent run: best value and params, the four study plots (or why one is missing).
    best = result.best_trial
    assert parent.data.metrics["best_value"] == pytest.approx(best.value)
    assert parent.data.tags["bpexp.best_run_id"] == result.best_run_id == best.user_attrs[RUN_ID_ATTR]
    assert parent.data.tags["best.optimizer.lr"] == str(best.params["optimizer.lr"])
    plots = {a.path for a in client.list_artifacts(result.parent_run_id, "plots")}
    assert plots | {f"plots/{p}.png" for p in result.skipped_plots} == {
        "plots/optimization_history.png", "plots/param_importances.png", "plots/intermediate_values.png",
        "plots/parallel_coordinate.png"}
    assert "plots/optimization_history.png" in plots

    # The best complete trial's run has a pyfunc model that predicts like its native model folder.
    best_run = client.get_run(result.best_run_id)
    assert best_run.data.tags["bpexp.model_uri"] == result.model_uri
    # models:/ URIs resolve against MLflow's global URIs, which an earlier test in this process may
    # have left pointing elsewhere (the env var alone once lost to them under pytest-xdist).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_sqlite_uri)
    with using_store(mlflow_sqlite_uri):
        pyfunc = mlflow.pyfunc.load_model(result.model_uri)
    folder = mlflow.artifacts.download_artifacts(run_id=result.best_run_id, artifact_path="bpexp_model",
                                                 tracking_uri=mlflow_sqlite_uri)
    native = bpexp.load_model(folder)
    X = np.array([[0.9, 0.8], [-0.9, 0.8], [0.1, -0.7]])
    import pandas as pd

    np.testing.assert_array_equal(pyfunc.predict(pd.DataFrame(X, columns=["x1", "x2"])).to_numpy().ravel(),
                                  native.predict(X).ravel())
    summary = result.summary()
    assert "xor-sweep" in summary and result.best_run_id in summary and "bpexp export --best" in summary

    # Rerunning resumes: trial numbers continue, the same parent run is reused and ends FINISHED again.
    again = bpexp.sweep(config, n_trials=2, tracking_uri=mlflow_sqlite_uri, progress=False, plots=False)
    study = open_study(str(journal), "xor-sweep")
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4, 5]
    assert again.parent_run_id == result.parent_run_id and again.n_added == 2
    assert len(parent_runs(client, "xor-sweep", "xor-sweep")) == 1
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"
    assert sorted(int(r.data.tags["bpexp.trial_number"]) for r in trial_runs(client, "xor-sweep", "xor-sweep")) \
        == [0, 1, 2, 3, 4, 5]


def test_pruned_and_failed_trials(tmp_path, mlflow_sqlite_uri):
    """Diabetes (regression, objective val_loss): one trial completes, one diverges, one is pruned."""
    sweep = write_yaml(tmp_path / "diabetes-sweep.yaml", {
        "base": {"dataset": {"name": "diabetes"}, "model": {"hidden": [8]},
                 "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9}, "training": {"epochs": 6}},
        "space": {"optimizer.lr": {"type": "float", "low": 1e-7, "high": 10.0, "log": True}},
        "objective": {"metric": "val_loss"},
        "pruner": {"name": "median", "n_startup_trials": 1},
        "study": {"name": "faults", "experiment": "faults"},
    })
    storage = str(tmp_path / "journal.log")
    # lr=10 with momentum diverges in the first epoch; lr=1e-7 barely moves and is worse than trial 0 at epoch 1.
    result = bpexp.sweep(sweep, n_trials=3, storage=storage, tracking_uri=mlflow_sqlite_uri, progress=False,
                         plots=False, enqueue=[{"optimizer.lr": 0.02}, {"optimizer.lr": 10.0}, {"optimizer.lr": 1e-7}])
    study = open_study(storage, "faults")
    assert study.direction.name == "MINIMIZE" and result.metric == "val_loss"
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "PRUNED"]

    client = MlflowClient(mlflow_sqlite_uri)
    runs = {int(r.data.tags["bpexp.trial_number"]): r for r in trial_runs(client, "faults", "faults")}
    complete, failed, pruned = runs[0], runs[1], runs[2]
    assert complete.data.metrics["final_val_loss"] == pytest.approx(study.trials[0].value)
    assert failed.info.status == "FAILED" and failed.data.tags["bpexp.trial_state"] == "FAIL"
    assert "diverged" in failed.data.tags["bpexp.error"]
    assert study.trials[1].user_attrs[RUN_ID_ATTR] == failed.info.run_id
    assert pruned.info.status == "FINISHED" and pruned.data.tags["bpexp.trial_state"] == "PRUNED"
    assert pruned.data.tags["pruned"] == "true" and pruned.data.tags["bpexp.pruned_at_epoch"] == "1"
    # the MLflow UI's runs table shows the same status icon for both: the names tell them apart
    assert pruned.info.run_name == "faults-trial-2 (pruned at epoch 1)"
    assert complete.info.run_name == "faults-trial-0"
    # MLflow 3's UI opens the experiment as a model-training one, not in its GenAI view
    assert client.get_experiment_by_name("faults").tags["mlflow.experimentKind"] == "custom_model_development"
    assert "pruned by Optuna" in pruned.data.tags["bpexp.stop_reason"]
    assert len(client.get_metric_history(pruned.info.run_id, "val_loss")) == 1
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["n_failed"] == 1 and parent.data.metrics["n_pruned"] == 1
    assert parent.data.metrics["best_trial_number"] == 0


def test_bad_storage_is_named_before_anything_is_created(project, mlflow_sqlite_uri, tmp_path):
    config = project / "experiments" / "xor-sweep.yaml"
    cases = [
        ("postgresql://bpexp:secret@127.0.0.1:1/optuna", r"cannot open the Optuna storage "
         r"postgresql\+psycopg2://bpexp:\*\*\*@127\.0\.0\.1:1/optuna: OperationalError"),
        ("nosuchdb://host/x", r"nosuchdb://host/x: unknown URL scheme"),
        (str(tmp_path / "missing" / "journal.log"),
         r"journal file .*missing/journal\.log: its folder .* does not exist"),
    ]
    for storage, expected in cases:
        with pytest.raises(StorageUnavailableError, match=expected):
            bpexp.sweep(config, n_trials=1, storage=storage, tracking_uri=mlflow_sqlite_uri, progress=False)
    assert MlflowClient(mlflow_sqlite_uri).get_experiment_by_name("xor-sweep") is None  # nothing was created


def test_study_direction_mismatch_is_refused(project, mlflow_sqlite_uri, tmp_path):
    config = project / "experiments" / "xor-sweep.yaml"
    storage = str(tmp_path / "j.log")
    bpexp.sweep(config, n_trials=1, storage=storage, tracking_uri=mlflow_sqlite_uri, progress=False, plots=False)
    with pytest.raises(bpexp.InvalidInputError, match=r"created to maximize but the sweep config asks to minimize"):
        bpexp.sweep(config, n_trials=1, storage=storage, tracking_uri=mlflow_sqlite_uri, progress=False,
                    overrides={"objective.metric": "val_loss"})


def test_sweep_with_inline_base_on_sqlite_storage(tmp_path, mlflow_sqlite_uri):
    """A mapping instead of a file, an Optuna RDB (sqlite) URL, random sampler, hyperband, val_f1."""
    data = xor_sweep(base={"dataset": {"name": "moons", "n_samples": 200}, "training": {"epochs": 4},
                           "tracking": {"experiment": "moons"}},
                     sampler={"name": "random", "seed": 3}, pruner="hyperband",
                     objective={"metric": "val_f1"}, study={"name": "inline", "n_trials": 3})
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = bpexp.sweep(data, storage=storage, tracking_uri=mlflow_sqlite_uri, progress=False, plots=False)
    study = open_study(storage, "inline")
    assert len(study.trials) == 3 and result.experiment_id
    runs = trial_runs(MlflowClient(mlflow_sqlite_uri), "moons", "inline")  # the base's experiment name
    assert len(runs) == 3
    if result.best_trial is not None:
        assert runs[0].data.metrics.get("final_val_f1") is not None
    # n_trials 0: no count limit, the timeout ends it (no trial starts after it)
    timed = bpexp.sweep(data, n_trials=0, timeout=1.0, storage=storage, tracking_uri=mlflow_sqlite_uri,
                        progress=False, plots=False)
    assert timed.n_added >= 1
    assert len(open_study(storage, "inline").trials) == 3 + timed.n_added


def test_gp_sampler_without_pytorch_is_refused_up_front(project, mlflow_sqlite_uri, tmp_path):
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("PyTorch is installed: the gp sampler is available")
    with pytest.raises(bpexp.InvalidInputError, match=r"sampler gp needs PyTorch"):
        bpexp.sweep(project / "experiments" / "xor-sweep.yaml", overrides={"sampler": "gp"},
                    storage=str(tmp_path / "j"), tracking_uri=mlflow_sqlite_uri, progress=False)
    assert not (tmp_path / "j").exists()
