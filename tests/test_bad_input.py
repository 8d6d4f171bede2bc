"""Every bad input raises a ValueError subclass whose message names the problem and the value."""

from __future__ import annotations

import numpy as np
import pytest

import bpexp
from bpexp.errors import InvalidInputError, TrainingDivergedError

RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 4))
Y = np.array([0, 1, 2] * 10)


def _model(**kw):
    return bpexp.MLP(kw.pop("sizes", [4, 5, 3]), seed=0, **kw)


def _raises(call, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        call()
    assert isinstance(info.value, ValueError)
    return info.value


# ---------------------------------------------------------------------------- features
@pytest.mark.parametrize(("bad", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_non_finite_features_name_row_and_column(bad, shown):
    Xb = X.copy()
    Xb[17, 2] = bad
    _raises(lambda: bpexp.fit(_model(), Xb, Y), f"X contains {shown} at row 17, column 2; inputs must be finite")
    _raises(lambda: bpexp.fit(_model(), X, Y, validation_data=(Xb, Y)),
            f"validation X contains {shown} at row 17, column 2")
    trained = _model()
    bpexp.fit(trained, X, Y, epochs=1)
    _raises(lambda: trained.predict(Xb), f"X contains {shown} at row 17, column 2")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_finite_values_whose_sum_overflows_are_accepted(dtype):
    big = np.float32(3e38) if dtype == "float32" else 1.7e308
    Xb = np.full((40, 4), big, dtype=dtype)
    Xb[::2] *= -1  # +big and -big: partial sums overflow to both infinities, the total to NaN
    model = bpexp.MLP([4, 3, 2], dtype=dtype, seed=0)
    assert np.array_equal(model.check_X(Xb), Xb)  # every value finite: no error


def test_finite_values_too_large_for_float32_are_reported():
    Xb = X.copy()
    Xb[3, 1] = 1e39  # finite in float64, inf in float32
    _raises(lambda: bpexp.fit(_model(), Xb, Y),
            r"X contains 1e\+39 at row 3, column 1, which is beyond float32's range")
    bpexp.fit(_model(dtype="float64"), Xb, Y, epochs=1)  # fine in float64


@pytest.mark.parametrize(
    ("bad_X", "message"),
    [
        (X[:, 0], r"X must be 2-D \(n_samples, n_features\), got shape \(30,\)"),
        (X.reshape(30, 2, 2), r"X must be 2-D \(n_samples, n_features\), got shape \(30, 2, 2\)"),
        (X[:, :3], "X has 3 features, but the model expects 4"),
        (np.empty((0, 4)), "X is empty: it has 0 rows"),
        (np.array([["a", "b", "c", "d"]] * 30), "X must be numeric, got values of dtype <U1"),
        (X.astype(complex), "X must be real numbers, got values of dtype complex128"),
        ([[1, 2, 3, 4], [1, 2]], "X is not a numeric array"),
    ],
)
def test_bad_feature_arrays(bad_X, message):
    _raises(lambda: bpexp.fit(_model(), bad_X, Y), message)


def test_wrong_feature_count_at_prediction_and_validation():
    model = _model()
    bpexp.fit(model, X, Y, epochs=1)
    _raises(lambda: model.predict_proba(X[:, :2]), "X has 2 features, but the model expects 4")
    _raises(lambda: bpexp.evaluate(model, np.c_[X, X], Y), "X has 8 features, but the model expects 4")
    _raises(lambda: bpexp.fit(_model(), X, Y, validation_data=(X[:, :3], Y)),
            "validation X has 3 features, but the model expects 4")


# ---------------------------------------------------------------------------- targets
def test_mismatched_lengths():
    _raises(lambda: bpexp.fit(_model(), X, Y[:20]), "X has 30 rows but y has 20")
    _raises(lambda: bpexp.fit(_model(), X, Y, validation_data=(X[:10], Y[:9])),
            "validation X has 10 rows but validation y has 9")
    _raises(lambda: bpexp.fit(_model(sizes=[4, 2], task="regression"), X, RNG.normal(size=(29, 2))),
            "X has 30 rows but y has 29")


def test_mismatched_lengths_when_evaluating():
    model = _model()
    bpexp.fit(model, X, Y, epochs=1)
    _raises(lambda: bpexp.evaluate(model, X, Y[:20]), "X has 30 rows but y has 20")
    _raises(lambda: model.loss(X[:5], Y), "X has 5 rows but y has 30")


def test_empty_targets():
    _raises(lambda: bpexp.fit(_model(), X, []), "y is empty")


def test_single_class():
    _raises(lambda: bpexp.fit(_model(sizes=[4, 1]), X, ["spam"] * 30),
            "y has a single class \\('spam'\\); classification needs at least two")
    _raises(lambda: bpexp.fit(_model(), X, np.full(30, 7)), r"y has a single class \(7\)")


def test_class_count_must_fit_the_output_layer():
    _raises(lambda: bpexp.fit(_model(sizes=[4, 5, 4]), X, Y),
            r"y has 3 classes but the model has 4 output unit\(s\), which fits 4 classes")
    _raises(lambda: bpexp.fit(_model(sizes=[4, 5, 1]), X, Y),
            r"y has 3 classes but the model has 1 output unit\(s\), which fits 2 classes")


def test_labels_never_seen_in_training():
    _raises(lambda: bpexp.fit(_model(), X, Y, validation_data=(X, np.r_[Y[:-2], 5, 9])),
            r"validation y has labels never seen in training: \[5, 9\] \(known classes: \[0, 1, 2\]\)")
    model = _model()
    labels = np.array(["a", "b", "c"] * 10)
    bpexp.fit(model, X, labels, epochs=1)
    _raises(lambda: bpexp.evaluate(model, X, np.append(labels[:-1], "zebra")),
            r"y has labels never seen in training: \['zebra'\] \(known classes: \['a', 'b', 'c'\]\)")


def test_non_finite_labels_and_targets():
    yf = Y.astype(float)
    yf[4] = np.nan
    _raises(lambda: bpexp.fit(_model(), X, yf), "y contains nan at row 4; labels must be finite")
    yr = RNG.normal(size=30)
    yr[11] = np.inf
    _raises(lambda: bpexp.fit(_model(sizes=[4, 1], task="regression"), X, yr),
            "y contains a non-finite value at row 11")


def test_labels_that_are_neither_strings_nor_numbers():
    y = np.array(["a", "b", "c"] * 10, dtype=object)
    y[5] = None
    _raises(lambda: bpexp.fit(_model(), X, y), "y labels must be strings or numbers, got None")
    y[5] = 3
    _raises(lambda: bpexp.fit(_model(), X, y), "y mixes strings and other values in its labels, e.g. 3")


@pytest.mark.parametrize(
    ("kwargs", "y", "message"),
    [
        ({}, np.zeros((30, 3)), r"y must be 1-D class labels for classification, got shape \(30, 3\)"),
        ({"sizes": [4, 3], "task": "multilabel"}, Y, r"must be a 0/1 matrix of shape \(n_samples, 3\)"),
        ({"sizes": [4, 3], "task": "multilabel"}, np.full((30, 3), 2), "must contain only 0 and 1"),
        ({"sizes": [4, 2], "task": "regression"}, RNG.normal(size=30), r"y has shape \(30, 1\), but the model has 2"),
        ({"sizes": [4, 1], "task": "regression"}, np.array(["x"] * 30), "y must be numeric for regression"),
    ],
)
def test_targets_of_the_wrong_form(kwargs, y, message):
    _raises(lambda: bpexp.fit(_model(**kwargs), X, y), message)


def test_a_failed_fit_learns_nothing():
    model = _model(standardize=True)
    _raises(lambda: bpexp.fit(model, X, Y[:20]), "X has 30 rows but y has 20")
    _raises(lambda: bpexp.fit(model, X, np.r_[Y[:-1], 7], validation_data=(X, np.r_[Y[:-1], 8])),
            r"model has 3 output unit|labels never seen")
    assert model.classes_ is None and not model.preprocessing.fitted
    bpexp.fit(model, X, np.array(["a", "b", "c"] * 10), epochs=1)  # a corrected call works
    assert model.classes_.tolist() == ["a", "b", "c"]


# ---------------------------------------------------------------------------- names and settings
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bpexp.MLP([4, 5, 3], activation="swish"), r"unknown activation 'swish'; expected one of \["),
        (lambda: bpexp.MLP([4, 5, 3], activation=["relu", "nope"]), "got 2 activation values for 1 hidden layers"),
        (lambda: bpexp.fit(_model(), X, Y, optimizer="adagrad"), "unknown optimizer 'adagrad'; expected one of"),
        (lambda: bpexp.fit(_model(), X, Y, schedule="linear"), "unknown schedule 'linear'; expected one of"),
        (lambda: bpexp.MLP([4, 3], output="softmax", loss="mse"), "invalid output/loss pair 'softmax' \\+ 'mse'"),
        (lambda: bpexp.MLP([4, 3], task="regression", output="sigmoid"),
         "output/loss pair sigmoid\\+binary_cross_entropy does not suit task 'regression'"),
        (lambda: bpexp.MLP([4, 3], task="clustering"), "unknown task 'clustering'"),
        (lambda: bpexp.fit(_model(), X, Y, epochs=0), "epochs must be >= 1, got 0"),
        (lambda: bpexp.fit(_model(), X, Y, batch_size=0), "batch_size must be >= 1, got 0"),
        (lambda: bpexp.fit(_model(), X, Y, l2=-1), "l2 must be >= 0, got -1"),
        (lambda: bpexp.fit(_model(), X, Y, lr=0), "learning rate must be a positive number, got 0"),
        (lambda: bpexp.fit(_model(), X, Y, validation_data=X), r"validation_data must be a pair \(X_val, y_val\)"),
    ],
)
def test_bad_names_and_settings(call, message):
    _raises(call, message)


def test_unknown_names_leave_the_model_untrained():
    model = _model()
    before = model.params.copy()
    _raises(lambda: bpexp.fit(model, X, Y, optimizer="adagrad"), "unknown optimizer")
    assert np.array_equal(model.params, before) and model.classes_ is None


# ---------------------------------------------------------------------------- divergence
def test_non_finite_loss_stops_training_and_leaves_no_nan_weights():
    rng = np.random.default_rng(1)
    Xr = 10 * rng.normal(size=(200, 4))
    yr = 100 * Xr.sum(axis=1)
    model = bpexp.MLP([4, 16, 1], task="regression", seed=0)
    snapshots = [model.params.copy()]  # weights at the start of each epoch
    record = bpexp.LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(model.params.copy()))
    statuses = []
    end = bpexp.LambdaCallback(on_train_end=lambda h: statuses.append((h.status, len(h))))
    with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError) as info:
        bpexp.fit(model, Xr, yr, optimizer="sgd", lr=1e-4, epochs=100, batch_size=20, callbacks=[record, end],
                  seed=0)
    message = str(info.value)
    assert message.startswith("training diverged: train loss became ")
    assert f"at epoch {len(snapshots)}" in message and "weights restored to the start of that epoch" in message
    assert "Try a lower learning rate (lr=0.0001)" in message
    assert np.isfinite(model.params).all()
    assert np.array_equal(model.params, snapshots[-1])
    assert statuses == [("failed", len(snapshots) - 1)]
    assert len(snapshots) > 1  # it diverged after some finite epochs, not at once
    assert np.isfinite(model.predict(Xr)).all()


def test_divergence_on_the_first_batch_restores_the_initial_weights():
    Xr = np.full((8, 2), 1e25)  # float32 squares overflow at once
    model = bpexp.MLP([2, 3, 1], task="regression", seed=0)
    before = model.params.copy()
    with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError, match="at epoch 1 \\(batch 1 of 1\\)"):
        bpexp.fit(model, Xr, np.full(8, 1e25), lr=1e-3, epochs=3, batch_size=8)
    assert np.array_equal(model.params, before)


def test_diverged_error_is_a_bpexp_error():
    assert issubclass(TrainingDivergedError, bpexp.BpexpError)
    assert issubclass(InvalidInputError, bpexp.BpexpError) and issubclass(InvalidInputError, ValueError)
    assert issubclass(bpexp.ModelFormatError, ValueError)
