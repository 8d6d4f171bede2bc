"""Train -> export (pyfunc, native folder, ONNX) -> load each way -> identical predictions; registry; errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import bpexp
from bpexp.export import (
    ExportError,
    NoModelError,
    RunNotFoundError,
    export_run,
    pick_best_run,
    register_model,
)
from bpexp.tracking.model import using_store

pytestmark = pytest.mark.slow


def _rows(result, n=40):
    return result.dataset.X[:n].astype(np.float64)


def test_export_all_three_formats_predict_identically(store, tmp_path):
    import mlflow
    import onnxruntime as ort
    import pandas as pd

    run = store.digits_a
    result = export_run(run.run_id, tmp_path / "digits", tracking_uri=store.uri, onnx=True)
    out = result.path
    # The MLflow model: pyfunc flavor, models from code, signature, examples, pinned requirements.
    mlmodel = yaml.safe_load((out / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model" and flavor["code"] == "code"
    assert mlmodel["metadata"]["bpexp_run_id"] == run.run_id
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert [c["name"] for c in inputs] == run.dataset.feature_names and {c["type"] for c in inputs} == {"double"}
    assert json.loads(mlmodel["signature"]["params"])[0]["name"] == "proba"
    serving = json.loads((out / "serving_input_example.json").read_text())
    assert serving["dataframe_split"]["columns"] == run.dataset.feature_names
    reqs = (out / "requirements.txt").read_text().split()
    assert sorted(r.split("==")[0] for r in reqs) == ["mlflow", "numpy", "pandas"] and all("==" in r for r in reqs)
    assert (out / "code" / "bpexp" / "nn" / "model.py").is_file() and not list(out.rglob("*.pkl"))
    assert {p.name for p in result.native_path.iterdir()} == {"model.json", "weights.npz"}
    assert result.onnx_path == out / "model.onnx" and result.onnx_check.max_abs_diff <= 1e-5

    X = _rows(run)
    expected, expected_p = run.model.predict(X), run.model.predict_proba(X)
    frame = pd.DataFrame(X, columns=run.dataset.feature_names)
    native = bpexp.load_model(result.native_path)
    exported = bpexp.load_model(out)
    pyfunc = mlflow.pyfunc.load_model(str(out))
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    onnx_p, onnx_label = session.run(None, {"input": X.astype(np.float32)})
    assert type(native) is type(exported) is bpexp.MLP
    for got in (native.predict(X), exported.predict(X), pyfunc.predict(frame)["prediction"].to_numpy(), onnx_label):
        assert np.array_equal(got, expected)
    assert np.array_equal(exported.predict_proba(X), expected_p)
    assert np.array_equal(pyfunc.predict(frame, params={"proba": True}).to_numpy(), expected_p)
    assert np.abs(onnx_p - expected_p).max() <= 1e-5


def test_model_card_describes_the_run(store, iris_export):
    card = iris_export.readme_path.read_text()
    run = store.iris
    for text in (run.run_id, "exp-iris", "Dataset: **iris**", "`setosa`, `versicolor`, `virginica`",
                 "| accuracy |", f"{run.test_metrics['test_accuracy']:.4f}",
                 f"{run.val_metrics['final_val_accuracy']:.4f}", "| optimizer.nesterov | `True` |",
                 "--env-manager local", f"bpexp serve {iris_export.path.absolute()} --port 5001",
                 "bpexp.load_model(", "model.onnx",
                 "max absolute difference"):
        assert text in card, text


def test_register_alias_and_load_by_alias(store):
    import mlflow

    uri = register_model(store.digits_a.run_id, "digits-e2e", tracking_uri=store.uri)
    assert uri == "models:/digits-e2e@champion"
    assert np.array_equal(bpexp.load_model(uri, tracking_uri=store.uri).params, store.digits_a.model.params)
    X = _rows(store.digits_a, 10)
    with using_store(store.uri):
        pyfunc = mlflow.pyfunc.load_model(uri)
    import pandas as pd

    got = pyfunc.predict(pd.DataFrame(X, columns=store.digits_a.dataset.feature_names))["prediction"]
    assert np.array_equal(got.to_numpy(), store.digits_a.model.predict(X))

    # A second registration is a new version, and the alias moves to it.
    assert register_model(store.digits_b.run_id, "digits-e2e", tracking_uri=store.uri) == uri
    assert np.array_equal(bpexp.load_model(uri, tracking_uri=store.uri).params, store.digits_b.model.params)
    from mlflow import MlflowClient

    version = MlflowClient(store.uri, registry_uri=store.uri).get_model_version_by_alias("digits-e2e", "champion")
    assert str(version.version) == "2" and version.run_id == store.digits_b.run_id


def test_register_errors(store):
    with pytest.raises(bpexp.InvalidInputError, match="alias 'latest' is reserved"):
        register_model(store.digits_a.run_id, "x", alias="latest", tracking_uri=store.uri)
    with pytest.raises(bpexp.InvalidInputError, match="registered model name is empty"):
        register_model(store.digits_a.run_id, " ", tracking_uri=store.uri)
    with pytest.raises(NoModelError, match="has no model to export"):
        register_model(store.no_model_run_id, "nomodel", tracking_uri=store.uri)


# ------------------------------------------------------------------------------ picking the best run
def test_pick_best_in_an_experiment(store):
    a, b = store.digits_a, store.digits_b
    best = max((a, b), key=lambda r: r.test_metrics["test_accuracy"])
    run, reason = pick_best_run("test_accuracy", experiment="exp-digits", tracking_uri=store.uri)
    assert run.info.run_id == best.run_id
    assert f"test_accuracy = {best.test_metrics['test_accuracy']:.6g}, the highest (higher is better" in reason
    assert "among 2 finished runs in experiment 'exp-digits'" in reason

    worst = min((a, b), key=lambda r: r.test_metrics["test_log_loss"])
    run, reason = pick_best_run("test_log_loss", experiment="exp-digits", tracking_uri=store.uri)
    assert run.info.run_id == worst.run_id and "the lowest (lower is better" in reason
    run, reason = pick_best_run("test_log_loss", experiment="exp-digits", tracking_uri=store.uri, direction="max")
    assert run.info.run_id != worst.run_id and "higher is better, as asked" in reason


def test_pick_best_in_a_study_uses_complete_trials_only(store):
    complete = [t for t, s in zip(store.trials, store.trial_states) if s == "COMPLETE"]
    best = max(complete, key=lambda r: r.val_metrics["final_val_accuracy"])
    run, reason = pick_best_run("final_val_accuracy", study="study-moons", tracking_uri=store.uri)
    assert run.info.run_id == best.run_id
    assert "among 2 COMPLETE trials of study 'study-moons'" in reason and "1 pruned trial(s) ignored" in reason
    assert f"trial {store.trials.index(best)}" in reason


def test_pick_best_without_experiment_refuses_several_experiments(store):
    # final_val_accuracy: digits, iris and the moons trials; never a silent cross-experiment pick
    with pytest.raises(bpexp.InvalidInputError) as caught:
        pick_best_run("final_val_accuracy", tracking_uri=store.uri)
    message = str(caught.value)
    assert message.startswith("runs with final_val_accuracy are in 4 experiments: 'exp-digits' (2 runs), ")
    assert "'exp-iris' (1 run)" in message and "'exp-nomodel' (" in message and "--experiment NAME" in message
    # one experiment having the metric is no ambiguity: test_r2 is only in exp-diabetes
    run, _ = pick_best_run("test_r2", tracking_uri=store.uri)
    assert run.info.run_id == store.diabetes.run_id


def test_pick_best_in_an_experiment_skips_parents_and_pruned_trials(store):
    run, reason = pick_best_run("final_val_accuracy", experiment="exp-nomodel", tracking_uri=store.uri)
    assert run.data.tags.get("bpexp.trial_state", "COMPLETE") == "COMPLETE"
    assert run.info.run_id != store.study_parent_id
    assert "sweep parent or pruned/failed trial run(s) ignored" in reason


@pytest.mark.parametrize("kwargs, error, message", [
    ({"study": "study-pruned"}, RunNotFoundError,
     r"study 'study-pruned' has 2 trial run\(s\) but no COMPLETE trial \(1 FAIL, 1 PRUNED\)"),
    ({"study": "nope"}, RunNotFoundError, r"study 'nope' has no trial runs .*studies found: \['study-moons', "
                                          r"'study-pruned'\]"),
    ({"experiment": "no-such-experiment"}, bpexp.InvalidInputError, "no experiment named 'no-such-experiment'"),
    ({"experiment": "exp-digits", "metric": "test_r2"}, RunNotFoundError,
     r"none of the 2 finished runs in experiment 'exp-digits' has the metric 'test_r2'; metrics they have: \["),
    ({"metric": " "}, bpexp.InvalidInputError, "which metric"),
])
def test_pick_best_errors(store, kwargs, error, message):
    metric = kwargs.pop("metric", "final_val_accuracy")
    with pytest.raises(error, match=message):
        pick_best_run(metric, tracking_uri=store.uri, **kwargs)


# ------------------------------------------------------------------------------ folder-only runs (sweep trials)
def test_export_and_register_a_trial_that_logged_only_the_folder(store, tmp_path):
    from mlflow import MlflowClient

    trial = store.trials[2]
    result = export_run(trial.run_id, tmp_path / "trial", tracking_uri=store.uri, onnx=True)
    assert result.model_uri is None and not result.warnings
    assert result.feature_names == trial.dataset.feature_names  # example rows rebuilt from config.yaml
    X = _rows(trial)
    assert np.array_equal(bpexp.load_model(result.path).predict(X), trial.model.predict(X))
    card = result.readme_path.read_text()
    assert "| sweep study | `study-moons` |" in card and "| trial | `2` |" in card

    uri = register_model(trial.run_id, "moons-trial", tracking_uri=store.uri)
    logged = MlflowClient(store.uri).get_run(trial.run_id).data.tags["bpexp.model_uri"]
    assert logged.startswith("models:/m-")  # the pyfunc model was logged into the trial's run
    assert np.array_equal(bpexp.load_model(uri, tracking_uri=store.uri).predict(X), trial.model.predict(X))


# ------------------------------------------------------------------------------ errors and --force
def test_unknown_run_and_run_without_model(store, tmp_path):
    with pytest.raises(RunNotFoundError,
                       match=r"no run with id '0123456789abcdef' \(or starting with it\) in the tracking store sqlite"):
        export_run("0123456789abcdef", tmp_path / "x", tracking_uri=store.uri)
    with pytest.raises(NoModelError, match=r"has no model to export: it logged neither an MLflow model"):
        export_run(store.no_model_run_id, tmp_path / "y", tracking_uri=store.uri)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_out_must_be_empty_unless_force(store, tmp_path):
    out = tmp_path / "model"
    export_run(store.digits_a.run_id, out, tracking_uri=store.uri, onnx=True)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"--out .*model is not empty \(\d+ entries: .*\); pass --force"):
        export_run(store.digits_b.run_id, out, tracking_uri=store.uri)
    result = export_run(store.digits_b.run_id, out, tracking_uri=store.uri, force=True)
    assert yaml.safe_load((out / "MLmodel").read_text())["metadata"]["bpexp_run_id"] == store.digits_b.run_id
    assert not (out / "model.onnx").exists()  # the earlier export's ONNX file is gone, not stale
    assert (out / "notes.txt").read_text() == "mine"  # files that are not part of an export are kept
    assert result.onnx_path is None
    project = tmp_path / "project"  # not an export: --force must not delete its README
    project.mkdir()
    (project / "README.md").write_text("my project")
    with pytest.raises(ExportError, match=r"is not an earlier export \(it has no MLmodel\) but holds \['README.md'\]"):
        export_run(store.digits_a.run_id, project, tracking_uri=store.uri, force=True)
    assert (project / "README.md").read_text() == "my project"
    (project / "README.md").rename(project / "notes.md")
    export_run(store.digits_a.run_id, project, tracking_uri=store.uri, force=True)  # nothing to overwrite: fine
    assert (project / "notes.md").is_file() and (project / "MLmodel").is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="is a file; give a directory"):
        export_run(store.digits_a.run_id, tmp_path / "file", tracking_uri=store.uri)


def test_failed_onnx_check_writes_nothing(store, tmp_path, monkeypatch):
    from bpexp.export import OnnxCheckError
    from bpexp.export import onnx as onnx_export

    monkeypatch.setattr(onnx_export, "ONNX_ATOL", -1.0)  # no graph can pass: the check must stop the export
    with pytest.raises(OnnxCheckError, match="does not reproduce the NumPy model"):
        export_run(store.digits_a.run_id, tmp_path / "out", tracking_uri=store.uri, onnx=True)
    assert list(tmp_path.iterdir()) == []  # neither the target nor the staging folder is left


def test_damaged_model_in_the_store_is_refused(store, tmp_path):
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    from mlflow import MlflowClient

    trial = store.trials[0]
    root = Path(unquote(urlparse(MlflowClient(store.uri).get_run(trial.run_id).info.artifact_uri).path))
    weights = root / "bpexp_model" / "weights.npz"
    saved = weights.read_bytes()
    try:
        weights.write_bytes(b"garbage")  # numpy would take this for a pickle: it must be refused, not run
        with pytest.raises(bpexp.ModelFormatError, match="weights.npz is not a readable weights file"):
            export_run(trial.run_id, tmp_path / "out", tracking_uri=store.uri)
    finally:
        weights.write_bytes(saved)


def test_ties_go_to_the_earliest_run_like_optunas_best_trial():
    from types import SimpleNamespace

    from bpexp.export.selection import pick_best

    def run(run_id, value, start, trial=None):
        tags = {} if trial is None else {"bpexp.trial_number": str(trial)}
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id, start_time=start),
                               data=SimpleNamespace(metrics={"m": value}, tags=tags))

    newest_first = [run("c", 0.9, 30, trial=10), run("b", 0.9, 20, trial=2), run("a", 0.8, 10, trial=1)]
    best, n, tied = pick_best(newest_first, "m", higher=True)
    assert (best.info.run_id, n, tied) == ("b", 3, 2)  # trial 2 before trial 10 (numbers, not strings)
    best, _, _ = pick_best([run("y", 0.5, 20), run("x", 0.5, 10), run("z", float("nan"), 5)], "m", higher=False)
    assert best.info.run_id == "x"  # the earliest start; NaN never wins


def test_folder_with_its_own_input_example(store, tmp_path):
    """A run whose bpexp_model/ folder carries input_example.json: its rows and names are used as they are."""
    import pandas as pd
    from mlflow import MlflowClient

    client = MlflowClient(store.uri)
    exp = client.get_experiment_by_name("exp-handmade") or client.get_experiment(
        client.create_experiment("exp-handmade", artifact_location=(store.root / "artifacts" / "hand").as_uri()))
    run = client.create_run(exp.experiment_id, run_name="handmade")
    model = store.trials[0].model
    folder = tmp_path / "bpexp_model"
    model.save(folder)
    rows = pd.DataFrame(store.trials[0].dataset.X[:3], columns=["left", "right"])
    rows.to_json(folder / "input_example.json", orient="split")
    client.log_artifacts(run.info.run_id, str(folder), "bpexp_model")
    client.set_terminated(run.info.run_id)

    result = export_run(run.info.run_id, tmp_path / "out", tracking_uri=store.uri)
    assert result.feature_names == ["left", "right"] and not result.warnings
    served = json.loads((result.path / "serving_input_example.json").read_text())["dataframe_split"]
    assert served["columns"] == ["left", "right"] and np.allclose(served["data"], rows.to_numpy())
