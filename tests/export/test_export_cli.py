"""``bpexp export`` and ``bpexp predict``: the real command for the main paths, click's runner for the rest."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from click.testing import CliRunner
from export_helpers import run_cli

from bpexp.cli import main

pytestmark = pytest.mark.slow


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write_rows(path, header, rows):
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


# ------------------------------------------------------------------------------ bpexp export
def test_export_best_with_onnx_and_register(store, tmp_path):
    out = tmp_path / "best"
    proc = run_cli("export", "--best", "test_accuracy", "--experiment", "exp-digits", "--out", str(out), "--onnx",
                   "--register", "digits-cli", "--tracking-uri", store.uri, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    best = max((store.digits_a, store.digits_b), key=lambda r: r.test_metrics["test_accuracy"])
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"picked run {best.run_id}") and "among 2 finished runs" in lines[0]
    assert f"exported run {best.run_id}" in proc.stdout and "ONNX" in proc.stdout
    assert "registered models:/digits-cli@champion (version 1)" in proc.stdout
    assert f"serve it:  mlflow models serve -m {out} --env-manager local -h 127.0.0.1 -p" in proc.stdout
    assert (out / "MLmodel").is_file() and (out / "model.onnx").is_file() and (out / "README.md").is_file()
    assert "`models:/digits-cli@champion` (version 1)" in (out / "README.md").read_text()
    # MLflow resolves models:/ URIs against its global store, by default ./mlflow.db: never created here.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    pred = run_cli("predict", "models:/digits-cli@champion", str(_digits_csv(store, tmp_path)), "--tracking-uri",
                   store.uri, cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr
    assert pred.stdout.split()[1:] == [str(v) for v in best.model.predict(best.dataset.X[:5])]
    assert not (tmp_path / "mlflow.db").exists()


def _digits_csv(store, tmp_path):
    ds = store.digits_a.dataset
    return write_rows(tmp_path / "digits.csv", ds.feature_names, ds.X[:5].tolist())


def test_export_by_run_id_and_force(store, tmp_path):
    out = tmp_path / "m"
    result = invoke("export", store.diabetes.run_id, "--out", str(out), "--onnx", "--tracking-uri", store.uri)
    assert result.exit_code == 0, result.output
    assert "exported run" in result.output and "exp-diabetes" in result.output
    again = invoke("export", store.diabetes.run_id, "--out", str(out), "--tracking-uri", store.uri)
    assert again.exit_code == 1 and "is not empty" in again.output and "--force" in again.output
    assert invoke("export", store.diabetes.run_id, "--out", str(out), "--force",
                  "--tracking-uri", store.uri).exit_code == 0


@pytest.mark.parametrize("args, code, message", [
    ([], 2, "give either a RUN_ID or --best METRIC"),
    (["abc", "--best", "test_accuracy"], 2, "give either a RUN_ID or --best METRIC (not both)"),
    (["abc", "--study", "s"], 2, "select runs for --best"),
    (["abc", "--alias", "prod"], 2, "--alias needs --register NAME"),
    (["0123456789abcdef"], 1, "no run with id '0123456789abcdef' in the tracking store"),
    (["--best", "test_nonsense"], 1, "has the metric 'test_nonsense'; metrics they have"),
    (["--best", "final_val_accuracy", "--study", "study-pruned"], 1, "no COMPLETE trial"),
    (["--best", "final_val_accuracy", "--study", "nope"], 1, "study 'nope' has no trial runs"),
    (["--best", "test_accuracy", "--experiment", "nope"], 1, "no experiment named 'nope'"),
])
def test_export_errors(store, tmp_path, args, code, message):
    result = invoke("export", *args, "--out", str(tmp_path / "out"), "--tracking-uri", store.uri)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_export_run_without_model(store, tmp_path):
    proc = run_cli("export", store.no_model_run_id, "--out", str(tmp_path / "out"), "--tracking-uri", store.uri,
                   cwd=tmp_path)
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "has no model to export" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------ bpexp predict
@pytest.fixture
def iris_csv(tmp_path, iris_rows):
    names, rows, _ = iris_rows
    return write_rows(tmp_path / "iris.csv", names, rows)


def test_predict_with_proba_to_a_file(store, iris_export, iris_csv, iris_rows, tmp_path):
    out = tmp_path / "pred.csv"
    proc = run_cli("predict", str(iris_export.path), str(iris_csv), "--proba", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {len(iris_rows[1])} predictions to {out}" in proc.stderr
    got = list(csv.DictReader(out.open()))
    X = np.array(iris_rows[1])
    model = store.iris.model
    assert list(got[0]) == ["prediction", "setosa", "versicolor", "virginica"]
    assert [r["prediction"] for r in got] == model.predict(X).tolist()  # the original string labels
    proba = np.array([[float(r[c]) for c in ("setosa", "versicolor", "virginica")] for r in got])
    assert np.abs(proba - model.predict_proba(X)).max() < 1e-6


def test_predict_to_stdout_from_folder_and_registry(store, iris_export, iris_csv, iris_rows):
    X = np.array(iris_rows[1])
    result = invoke("predict", str(iris_export.native_path), str(iris_csv))
    assert result.exit_code == 0
    assert next(csv.reader(io.StringIO(result.output))) == ["prediction"]
    assert result.output.split()[1:] == store.iris.model.predict(X).tolist()

    from bpexp.export import register_model

    uri = register_model(store.iris.run_id, "iris-cli", tracking_uri=store.uri)
    result = invoke("predict", uri, str(iris_csv), "--tracking-uri", store.uri)
    assert result.exit_code == 0 and result.output.split()[1:] == store.iris.model.predict(X).tolist()


def test_predict_reorders_named_columns(iris_export, iris_rows, tmp_path):
    names, rows, _ = iris_rows
    path = write_rows(tmp_path / "shuffled.csv", names[::-1], [r[::-1] for r in rows[:5]])
    plain = write_rows(tmp_path / "plain.csv", names, rows[:5])
    assert invoke("predict", str(iris_export.path), str(path)).output == \
        invoke("predict", str(iris_export.path), str(plain)).output


@pytest.mark.parametrize("edit, message", [
    (lambda h, r: (h[:-1], [x[:-1] for x in r]), "missing column(s) ['petal_width_cm']"),
    (lambda h, r: ([*h, "species"], [[*x, "setosa"] for x in r]), "unexpected column(s) ['species']"),
    (lambda h, r: (h, [*r[:2], [r[2][0], "abc", *r[2][2:]], *r[3:]]), "row 4, column 'sepal_width_cm': 'abc' is not a"),
    (lambda h, r: (h, [*r[:1], [*r[1][:3], "nan"]]), "row 3, column 'petal_width_cm': a missing value (empty or NaN)"),
    (lambda h, r: (h, [*r[:1], [*r[1][:3], ""]]), "row 3, column 'petal_width_cm': a missing value (empty or NaN)"),
])
def test_predict_bad_csv(iris_export, iris_rows, tmp_path, edit, message):
    names, rows, _ = iris_rows
    header, body = edit(list(names), [list(map(str, r)) for r in rows[:5]])
    path = write_rows(tmp_path / "bad.csv", header, body)
    result = invoke("predict", str(iris_export.path), str(path))
    assert result.exit_code == 1
    assert message in result.output


def test_predict_bad_input_real_command(iris_export, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,c\n1,2,3\n")
    proc = run_cli("predict", str(iris_export.native_path), str(path), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {path} has 3 columns, the model expects 4"


def test_predict_proba_needs_a_classifier(store, tmp_path):
    result = invoke("export", store.diabetes.run_id, "--out", str(tmp_path / "d"), "--tracking-uri", store.uri)
    assert result.exit_code == 0
    X = store.diabetes.dataset.X[:3]
    path = write_rows(tmp_path / "d.csv", store.diabetes.dataset.feature_names, X.tolist())
    assert "--proba needs a classification model" in invoke("predict", str(tmp_path / "d"), str(path),
                                                           "--proba").output
    values = [float(v) for v in invoke("predict", str(tmp_path / "d"), str(path)).output.split()[1:]]
    assert np.allclose(values, store.diabetes.model.predict(X), rtol=1e-6)


def test_predict_missing_model(tmp_path):
    (tmp_path / "x.csv").write_text("a\n1\n")
    result = invoke("predict", str(tmp_path / "nope"), str(tmp_path / "x.csv"))
    assert result.exit_code == 1 and "is not a model folder (no such directory; expected" in result.output
