"""The MLP itself: initialisation, weights, dtypes, dropout, L2, prediction decoding."""

from __future__ import annotations

import numpy as np
import pytest

import bpexp
from bpexp.errors import InvalidInputError
from bpexp.nn.activations import LeakyReLU


def _kurtosis(w):
    w = w.ravel().astype(np.float64)
    c = w - w.mean()
    return float((c**4).mean() / (c**2).mean() ** 2)


# ---------------------------------------------------------------------------- initialisation
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu"])
def test_he_init_for_relu_family(activation):
    model = bpexp.MLP([500, 400, 10], activation=activation, seed=0, dtype="float64")
    (W1, b1), (W2, b2) = model.weights
    assert W1.std() == pytest.approx(np.sqrt(2 / 500), rel=0.01)
    assert abs(W1.mean()) < 3 * np.sqrt(2 / 500) / np.sqrt(W1.size)
    assert _kurtosis(W1) == pytest.approx(3.0, abs=0.1)  # normal, not uniform (1.8)
    # The output layer is linear: Glorot.
    limit = np.sqrt(6 / (400 + 10))
    assert np.abs(W2).max() <= limit and np.abs(W2).max() > 0.98 * limit
    assert not b1.any() and not b2.any()


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "identity"])
def test_glorot_init_for_tanh_sigmoid_linear(activation):
    model = bpexp.MLP([500, 300, 10], activation=activation, seed=1, dtype="float64")
    W1, b1 = model.weights[0]
    limit = np.sqrt(6 / (500 + 300))
    assert np.abs(W1).max() <= limit and np.abs(W1).max() > 0.999 * limit
    assert W1.var() == pytest.approx(2 / (500 + 300), rel=0.01)  # uniform(-l, l) has variance l^2 / 3
    assert _kurtosis(W1) == pytest.approx(1.8, abs=0.05)
    assert not b1.any()


def test_init_override():
    model = bpexp.MLP([400, 300, 2], activation="tanh", init="he", seed=0, dtype="float64")
    assert model.weights[0][0].std() == pytest.approx(np.sqrt(2 / 400), rel=0.01)
    with pytest.raises(InvalidInputError, match="unknown init 'lecun'"):
        bpexp.MLP([3, 2], init="lecun")


def test_seeded_init_is_reproducible_and_leaves_the_global_rng_alone():
    state = np.random.get_state()  # noqa: NPY002 - the legacy global RNG is what must stay untouched
    a = bpexp.MLP([20, 16, 8, 3], seed=42)
    b = bpexp.MLP([20, 16, 8, 3], seed=42)
    c = bpexp.MLP([20, 16, 8, 3], seed=43)
    d = bpexp.MLP([20, 16, 8, 3], seed=np.random.default_rng(42))
    after = np.random.get_state()  # noqa: NPY002
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]
    assert np.array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)
    assert np.array_equal(a.params, d.params)  # a Generator passed in is used as is
    a.reset_parameters(43)
    assert np.array_equal(a.params, c.params)


def test_init_does_not_draw_from_the_global_rng():
    saved = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(0)  # noqa: NPY002
        a = bpexp.MLP([5, 4, 2], seed=1)
        np.random.seed(123)  # noqa: NPY002
        b = bpexp.MLP([5, 4, 2], seed=1)
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    assert np.array_equal(a.params, b.params)


# ---------------------------------------------------------------------------- weights
def test_weights_are_views_with_fan_in_fan_out_shapes():
    model = bpexp.MLP([6, 5, 4, 3], seed=0)
    assert [(W.shape, b.shape) for W, b in model.weights] == [((6, 5), (5,)), ((5, 4), (4,)), ((4, 3), (3,))]
    assert model.n_params == 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3 == model.params.size
    assert model.n_weights == 6 * 5 + 5 * 4 + 4 * 3
    W, b = model.weights[1]
    W[0, 0] = 7.0
    b[2] = -3.0
    assert model.weights[1][0][0, 0] == 7.0 and model.weights[1][1][2] == -3.0
    assert 7.0 in model.params and -3.0 in model.params
    # "weights only" is the prefix of the flat parameter array
    assert np.array_equal(model.params[: model.n_weights],
                          np.concatenate([W.ravel() for W, _ in model.weights]))


def test_weights_are_assignable_and_change_predictions():
    X = np.random.default_rng(0).normal(size=(5, 3))
    model = bpexp.MLP([3, 4, 1], task="regression", seed=0)
    new = [(np.full((3, 4), 0.5), np.ones(4)), (np.full((4, 1), 2.0), np.array([1.0]))]
    model.weights = new
    expected = (X @ new[0][0] + 1).clip(0) @ new[1][0] + 1
    np.testing.assert_allclose(model.predict(X), expected[:, 0], rtol=1e-5)
    assert model.params.dtype == np.float32  # values copied in, dtype kept


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([(np.zeros((3, 4)), np.zeros(4))], "expected 2 \\(W, b\\) pairs, got 1"),
        ([(np.zeros((4, 3)), np.zeros(4)), (np.zeros((4, 1)), np.zeros(1))],
         r"layer 0: expected W \(3, 4\) and b \(4,\), got W \(4, 3\) and b \(4,\)"),
        ([(np.zeros((3, 4)), np.zeros(4)), (np.zeros((4, 1)), np.zeros(2))],
         r"layer 1: expected W \(4, 1\) and b \(1,\), got W \(4, 1\) and b \(2,\)"),
        ([(np.full((3, 4), np.nan), np.zeros(4)), (np.zeros((4, 1)), np.zeros(1))], "layer 0: weights contain NaN"),
    ],
)
def test_weights_assignment_checks(value, message):
    model = bpexp.MLP([3, 4, 1], task="regression", seed=0)
    before = model.params.copy()
    with pytest.raises(InvalidInputError, match=message):
        model.weights = value
    assert np.array_equal(model.params, before)  # nothing half-assigned


# ---------------------------------------------------------------------------- dtypes
class _RecordingMLP(bpexp.MLP):
    """Records the dtype of every training batch the loop hands to the model."""

    batch_dtypes: set

    def forward_backward(self, X, y, l2=0.0, rng=None):
        self.batch_dtypes = getattr(self, "batch_dtypes", set()) | {X.dtype}
        return super().forward_backward(X, y, l2, rng)


@pytest.mark.parametrize("X_dtype", [np.float64, np.int64, np.float32])
def test_float32_stays_float32(X_dtype):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(64, 5)) * 3).astype(X_dtype)
    y = rng.integers(0, 3, 64)
    model = _RecordingMLP([5, 8, 3], activation="gelu", dropout=0.2, standardize=True, seed=0)
    history = bpexp.fit(model, X, y, validation_data=(X, y), optimizer="adam", epochs=2, batch_size=16, l2=1e-3,
                        clip_norm=1.0, seed=0)
    assert model.batch_dtypes == {np.dtype(np.float32)}  # the gathered, standardized batches
    assert model.params.dtype == model.grads.dtype == np.float32
    for bufs in (model._A, model._D, model._Z, model._H, model._M):
        assert all(b is None or b.dtype == np.float32 for b in bufs)
    assert model.preprocessing.mean.dtype == model.preprocessing.scale.dtype == np.float32
    assert model.predict_proba(X).dtype == np.float32
    assert model.check_X(X).dtype == np.float32
    assert all(np.isfinite(v) for v in history[-1].values())


def test_float32_regression_and_multilabel_outputs():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))  # float64 input
    reg = bpexp.MLP([4, 5, 2], task="regression", seed=0)
    bpexp.fit(reg, X, rng.normal(size=(30, 2)), epochs=1)
    assert reg.predict(X).dtype == np.float32
    ml = bpexp.MLP([4, 5, 3], task="multilabel", seed=0)
    bpexp.fit(ml, X, rng.integers(0, 2, (30, 3)), epochs=1)
    assert ml.predict_proba(X).dtype == np.float32


def test_float64_on_request():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    model = bpexp.MLP([4, 5, 3], seed=0, dtype="float64")
    bpexp.fit(model, X, rng.integers(0, 3, 30), epochs=1, optimizer="rmsprop")
    assert model.params.dtype == model.grads.dtype == np.float64
    assert all(b.dtype == np.float64 for b in model._A)
    assert model.predict_proba(X).dtype == np.float64
    with pytest.raises(InvalidInputError, match="unknown dtype 'float16'"):
        bpexp.MLP([4, 3], dtype="float16")


def test_inputs_are_never_modified():
    rng = np.random.default_rng(3)
    X = (5 + 3 * rng.normal(size=(40, 4))).astype(np.float32)  # already the model's dtype: no copy on entry
    y = rng.integers(0, 2, 40)
    X0, y0 = X.copy(), y.copy()
    model = bpexp.MLP([4, 6, 2], standardize=True, seed=0)
    bpexp.fit(model, X, y, validation_data=(X, y), epochs=2, seed=0)
    model.predict_proba(X)
    bpexp.evaluate(model, X, y)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)


# ---------------------------------------------------------------------------- dropout
def test_dropout_is_training_only_and_prediction_is_deterministic():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(50, 4)), rng.integers(0, 3, 50)
    model = bpexp.MLP([4, 32, 3], dropout=0.5, seed=0, dtype="float64")
    bpexp.fit(model, X, y, epochs=2, seed=0)
    p1, p2 = model.predict_proba(X), model.predict_proba(X)
    assert np.array_equal(p1, p2)
    Xp, yp = model.check_X(X), model.encode_targets(y)
    eval_loss = model._data_loss(Xp, yp)
    # Without a Generator forward_backward runs in eval mode: it equals the prediction-time loss.
    assert model.forward_backward(Xp, yp)[0] == pytest.approx(eval_loss, rel=1e-12)
    g = np.random.default_rng(0)
    train_losses = {model.forward_backward(Xp, yp, rng=g)[0] for _ in range(3)}
    assert len(train_losses) == 3 and eval_loss not in train_losses


def test_inverted_dropout_keeps_the_expected_activation():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 6))
    n = 40_000
    X = np.repeat(x, n, axis=0)
    model = bpexp.MLP([6, 10, 1], activation="identity", task="regression", dropout=0.3, seed=0, dtype="float64")
    model.forward_backward(X, np.zeros((n, 1)), rng=np.random.default_rng(1))
    h = model._H[0][:n]  # hidden outputs before dropout
    a = model._A[0][:n]  # after dropout, passed on to the next layer
    dropped = a == 0
    assert dropped.mean() == pytest.approx(0.3, abs=0.01)
    np.testing.assert_allclose(a[~dropped], (h / 0.7)[~dropped], rtol=1e-12)  # kept units scaled by 1/keep
    np.testing.assert_allclose(a.mean(axis=0), h[0], rtol=0.03, atol=0.01)
    # With identity layers and MSE against 0, the output bias gradient is the mean output:
    # in expectation the training-mode output equals the eval output.
    assert model._gb[-1][0] == pytest.approx(model.predict(x)[0], rel=0.02, abs=0.01)


def test_dropout_rates_are_checked():
    with pytest.raises(InvalidInputError, match=r"dropout rate must be in \[0, 1\), got 1.0"):
        bpexp.MLP([3, 4, 2], dropout=1.0)
    with pytest.raises(InvalidInputError, match="got 1 dropout values for 2 hidden layers"):
        bpexp.MLP([3, 4, 4, 2], dropout=[0.1])


# ---------------------------------------------------------------------------- L2
@pytest.mark.parametrize("n", [1, 7, 100])
def test_l2_in_gradient_is_l2_times_w_for_any_batch_size(n):
    rng = np.random.default_rng(n)
    X, y = rng.normal(size=(n, 5)), rng.integers(0, 3, n)
    model = bpexp.MLP([5, 6, 3], seed=0, dtype="float64")
    yp = model.encode_targets(np.r_[y, 0, 1, 2], fit=True)[:n]
    model.forward_backward(X, yp, l2=0.0)
    g0 = model.grads.copy()
    model.forward_backward(X, yp, l2=0.3)
    diff = model.grads - g0
    nw = model.n_weights
    np.testing.assert_allclose(diff[:nw], 0.3 * model.params[:nw], rtol=1e-10, atol=1e-14)
    assert not diff[nw:].any()  # biases are not penalised


def test_l2_in_loss():
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(20, 5)), rng.integers(0, 3, 20)
    model = bpexp.MLP([5, 6, 3], seed=0, dtype="float64")
    model.encode_targets(y, fit=True)
    penalty = 0.5 * 0.2 * sum((W**2).sum() for W, _ in model.weights)
    assert model.loss(X, y, l2=0.2) - model.loss(X, y) == pytest.approx(penalty, rel=1e-10)
    assert model.l2_penalty(0.2) == pytest.approx(penalty, rel=1e-10)
    # The penalty is independent of how many rows the data loss averages over.
    assert model.loss(X[:3], y[:3], l2=0.2) - model.loss(X[:3], y[:3]) == pytest.approx(penalty, rel=1e-10)


# ---------------------------------------------------------------------------- prediction
def _train(labels, n_out, task="classification", **kw):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(len(labels), 3))
    model = bpexp.MLP([3, 8, n_out], task=task, seed=0)
    bpexp.fit(model, X, labels, epochs=3, seed=0, **kw)
    return model, X


def test_predict_decodes_string_labels():
    labels = np.array(["setosa", "virginica", "versicolor"] * 10)
    model, X = _train(labels, 3)
    assert model.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    pred = model.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= set(labels)
    p = model.predict_proba(X)
    assert p.shape == (30, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert np.array_equal(pred, model.classes_[p.argmax(axis=1)])


def test_predict_decodes_non_contiguous_integer_labels():
    labels = np.array([3, 7, 11] * 10)
    model, X = _train(labels, 3)
    assert model.classes_.tolist() == [3, 7, 11]
    assert set(model.predict(X).tolist()) <= {3, 7, 11}
    # evaluate encodes the same labels
    assert 0 <= bpexp.evaluate(model, X, labels)["accuracy"] <= 1


def test_binary_sigmoid_head_gives_two_probability_columns():
    labels = np.array(["neg", "pos"] * 15)
    model, X = _train(labels, 1)
    assert model.head.name == "sigmoid+binary_cross_entropy"
    p = model.predict_proba(X)
    assert p.shape == (30, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    raw = model._outputs(model.check_X(X))[:, 0]  # sigmoid output is P(classes_[1])
    np.testing.assert_allclose(p[:, 1], raw)
    assert np.array_equal(model.predict(X), np.where(p[:, 1] > p[:, 0], "pos", "neg"))


def test_multilabel_prediction():
    rng = np.random.default_rng(8)
    Y = rng.integers(0, 2, (30, 4))
    model, X = _train(Y, 4, task="multilabel")
    p = model.predict_proba(X)
    assert p.shape == (30, 4) and ((p >= 0) & (p <= 1)).all()
    pred = model.predict(X)
    assert pred.shape == (30, 4) and np.array_equal(pred, (p >= 0.5).astype(int))


@pytest.mark.parametrize(("n_out", "shape"), [(1, (30,)), (3, (30, 3))])
def test_regression_prediction_shapes(n_out, shape):
    rng = np.random.default_rng(9)
    y = rng.normal(size=(30, n_out)) if n_out > 1 else rng.normal(size=30)
    model, X = _train(y, n_out, task="regression")
    assert model.predict(X).shape == shape
    with pytest.raises(InvalidInputError, match="predict_proba needs a classification model"):
        model.predict_proba(X)


def test_untrained_classifier_cannot_decode():
    model = bpexp.MLP([3, 2], seed=0)
    with pytest.raises(InvalidInputError, match="no class labels yet; train it with bpexp.fit first"):
        model.predict(np.zeros((2, 3)))


def test_prediction_in_chunks_matches_row_by_row():
    """Prediction runs in chunks of 8192 rows to bound memory; chunk borders must not show."""
    rng = np.random.default_rng(10)
    model = bpexp.MLP([3, 4, 3], seed=0, dtype="float64")
    model.classes_ = np.arange(3)
    X = rng.normal(size=(2 * 8192 + 5, 3))
    whole = model.predict_proba(X)
    assert whole.shape == (X.shape[0], 3)
    rows = [8190, 8191, 8192, 8193, 16383, 16384, 16388]
    np.testing.assert_allclose(whole[rows], model.predict_proba(X[rows]), rtol=1e-12)


# ---------------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ([3], r"sizes needs at least an input and an output size, got \[3\]"),
        ([3, 0, 2], r"layer sizes must be positive, got \[3, 0, 2\]"),
        (["a", 2], "sizes must be a list of positive integers, got \\['a', 2\\]"),
        ([3, 4, 2, 2], None),
    ],
)
def test_sizes_are_checked(sizes, message):
    if message is None:
        with pytest.raises(InvalidInputError, match="got 2 activation values for 2|got 1 activation"):
            bpexp.MLP(sizes, activation=["relu"])
        return
    with pytest.raises(InvalidInputError, match=message):
        bpexp.MLP(sizes)


def test_repr_and_copy():
    model = bpexp.MLP([4, 8, 3], activation=LeakyReLU(0.2), seed=0)
    assert repr(model) == "MLP(sizes=[4, 8, 3], activation='leaky_relu', head='softmax+cross_entropy', " \
                          "dtype='float32', params=67)"
    clone = model.copy()
    assert np.array_equal(clone.params, model.params) and clone.params is not model.params
    assert clone.activations[0].alpha == 0.2
    clone.params[0] += 1
    assert clone.params[0] != model.params[0]
    with pytest.raises(InvalidInputError, match=r"leaky_relu alpha must be in \[0, 1\), got 1.5"):
        LeakyReLU(1.5)
