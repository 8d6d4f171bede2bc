"""The training loop: a hand-worked step, determinism, defaults, logs, standardization, learning."""

from __future__ import annotations

import numpy as np
import pytest

import bpexp
from bpexp.nn.optimizers import SGD


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


# ---------------------------------------------------------------------------- one hand-worked step
def test_one_sgd_step_matches_hand_worked_example():
    """scikit-learn's test_mlp.py::test_fit example: 3-2-1 logistic net, one sample, lr 0.1, L2 0.1."""
    X = np.array([[0.6, 0.8, 0.7]])
    W1, b1 = np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0.0]]), np.array([0.1, 0.1])
    W2, b2 = np.array([[0.1], [0.2]]), np.array([1.0])
    model = bpexp.MLP([3, 2, 1], activation="sigmoid", dtype="float64")
    model.weights = [(W1, b1), (W2, b2)]
    model.classes_ = np.array([0, 1])  # one sample of class 0: the classes come from elsewhere
    bpexp.fit(model, X, [0], optimizer="sgd", lr=0.1, l2=0.1, epochs=1, batch_size=1)

    # By hand, step by step (y = 0, N = 1):
    h = _sigmoid(X @ W1 + b1)  # [0.679178699, 0.574442517]
    o = _sigmoid(h @ W2 + b2)  # 0.765432924
    d2 = o - 0.0  # fused sigmoid + BCE: dL/dz = y_hat - y
    d1 = (d2 @ W2.T) * h * (1 - h)
    gW2, gb2 = h.T @ d2 + 0.1 * W2, d2.sum(axis=0)
    gW1, gb1 = X.T @ d1 + 0.1 * W1, d1.sum(axis=0)
    (nW1, nb1), (nW2, nb2) = model.weights
    np.testing.assert_allclose(nW1, W1 - 0.1 * gW1, rtol=1e-12)
    np.testing.assert_allclose(nb1, b1 - 0.1 * gb1, rtol=1e-12)
    np.testing.assert_allclose(nW2, W2 - 0.1 * gW2, rtol=1e-12)
    np.testing.assert_allclose(nb2, b2 - 0.1 * gb2, rtol=1e-12)
    # ... and the figures printed in scikit-learn's test (3 decimals there).
    np.testing.assert_allclose(nW1, [[0.098, 0.195756], [0.2956664, 0.096008], [0.4939998, -0.002244]], atol=1e-3)
    np.testing.assert_allclose(nW2, [[0.04706], [0.154089]], atol=1e-3)
    np.testing.assert_allclose(nb1, [0.098333, 0.09626], atol=1e-3)
    np.testing.assert_allclose(nb2, [0.9235], atol=1e-3)


def test_epoch_of_minibatches_equals_manual_loop():
    """fit = seeded permutation, batches in order, one step per batch (checked against a manual loop)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(23, 4)), rng.integers(0, 3, 23)
    model = bpexp.MLP([4, 5, 3], activation="tanh", seed=0, dtype="float64")
    manual = model.copy()
    bpexp.fit(model, X, y, optimizer="sgd", lr=0.3, epochs=1, batch_size=5, shuffle=False)
    Xp, yp = manual.check_X(X), manual.encode_targets(y, fit=True)
    for start in range(0, 23, 5):  # last batch has 3 rows
        manual.forward_backward(Xp[start : start + 5], yp[start : start + 5])
        manual.params -= 0.3 * manual.grads
    np.testing.assert_allclose(model.params, manual.params, rtol=1e-12)


# ---------------------------------------------------------------------------- determinism
def _run(seed, **kw):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(120, 5)), rng.integers(0, 3, 120)
    model = bpexp.MLP([5, 16, 8, 3], activation="gelu", dropout=0.2, seed=seed)
    history = bpexp.fit(model, X, y, validation_data=(X[:30], y[:30]), optimizer="adamw", lr=0.01, epochs=4,
                        batch_size=16, l2=1e-3, clip_norm=5.0, schedule="cosine", seed=seed, **kw)
    return model, history


def _without_timings(history):
    return [{k: v for k, v in e.items() if k != "epoch_seconds"} for e in history]


def test_same_seed_gives_bit_identical_weights_and_history():
    m1, h1 = _run(7)
    m2, h2 = _run(7)
    assert np.array_equal(m1.params, m2.params)
    assert _without_timings(h1) == _without_timings(h2)
    assert len(h1) == 4 and all(e["epoch_seconds"] > 0 for e in h1)


def test_different_seed_gives_different_weights():
    m1, h1 = _run(7)
    m2, h2 = _run(8)
    assert not np.array_equal(m1.params, m2.params)
    assert h1["train_loss"] != h2["train_loss"]


def test_fit_seed_controls_shuffling_and_dropout_separately_from_init():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(60, 3)), rng.integers(0, 2, 60)
    finals = []
    for fit_seed in (0, 0, 1):
        model = bpexp.MLP([3, 8, 2], dropout=0.3, seed=5)
        bpexp.fit(model, X, y, epochs=2, batch_size=8, seed=fit_seed)
        finals.append(model.params.copy())
    assert np.array_equal(finals[0], finals[1]) and not np.array_equal(finals[0], finals[2])


def test_shuffle_false_does_not_depend_on_the_seed():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    out = []
    for seed in (0, 1):
        model = bpexp.MLP([3, 4, 2], seed=0)
        bpexp.fit(model, X, y, epochs=2, batch_size=8, shuffle=False, seed=seed)
        out.append(model.params.copy())
    assert np.array_equal(*out)


# ---------------------------------------------------------------------------- nothing on by default
def test_defaults_switch_nothing_on():
    rng = np.random.default_rng(4)
    X, y = 10 * rng.normal(size=(50, 3)), rng.integers(0, 2, 50)
    model = bpexp.MLP([3, 6, 2], seed=0, dtype="float64")
    assert model.dropout == [0.0] and model.preprocessing is None
    seen = {}

    def begin(trainer):
        seen["optimizer"], seen["schedule"] = trainer.optimizer, trainer.schedule

    reference = model.copy()
    history = bpexp.fit(model, X, y, validation_data=(X, y), epochs=5, batch_size=50,
                        callbacks=[bpexp.LambdaCallback(on_train_begin=begin)])
    opt = seen["optimizer"]
    assert type(opt) is SGD and opt.momentum == 0.0 and opt.nesterov is False and opt.lr == 0.01
    assert type(seen["schedule"]).__name__ == "Constant"
    assert history["lr"] == [0.01] * 5
    assert len(history) == 5 and history.status == "completed" and history.stop_reason is None
    assert history.best_epoch is None  # no early stopping
    assert "l2_penalty" not in history[0]
    # Full batch, no shuffle effect: each step is exactly p -= 0.01 * grad (no momentum, no L2,
    # no clipping, even though these unscaled inputs make large gradients).
    Xp, yp = reference.check_X(X), reference.encode_targets(y, fit=True)
    norms = []
    for _ in range(5):
        reference.forward_backward(Xp, yp)
        norms.append(np.linalg.norm(reference.grads))
        reference.params -= 0.01 * reference.grads
    np.testing.assert_allclose(model.params, reference.params, rtol=1e-12)
    assert max(norms) > 1  # so that any default clipping at 1 would have shown


# ---------------------------------------------------------------------------- logs
def test_classification_logs():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    model = bpexp.MLP([3, 5, 4, 3], seed=0)
    history = bpexp.fit(model, X, y, validation_data=(X, y), epochs=2, l2=0.01, seed=0)
    logs = history[-1]
    assert set(logs) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_f1",
                         "val_log_loss", "lr", "l2_penalty", "epoch_seconds", "grad_norm/layer1",
                         "grad_norm/layer2", "grad_norm/layer3", "weight_norm/layer1", "weight_norm/layer2",
                         "weight_norm/layer3"}
    assert [e["epoch"] for e in history] == [1, 2]
    assert all(isinstance(v, (int, float)) for v in logs.values())
    ev = bpexp.evaluate(model, X, y)
    assert logs["val_loss"] == pytest.approx(ev["loss"]) and logs["val_accuracy"] == pytest.approx(ev["accuracy"])
    assert logs["val_log_loss"] == pytest.approx(logs["val_loss"], rel=1e-5)  # same quantity for softmax
    assert logs["l2_penalty"] == pytest.approx(model.l2_penalty(0.01))
    assert logs["weight_norm/layer2"] == pytest.approx(np.linalg.norm(model.weights[1][0]), rel=1e-6)
    assert history["train_loss"] == history.history["train_loss"] and len(history["train_loss"]) == 2


def test_regression_logs():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(40, 3))
    y = X @ [1.0, -2.0, 0.5]
    model = bpexp.MLP([3, 5, 1], task="regression", seed=0)
    history = bpexp.fit(model, X, y, validation_data=(X, y), epochs=2, seed=0)
    logs = history[-1]
    assert {"val_r2", "val_mse", "val_mae", "val_loss", "train_loss"} <= set(logs)
    assert "train_accuracy" not in logs and "val_accuracy" not in logs
    assert logs["val_loss"] == pytest.approx(logs["val_mse"] / 2, rel=1e-5)  # half squared error


def test_grad_norm_logs_are_the_per_layer_gradient_norms():
    rng = np.random.default_rng(10)
    X, y = rng.normal(size=(16, 3)), rng.integers(0, 3, 16)
    model = bpexp.MLP([3, 5, 4, 3], seed=0, dtype="float64")
    reference = model.copy()
    history = bpexp.fit(model, X, y, epochs=1, batch_size=16)  # one batch: the mean is that batch's norm
    reference.forward_backward(reference.check_X(X), reference.encode_targets(y, fit=True))
    for i, W in enumerate(reference._gW, start=1):
        assert history[0][f"grad_norm/layer{i}"] == pytest.approx(np.linalg.norm(W), rel=1e-10)


def test_train_loss_is_measured_before_each_step():
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(10, 3)), rng.integers(0, 2, 10)
    model = bpexp.MLP([3, 2], seed=0, dtype="float64")
    before = model.copy()
    history = bpexp.fit(model, X, y, epochs=1, batch_size=10, shuffle=False)
    before.classes_ = model.classes_
    # One full batch: the logged loss is the loss before the step.
    assert history[0]["train_loss"] == pytest.approx(before.loss(X, y))


# ---------------------------------------------------------------------------- standardization
def test_standardization_is_fitted_on_the_training_split_only():
    ds = bpexp.load_dataset("wine")
    parts = bpexp.split(ds, seed=0)
    model = bpexp.MLP([ds.n_features, 16, 3], standardize=True, seed=0, dtype="float64")
    bpexp.fit(model, parts.X_train, parts.y_train, validation_data=(parts.X_val, parts.y_val), epochs=2, seed=0)
    np.testing.assert_allclose(model.preprocessing.mean, parts.X_train.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.preprocessing.scale, parts.X_train.std(axis=0), rtol=1e-12)
    assert not np.allclose(model.preprocessing.mean, ds.X.mean(axis=0), rtol=1e-6)  # not the full data
    # The model takes raw inputs: predicting raw X equals the bare network on standardized X.
    Z = (parts.X_test - parts.X_train.mean(axis=0)) / parts.X_train.std(axis=0)
    bare = model.copy()
    bare.preprocessing = None
    np.testing.assert_allclose(model.predict_proba(parts.X_test), bare.predict_proba(Z), rtol=1e-10)


def test_standardization_of_a_constant_feature_is_finite():
    rng = np.random.default_rng(8)
    X = np.c_[rng.normal(size=30), np.full(30, 4.0)]
    model = bpexp.MLP([2, 3, 2], standardize=True, seed=0)
    bpexp.fit(model, X, rng.integers(0, 2, 30), epochs=1)
    assert model.preprocessing.scale[1] == 1.0 and np.isfinite(model.predict_proba(X)).all()


def test_second_fit_keeps_classes_and_standardization():
    rng = np.random.default_rng(9)
    X, y = rng.normal(size=(30, 2)), rng.choice(["a", "b"], 30)
    model = bpexp.MLP([2, 3, 1], standardize=True, seed=0)
    bpexp.fit(model, X, y, epochs=1)
    mean = model.preprocessing.mean.copy()
    bpexp.fit(model, X[:10] + 100, y[:10], epochs=1)  # continue training: nothing is re-learned
    assert np.array_equal(model.preprocessing.mean, mean) and model.classes_.tolist() == ["a", "b"]


# ---------------------------------------------------------------------------- it learns
def test_learns_xor():
    ds = bpexp.load_dataset("xor", seed=0)
    model = bpexp.MLP([2, 16, 1], activation="tanh", seed=0)
    bpexp.fit(model, ds.X, ds.y, optimizer="adam", lr=0.02, epochs=60, batch_size=32, seed=0)
    assert bpexp.evaluate(model, ds.X, ds.y)["accuracy"] >= 0.97


def test_learns_moons_with_momentum():
    ds = bpexp.load_dataset("moons", seed=0)
    parts = bpexp.split(ds, seed=0)
    model = bpexp.MLP([2, 32, 32, 2], activation="relu", seed=0)
    bpexp.fit(model, parts.X_train, parts.y_train, optimizer=SGD(lr=0.1, momentum=0.9, nesterov=True),
              epochs=60, batch_size=32, seed=0)
    assert bpexp.evaluate(model, parts.X_test, parts.y_test)["accuracy"] >= 0.93


def test_learns_digits_above_90_percent():
    ds = bpexp.load_dataset("digits")
    parts = bpexp.split(ds, seed=0)
    model = bpexp.MLP([64, 64, 10], activation="relu", standardize=True, seed=0)
    es = bpexp.EarlyStopping(monitor="val_loss", patience=5)
    history = bpexp.fit(model, parts.X_train, parts.y_train, validation_data=(parts.X_val, parts.y_val),
                        optimizer="adam", lr=3e-3, epochs=40, batch_size=32, callbacks=[es], seed=0)
    metrics = bpexp.evaluate(model, parts.X_test, parts.y_test)
    assert metrics["accuracy"] > 0.9 and metrics["f1"] > 0.9
    assert history[-1]["train_accuracy"] > 0.95


def test_learns_diabetes_regression():
    """On this split a linear least-squares fit reaches test R^2 0.22; early stopping keeps the MLP near it."""
    ds = bpexp.load_dataset("diabetes")
    parts = bpexp.split(ds, seed=0)
    mu, sd = parts.y_train.mean(), parts.y_train.std()
    model = bpexp.MLP([10, 16, 1], activation="tanh", task="regression", standardize=True, seed=0)
    history = bpexp.fit(model, parts.X_train, (parts.y_train - mu) / sd,
                        validation_data=(parts.X_val, (parts.y_val - mu) / sd), optimizer="adam", lr=0.01,
                        epochs=100, callbacks=[bpexp.EarlyStopping(patience=5)], seed=0)
    assert history.status == "stopped"
    assert bpexp.evaluate(model, parts.X_train, (parts.y_train - mu) / sd)["r2"] > 0.5
    assert bpexp.evaluate(model, parts.X_test, (parts.y_test - mu) / sd)["r2"] > 0.15
