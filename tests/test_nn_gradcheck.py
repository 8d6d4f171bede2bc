"""Gradient checks: backprop against central differences for every activation x head, with L2 on."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import bpexp
from bpexp.nn.activations import ACTIVATIONS, Tanh

HIDDEN = ["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "identity"]


def _head_problem(head: str, rng: np.random.Generator, n: int = 16, d: int = 4):
    """(MLP kwargs, X, y) for each output head."""
    X = rng.standard_normal((n, d))
    if head == "softmax+ce":
        return {"sizes": [d, 6, 5, 3]}, X, rng.integers(0, 3, n)
    if head == "sigmoid+bce binary":
        return {"sizes": [d, 6, 5, 1]}, X, np.array(["no", "yes"])[rng.integers(0, 2, n)]
    if head == "sigmoid+bce multilabel":
        return {"sizes": [d, 6, 5, 3], "task": "multilabel"}, X, rng.integers(0, 2, (n, 3))
    if head == "identity+mse":
        return {"sizes": [d, 6, 5, 2], "task": "regression"}, X, rng.standard_normal((n, 2))
    if head == "identity+huber":
        # Targets spread wide so that some residuals fall outside the quadratic band (|r| > 1).
        return {"sizes": [d, 6, 5, 2], "task": "regression", "loss": "huber"}, X, 3 * rng.standard_normal((n, 2))
    raise AssertionError(head)


HEADS = ["softmax+ce", "sigmoid+bce binary", "sigmoid+bce multilabel", "identity+mse", "identity+huber"]


def test_every_hidden_activation_is_covered():
    assert sorted(HIDDEN) == sorted(ACTIVATIONS)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("activation", HIDDEN)
def test_gradcheck_activation_x_head_with_l2(activation, head):
    rng = np.random.default_rng(zlib.crc32(f"{activation} {head}".encode()))
    kwargs, X, y = _head_problem(head, rng)
    model = bpexp.MLP(activation=activation, seed=3, dtype="float64", **kwargs)
    # Non-zero biases so that the bias gradients are exercised away from the initial zeros.
    for _, b in model.weights:
        b[...] = rng.normal(0, 0.1, b.shape)
    err = bpexp.gradcheck(model, X, y, l2=0.05)
    assert err < 1e-6, f"{activation} x {head}: relative error {err:.2e}"


def test_gradcheck_huber_exercises_both_regimes():
    """The Huber case above only tests the linear branch if residuals exceed delta; make sure they do."""
    rng = np.random.default_rng(0)
    kwargs, X, y = _head_problem("identity+huber", rng)
    model = bpexp.MLP(activation="tanh", seed=3, dtype="float64", **kwargs)
    r = np.abs(model.predict(X) - y)
    assert (r > 1).any() and (r < 1).any()
    assert bpexp.gradcheck(model, X, y, l2=0.05) < 1e-6


def test_gradcheck_mixed_activations_and_no_hidden_layer():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((12, 3)), rng.integers(0, 4, 12)
    mixed = bpexp.MLP([3, 5, 4, 6, 4], activation=["gelu", "sigmoid", "leaky_relu"], seed=0, dtype="float64")
    assert bpexp.gradcheck(mixed, X, y, l2=0.1) < 1e-6
    linear = bpexp.MLP([3, 4], seed=0, dtype="float64")  # softmax regression: no hidden layer
    assert bpexp.gradcheck(linear, X, y, l2=0.1) < 1e-6


def test_gradcheck_of_float32_model_runs_in_float64_and_leaves_model_untouched():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    model = bpexp.MLP([4, 5, 3], activation="tanh", seed=0, dropout=0.5)  # float32, dropout on
    before = model.params.copy()
    err = bpexp.gradcheck(model, X, y, l2=0.01)
    assert err < 1e-6  # float64 copy, dropout off: a float32 check could not get below ~1e-4
    assert model.params.dtype == np.float32
    assert np.array_equal(model.params, before)
    assert model.classes_ is None  # labels learned by the check stay in the copy


def test_gradcheck_with_standardization():
    rng = np.random.default_rng(3)
    X, y = 5 + 10 * rng.standard_normal((20, 3)), rng.standard_normal(20)
    model = bpexp.MLP([3, 4, 1], activation="sigmoid", task="regression", standardize=True, seed=0)
    bpexp.fit(model, X, y, epochs=1, seed=0)
    assert bpexp.gradcheck(model, X, y, l2=0.01) < 1e-6


class _ForgetsTheDerivative(Tanh):
    """tanh whose backward pass skips multiplying by 1 - tanh^2: a classic backprop bug."""

    def backward(self, delta, a, z):
        pass


class _BiasGradientOffByFactor(bpexp.MLP):
    """An MLP whose backward pass halves the bias gradients of the first layer."""

    def forward_backward(self, X, y, l2=0.0, rng=None):
        out = super().forward_backward(X, y, l2, rng)
        self._gb[0] *= 0.5
        return out


def test_gradcheck_detects_wrong_activation_derivative():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    model = bpexp.MLP([4, 6, 3], activation=_ForgetsTheDerivative(), seed=0, dtype="float64")
    assert bpexp.gradcheck(model, X, y) > 1e-3


def test_gradcheck_detects_wrong_bias_gradient():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    model = _BiasGradientOffByFactor([4, 6, 3], activation="tanh", seed=0, dtype="float64")
    for _, b in model.weights:
        b[...] = rng.normal(0, 0.5, b.shape)
    assert bpexp.gradcheck(model, X, y) > 0.1
    # The same network without the bug passes: the failure above is the bug, not the check.
    assert bpexp.gradcheck(bpexp.MLP([4, 6, 3], activation="tanh", seed=0, dtype="float64"), X, y) < 1e-6


def test_gradcheck_detects_missing_l2_gradient():
    """Checking with l2 > 0 must fail if the analytic gradient leaves the L2 term out."""

    class NoL2Gradient(bpexp.MLP):
        def forward_backward(self, X, y, l2=0.0, rng=None):
            return super().forward_backward(X, y, 0.0, rng)

    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((16, 4)), rng.standard_normal(16)
    model = NoL2Gradient([4, 6, 1], activation="tanh", task="regression", seed=0, dtype="float64")
    assert bpexp.gradcheck(model, X, y, l2=0.0) < 1e-6
    assert bpexp.gradcheck(model, X, y, l2=0.5) > 1e-2
