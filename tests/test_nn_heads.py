"""Output heads fused with their losses, and the hidden activations: values, stability, derivatives."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from bpexp.errors import InvalidInputError
from bpexp.nn.activations import ACTIVATIONS, get_activation
from bpexp.nn.heads import (
    HEADS,
    IdentityHuber,
    IdentityMSE,
    SigmoidBinaryCrossEntropy,
    SoftmaxCrossEntropy,
    get_head,
)


def _bce_reference(z, y):
    """The stable BCE-with-logits formula from the guide, elementwise, in float64."""
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))


# ---------------------------------------------------------------------------- softmax + cross-entropy
def test_naive_softmax_of_extreme_logits_is_nan():
    """The reason for the max shift: without it [1000, 0, -1000] overflows."""
    z = np.array([1000.0, 0.0, -1000.0])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(z) / np.exp(z).sum()
    assert np.isnan(naive).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_of_extreme_logits_is_finite_and_exact(dtype):
    head = SoftmaxCrossEntropy()
    z = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, -1000.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings either
        loss = head.forward_loss(z.copy(), np.array([0, 2]))
        p = head.output_only(z.copy())
    assert np.isfinite(p).all() and p.dtype == dtype
    np.testing.assert_array_equal(p, [[1, 0, 0], [0, 1, 0]])
    # Row 0 is certain and right (loss 0); row 1 puts the true class 2000 below the best.
    assert math.isfinite(loss)
    assert loss == pytest.approx((0.0 + 2000.0) / 2)


def test_softmax_cross_entropy_matches_log_sum_exp_reference():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (50, 4))
    y = rng.integers(0, 4, 50)
    head = SoftmaxCrossEntropy()
    out = z.copy()
    loss = head.forward_loss(out, y)
    lse = np.log(np.exp(z).sum(axis=1))
    assert loss == pytest.approx(np.mean(lse - z[np.arange(50), y]), rel=1e-12)
    np.testing.assert_allclose(out, np.exp(z - lse[:, None]), rtol=1e-12)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-12)


def test_softmax_delta_is_p_minus_onehot_over_n():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(8, 3))
    y = rng.integers(0, 3, 8)
    head = SoftmaxCrossEntropy()
    out = z.copy()
    head.forward_loss(out, y)
    p = out.copy()
    delta = head.delta(out, y)
    np.testing.assert_allclose(delta, (p - np.eye(3)[y]) / 8, rtol=1e-12)


# ---------------------------------------------------------------------------- sigmoid + BCE
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_is_stable_for_large_logits_and_matches_reference(dtype):
    head = SigmoidBinaryCrossEntropy()
    z = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0], [30.0], [-30.0]], dtype=dtype)
    y = np.array([[1.0], [0.0], [0.0], [1.0], [1.0], [0.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = z.copy()
        loss = head.forward_loss(out, y)
    assert math.isfinite(loss)
    # Right and confident: ~0; wrong and confident: |z|.
    assert loss == pytest.approx(_bce_reference(z, y).sum() / 6, rel=1e-6)
    assert loss == pytest.approx((0 + 0 + 1000 + 1000 + 2 * math.log1p(math.exp(-30))) / 6, rel=1e-6)
    np.testing.assert_array_equal(out[:4, 0], [1, 0, 1, 0])
    assert out.dtype == dtype


def test_bce_matches_naive_formula_for_moderate_logits():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, (40, 3))
    y = rng.integers(0, 2, (40, 3)).astype(float)
    head = SigmoidBinaryCrossEntropy()
    out = z.copy()
    loss = head.forward_loss(out, y)
    p = 1 / (1 + np.exp(-z))
    naive = -(y * np.log(p) + (1 - y) * np.log(1 - p)).sum() / 40  # summed over outputs, mean over rows
    assert loss == pytest.approx(naive, rel=1e-10)
    np.testing.assert_allclose(out, p, rtol=1e-12)
    delta = head.delta(out, y)
    np.testing.assert_allclose(delta, (p - y) / 40, rtol=1e-10)


# ---------------------------------------------------------------------------- identity + MSE / Huber
def test_mse_is_half_squared_error_and_delta_is_residual_over_n():
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    head = IdentityMSE()
    out = z.copy()
    assert head.forward_loss(out, y) == pytest.approx(0.5 * ((z - y) ** 2).sum() / 10, rel=1e-12)
    np.testing.assert_allclose(head.delta(out, y), (z - y) / 10, rtol=1e-12)


def test_huber_loss_and_clipped_delta():
    head = IdentityHuber(delta=1.5)
    z = np.array([[0.5], [3.0], [-4.0], [1.5]])
    y = np.zeros((4, 1))
    out = z.copy()
    r = np.abs(z[:, 0])
    expected = np.where(r <= 1.5, 0.5 * r**2, 1.5 * (r - 0.75)).sum() / 4
    assert head.forward_loss(out, y) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(head.delta(out, y)[:, 0], np.clip(z[:, 0], -1.5, 1.5) / 4)


def test_huber_equals_mse_inside_the_band():
    rng = np.random.default_rng(4)
    z, y = rng.uniform(-0.4, 0.4, (20, 2)), np.zeros((20, 2))
    assert IdentityHuber(1.0).forward_loss(z.copy(), y) == pytest.approx(IdentityMSE().forward_loss(z.copy(), y))


# ---------------------------------------------------------------------------- registry
def test_only_valid_pairs_exist():
    assert set(HEADS) == {
        ("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"), ("identity", "mse"), ("identity", "huber"),
    }


@pytest.mark.parametrize(
    ("task", "n_out", "expected"),
    [
        ("classification", 3, SoftmaxCrossEntropy),
        ("classification", 1, SigmoidBinaryCrossEntropy),
        ("multilabel", 4, SigmoidBinaryCrossEntropy),
        ("regression", 2, IdentityMSE),
    ],
)
def test_default_head_per_task(task, n_out, expected):
    assert type(get_head(task, n_out)) is expected


@pytest.mark.parametrize(
    ("output", "loss", "message"),
    [
        ("softmax", "mse", "invalid output/loss pair 'softmax' + 'mse'"),
        ("identity", "cross_entropy", "invalid output/loss pair 'identity' + 'cross_entropy'"),
        ("sigmoid", "huber", "invalid output/loss pair 'sigmoid' + 'huber'"),
        ("tanh", None, "invalid output/loss pair 'tanh'"),
    ],
)
def test_invalid_output_loss_pair_is_an_error(output, loss, message):
    with pytest.raises(InvalidInputError, match=message.replace("+", r"\+")):
        get_head("classification", 3, output, loss)


def test_pair_that_does_not_suit_the_task_is_an_error():
    with pytest.raises(InvalidInputError, match="does not suit task 'regression'"):
        get_head("regression", 3, "softmax", "cross_entropy")
    with pytest.raises(InvalidInputError, match="at least 2 output units"):
        get_head("classification", 1, "softmax", "cross_entropy")
    with pytest.raises(InvalidInputError, match="got 3; use task='multilabel'"):
        get_head("classification", 3, "sigmoid", "binary_cross_entropy")
    with pytest.raises(InvalidInputError, match="unknown task 'ranking'"):
        get_head("ranking", 3)
    with pytest.raises(InvalidInputError, match="huber delta must be positive, got 0"):
        IdentityHuber(0)


# ---------------------------------------------------------------------------- activations
def _gelu_tanh(z):
    return 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))


REFERENCE = {
    "identity": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "gelu": _gelu_tanh,
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_forward_matches_reference(name):
    z = np.linspace(-6, 6, 1001).reshape(7, 143)
    act = get_activation(name)
    out = np.empty_like(z)
    np.testing.assert_allclose(act.forward(z, out), REFERENCE[name](z), rtol=1e-12, atol=1e-15)
    # In place (out is z) gives the same.
    zz = z.copy()
    np.testing.assert_allclose(act.forward(zz, zz), REFERENCE[name](z), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_backward_matches_central_differences(name):
    rng = np.random.default_rng(5)
    z = rng.uniform(-4, 4, (20, 30))
    z[np.abs(z) < 1e-3] = 0.5  # stay off the kink of relu/leaky_relu
    act = get_activation(name)
    a = act.forward(z, np.empty_like(z))
    delta = rng.normal(size=z.shape)
    d = delta.copy()
    act.backward(d, a.copy(), z.copy() if act.needs_input else None)
    h = 1e-6
    numeric = (REFERENCE[name](z + h) - REFERENCE[name](z - h)) / (2 * h)
    np.testing.assert_allclose(d, delta * numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_stays_float32_and_finite_for_extreme_inputs(name):
    z = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=np.float32)
    act = get_activation(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = act.forward(z.copy(), np.empty_like(z))
        d = np.ones_like(z)
        act.backward(d, a.copy(), z.copy() if act.needs_input else None)
    assert a.dtype == np.float32 and d.dtype == np.float32
    assert np.isfinite(a).all() and np.isfinite(d).all()


def test_sigmoid_saturates_exactly_without_overflow():
    z = np.array([[-1000.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = get_activation("sigmoid").forward(z, np.empty_like(z))
    np.testing.assert_array_equal(a, [[0.0, 1.0]])


def test_init_kind_per_activation():
    assert {n: get_activation(n).init for n in ACTIVATIONS} == {
        "relu": "he", "leaky_relu": "he", "gelu": "he", "tanh": "glorot", "sigmoid": "glorot", "identity": "glorot",
    }


def test_unknown_activation_lists_valid_names():
    with pytest.raises(InvalidInputError, match=r"unknown activation 'swish'; expected one of \['gelu'"):
        get_activation("swish")
