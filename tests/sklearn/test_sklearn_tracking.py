"""Tracking a bpexp estimator: nothing is logged unless asked; log_estimator makes a full run (real sqlite store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler

from bpexp.sklearn import MLPClassifier, MLPRegressor, log_estimator
from bpexp.tracking.model import using_store

pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"), pytest.mark.slow]


@pytest.fixture
def iris_frame():
    data = load_iris(as_frame=True)
    X = pd.DataFrame(StandardScaler().fit_transform(data.data), columns=[c.replace(" (cm)", "") for c in
                                                                         data.data.columns])
    return X, np.array(data.target_names)[data.target]


def test_fitting_inside_an_active_run_logs_nothing(mlflow_sqlite_uri, iris_frame):
    import mlflow
    from mlflow import MlflowClient

    X, y = iris_frame
    mlflow.set_tracking_uri(mlflow_sqlite_uri)
    try:
        with mlflow.start_run() as run:
            MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    finally:
        mlflow.set_tracking_uri(None)
    client = MlflowClient(mlflow_sqlite_uri)
    data = client.get_run(run.info.run_id).data
    assert data.params == {} and data.metrics == {}
    assert client.list_artifacts(run.info.run_id) == []
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_log_estimator_logs_params_curves_and_a_pyfunc_model(mlflow_sqlite_uri, iris_frame, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    X, y = iris_frame
    clf = MLPClassifier((8,), max_iter=12, early_stopping=True, n_iter_no_change=50, random_state=0).fit(X, y)
    logged = log_estimator(clf, X, X_eval=X, y_eval=y, tracking_uri=mlflow_sqlite_uri, experiment="iris-sk",
                           run_name="sk-run")
    client = MlflowClient(mlflow_sqlite_uri)
    run = client.get_run(logged.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "sk-run"
    assert run.data.params["hidden_layer_sizes"] == "(8,)" and run.data.params["early_stopping"] == "True"
    assert set(run.data.params) == set(clf.get_params())
    assert run.data.tags["bpexp.estimator"] == "MLPClassifier"
    losses = [m.value for m in sorted(client.get_metric_history(logged.run_id, "loss"), key=lambda m: m.step)]
    np.testing.assert_allclose(losses, clf.loss_curve_)
    scores = client.get_metric_history(logged.run_id, "validation_score")
    assert sorted(m.step for m in scores) == list(range(1, 13))
    assert len(client.get_metric_history(logged.run_id, "val_loss")) == 12
    assert run.data.metrics["score"] == pytest.approx(clf.score(X, y))
    assert run.data.metrics["best_validation_score"] == pytest.approx(clf.best_validation_score_)

    with using_store(mlflow_sqlite_uri):  # models:/ URIs resolve against the global store
        model = mlflow.pyfunc.load_model(logged.model_uri)
        local = Path(mlflow.artifacts.download_artifacts(logged.model_uri, dst_path=str(tmp_path / "dl")))
    assert model.metadata.flavors["python_function"].get("model_code_path")  # models from code
    np.testing.assert_array_equal(model.predict(X)["prediction"].to_numpy(), clf.predict(X))
    proba = model.predict(X, params={"proba": True})
    assert list(proba.columns) == list(clf.classes_)
    np.testing.assert_allclose(proba.to_numpy(), clf.predict_proba(X), rtol=1e-12)
    assert list(model.metadata.get_input_schema().input_names()) == list(X.columns)
    files = [p.name for p in local.rglob("*") if p.is_file()]
    assert "weights.npz" in files and "model.json" in files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))]


def test_log_estimator_regressor_without_feature_names(mlflow_sqlite_uri):
    import mlflow

    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3))
    y = X @ [1.0, -2.0, 0.5]
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=10, random_state=0).fit(X, y)
    logged = log_estimator(reg, X, tracking_uri=mlflow_sqlite_uri)
    with using_store(mlflow_sqlite_uri):
        model = mlflow.pyfunc.load_model(logged.model_uri)
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2"])
    np.testing.assert_allclose(model.predict(frame)["prediction"].to_numpy(), reg.predict(X), rtol=1e-12)


def test_log_estimator_table_model_takes_raw_rows(mlflow_sqlite_uri):
    import mlflow

    frame = pd.read_csv(Path(__file__).resolve().parents[2] / "experiments" / "data" / "penguins.csv")
    X, y = frame.drop(columns=["species"]), frame["species"]
    clf = MLPClassifier((16,), learning_rate_init=0.01, max_iter=20, random_state=0).fit(X, y)
    logged = log_estimator(clf, X.iloc[3:8], tracking_uri=mlflow_sqlite_uri)  # row 3 has missing values
    with using_store(mlflow_sqlite_uri):
        model = mlflow.pyfunc.load_model(logged.model_uri)
    rows = X.iloc[:20].astype(object).where(X.iloc[:20].notna(), None)
    np.testing.assert_array_equal(model.predict(rows)["prediction"].to_numpy(), clf.predict(X.iloc[:20]))


def test_log_estimator_refuses_what_it_cannot_log(mlflow_sqlite_uri, iris_frame):
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import make_pipeline

    X, y = iris_frame
    with pytest.raises(NotFittedError):
        log_estimator(MLPClassifier(), X, tracking_uri=mlflow_sqlite_uri)
    pipe = make_pipeline(StandardScaler(), MLPClassifier((4,), max_iter=2)).fit(X, y)
    with pytest.raises(TypeError, match="takes a fitted bpexp.sklearn estimator, got Pipeline"):
        log_estimator(pipe, X, tracking_uri=mlflow_sqlite_uri)
