"""Raw tables (strings, missing values) through bpexp's table encoder, and inside a ColumnTransformer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import bpexp
from bpexp.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

PENGUINS = Path(__file__).resolve().parents[2] / "experiments" / "data" / "penguins.csv"
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]


@pytest.fixture(scope="module")
def penguins():
    frame = pd.read_csv(PENGUINS)
    X, y = frame.drop(columns=["species", "year"]), frame["species"]
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


def test_raw_penguin_table_goes_through_bpexps_encoder(penguins, tmp_path):
    X_train, X_test, y_train, y_test = penguins
    assert X_train.isna().any().any() and X_train["island"].dtype != np.float64  # strings and gaps
    clf = MLPClassifier((32,), learning_rate_init=0.01, max_iter=100, random_state=0).fit(X_train, y_train)
    encoder = clf.model_.encoder
    assert encoder is not None and encoder.input_names == list(X_train.columns)
    assert clf.n_features_in_ == 6 and list(clf.feature_names_in_) == list(X_train.columns)
    assert clf.coefs_[0].shape[0] == encoder.n_features_out
    assert clf.classes_.tolist() == ["Adelie", "Chinstrap", "Gentoo"]
    assert clf.score(X_test, y_test) > 0.95
    # Missing values and a category never seen in training, at prediction time.
    rows = X_test.iloc[:3].copy()
    rows.loc[rows.index[0], "sex"] = None
    rows.loc[rows.index[1], "island"] = "Atlantis"
    assert clf.predict(rows).shape == (3,)
    # The model folder keeps the encoder as JSON: a loaded model takes the raw rows too.
    clf.model_.save(tmp_path / "m")
    np.testing.assert_array_equal(bpexp.load_model(tmp_path / "m").predict_proba(X_test), clf.predict_proba(X_test))


def test_table_model_with_early_stopping_partial_fit_and_warm_start(penguins):
    X_train, _, y_train, _ = penguins
    es = MLPClassifier((16,), early_stopping=True, max_iter=20, random_state=0).fit(X_train, y_train)
    assert len(es.validation_scores_) == es.n_iter_
    part = MLPClassifier((16,), random_state=0)
    part.partial_fit(X_train, y_train, classes=["Adelie", "Chinstrap", "Gentoo"])
    part.partial_fit(X_train.iloc[:50], y_train.iloc[:50])
    assert part.n_iter_ == 2
    warm = MLPClassifier((16,), max_iter=3, warm_start=True, random_state=0).fit(X_train, y_train)
    encoder = warm.model_.encoder
    warm.fit(X_train, y_train)
    assert warm.model_.encoder is encoder and warm.n_iter_ == 6


def test_table_regression(penguins):
    X_train, X_test, _, _ = penguins
    X = X_train.drop(columns=["body_mass_g"]).assign(species=penguins[2].to_numpy())
    y = X_train["body_mass_g"].fillna(X_train["body_mass_g"].median()) / 1000
    reg = MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=100, random_state=0).fit(X, y)
    assert reg.score(X, y) > 0.7 and reg.predict(X).dtype == np.float64


def test_table_models_refuse_arrays_and_wrong_columns(penguins):
    X_train, X_test, y_train, _ = penguins
    clf = MLPClassifier((8,), max_iter=2, random_state=0).fit(X_train, y_train)
    with pytest.raises(ValueError, match="was trained on a table .*pass a DataFrame with the columns"):
        clf.predict(X_test.to_numpy())
    with pytest.raises(ValueError, match="Feature names unseen at fit time"):
        clf.predict(X_test.rename(columns={"sex": "gender"}))
    bad = X_test.copy()
    bad["bill_depth_mm"] = bad["bill_depth_mm"].astype(object)
    bad.loc[bad.index[2], "bill_depth_mm"] = "deep"
    with pytest.raises(ValueError, match="row 2, column 'bill_depth_mm': 'deep' is not a number"):
        clf.predict(bad)
    with pytest.raises(ValueError, match="requires y to be passed"):
        MLPClassifier().fit(X_train, None)


def test_column_transformer_pipeline_and_grid_search(penguins):
    X_train, X_test, y_train, y_test = penguins
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         CATEGORICAL),
    ], sparse_threshold=1.0)  # a sparse matrix reaches the estimator: it is densified
    pipe = make_pipeline(pre, MLPClassifier(learning_rate_init=0.01, max_iter=60, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(8,), (32,)]}, cv=3).fit(X_train, y_train)
    assert grid.best_estimator_[-1].model_.encoder is None  # already numbers: no second preprocessing
    assert grid.score(X_test, y_test) > 0.95
