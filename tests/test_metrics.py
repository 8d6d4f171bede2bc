"""bpexp's NumPy metrics against scikit-learn's on random data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

import bpexp
from bpexp import metrics as M


def _proba(rng, n, k, dtype=np.float64):
    z = rng.normal(0, 2, (n, k))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 8))
    y = rng.integers(0, k, 200)
    y[:k] = np.arange(k)  # every class present in y_true
    p = _proba(rng, 200, k)
    pred = p.argmax(axis=1)
    assert M.accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred), rel=1e-12)
    assert M.f1_macro(y, pred, k) == pytest.approx(skm.f1_score(y, pred, average="macro"), rel=1e-12)
    assert M.log_loss(y, p) == pytest.approx(skm.log_loss(y, p, labels=np.arange(k)), rel=1e-10)
    hm = M.head_metrics("classification", k, y, p)
    assert hm == pytest.approx({"accuracy": skm.accuracy_score(y, pred),
                                "f1": skm.f1_score(y, pred, average="macro"),
                                "log_loss": skm.log_loss(y, p, labels=np.arange(k))}, rel=1e-10)


def test_f1_macro_with_classes_missing_from_truth_or_predictions():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 1, 3, 3])  # class 2 never predicted, class 3 never true, class 4 neither
    expected = skm.f1_score(y, pred, average="macro", zero_division=0)
    assert M.f1_macro(y, pred, 5) == pytest.approx(expected, rel=1e-12)


def test_log_loss_clips_like_sklearn():
    p = np.array([[1e-20, 1 - 1e-20], [0.5, 0.5], [0.0, 1.0]])
    y = np.array([0, 1, 0])
    assert M.log_loss(y, p) == pytest.approx(skm.log_loss(y, p, labels=[0, 1]), rel=1e-12)
    p32 = p.astype(np.float32)
    assert M.log_loss(y, p32) == pytest.approx(skm.log_loss(y, p32, labels=[0, 1]), rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_binary_head_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 150)
    p1 = rng.uniform(0.01, 0.99, (150, 1)).astype(np.float32)  # sigmoid output: P(class 1)
    hm = M.head_metrics("classification", 1, y.reshape(-1, 1).astype(np.float32), p1)
    pred = (p1[:, 0] > 0.5).astype(int)
    assert hm["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), rel=1e-12)
    assert hm["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"), rel=1e-12)
    assert hm["log_loss"] == pytest.approx(skm.log_loss(y, p1[:, 0].astype(np.float64)), rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_multilabel_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    Y = rng.integers(0, 2, (100, 4))
    P = rng.uniform(0.01, 0.99, (100, 4))
    pred = (P >= 0.5).astype(int)
    hm = M.head_metrics("multilabel", 4, Y.astype(float), P)
    assert hm["accuracy"] == pytest.approx(skm.accuracy_score(Y, pred), rel=1e-12)  # subset accuracy
    assert hm["f1"] == pytest.approx(skm.f1_score(Y, pred, average="macro"), rel=1e-12)
    per_label = np.mean([skm.log_loss(Y[:, j], P[:, j], labels=[0, 1]) for j in range(4)])
    assert hm["log_loss"] == pytest.approx(per_label, rel=1e-10)


def test_multilabel_f1_counts_an_all_negative_label_as_zero_like_sklearn():
    Y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    pred = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0]])
    expected = skm.f1_score(Y, pred, average="macro", zero_division=0)
    assert M.f1_macro_multilabel(Y, pred) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_regression_metrics_match_sklearn(n_outputs):
    rng = np.random.default_rng(n_outputs)
    y = rng.normal(size=(80, n_outputs))
    pred = y + rng.normal(0, 0.5, y.shape)
    hm = M.head_metrics("regression", n_outputs, y.astype(np.float32), pred.astype(np.float32))
    y32, p32 = y.astype(np.float32).astype(float), pred.astype(np.float32).astype(float)
    assert hm["mse"] == pytest.approx(skm.mean_squared_error(y32, p32), rel=1e-10)
    assert hm["mae"] == pytest.approx(skm.mean_absolute_error(y32, p32), rel=1e-10)
    assert hm["r2"] == pytest.approx(skm.r2_score(y32, p32), rel=1e-10)


def test_r2_of_constant_targets_like_sklearn():
    y = np.full(10, 3.0)
    assert M.r2(y, y) == skm.r2_score(y, y) == 1.0
    assert M.r2(y, y + 1) == skm.r2_score(y, y + 1) == 0.0


def test_metric_tables():
    assert M.TASK_METRICS["classification"][0] == "accuracy" and M.TASK_METRICS["regression"][0] == "r2"
    for names in M.TASK_METRICS.values():
        assert all(n in M.HIGHER_IS_BETTER for n in names)
    assert M.HIGHER_IS_BETTER["accuracy"] and not M.HIGHER_IS_BETTER["log_loss"]


def test_evaluate_matches_sklearn_on_a_trained_model():
    ds = bpexp.load_dataset("iris")
    parts = bpexp.split(ds, seed=0)
    model = bpexp.MLP([4, 8, 3], standardize=True, seed=0)
    bpexp.fit(model, parts.X_train, parts.y_train, optimizer="adam", lr=0.01, epochs=20, seed=0)
    ev = bpexp.evaluate(model, parts.X_test, parts.y_test)
    p = model.predict_proba(parts.X_test).astype(np.float64)
    p /= p.sum(axis=1, keepdims=True)  # float32 rows sum to 1 only to float32 precision; sklearn checks tighter
    pred = model.predict(parts.X_test)
    assert ev["accuracy"] == pytest.approx(skm.accuracy_score(parts.y_test, pred))
    assert ev["f1"] == pytest.approx(skm.f1_score(parts.y_test, pred, average="macro"))
    assert ev["log_loss"] == pytest.approx(skm.log_loss(parts.y_test, p, labels=[0, 1, 2]), rel=1e-5)
    assert ev["loss"] == pytest.approx(ev["log_loss"], rel=1e-5)
