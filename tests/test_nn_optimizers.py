"""Optimizers against textbook reference implementations; gradient clipping by global norm."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bpexp
from bpexp.errors import InvalidInputError
from bpexp.nn.optimizers import OPTIMIZERS, SGD, Adam, AdamW, RMSprop, get_optimizer

N_WEIGHTS = 6  # params[:6] are "weights", params[6:] "biases" in these tests


def _run(opt, params, grads_seq):
    params = params.copy()
    opt.setup(params, N_WEIGHTS)
    for g in grads_seq:
        opt.step(params, g.copy())
    return params


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    params = rng.normal(size=10)
    grads = [rng.normal(size=10) for _ in range(5)]
    return params, grads


# ---------------------------------------------------------------------------- SGD
def test_plain_sgd(problem):
    params, grads = problem
    expected = params - 0.1 * sum(grads)
    np.testing.assert_allclose(_run(SGD(lr=0.1), params, grads), expected, rtol=1e-13)


def test_sgd_momentum_matches_reference(problem):
    params, grads = problem
    p, v = params.copy(), np.zeros_like(params)
    for g in grads:  # PyTorch's formulation: v = mu v + g; p -= lr v
        v = 0.9 * v + g
        p = p - 0.05 * v
    np.testing.assert_allclose(_run(SGD(lr=0.05, momentum=0.9), params, grads), p, rtol=1e-13)


def test_sgd_nesterov_matches_reference(problem):
    params, grads = problem
    p, v = params.copy(), np.zeros_like(params)
    for g in grads:  # v = mu v + g; p -= lr (g + mu v)
        v = 0.9 * v + g
        p = p - 0.05 * (g + 0.9 * v)
    np.testing.assert_allclose(_run(SGD(lr=0.05, momentum=0.9, nesterov=True), params, grads), p, rtol=1e-13)
    # and it differs from classical momentum
    assert not np.allclose(p, _run(SGD(lr=0.05, momentum=0.9), params, grads))


def test_sgd_defaults_are_plain():
    opt = SGD()
    assert opt.momentum == 0.0 and opt.nesterov is False


# ---------------------------------------------------------------------------- Adam
def _adam_reference(params, grads, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, n_weights=None):
    """Textbook Adam (Kingma & Ba, Algorithm 1) plus decoupled decay on params[:n_weights] (AdamW)."""
    p = params.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if wd:
            p[:n_weights] -= lr * wd * p[:n_weights]
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def test_adam_first_step_by_hand():
    """Step 1 with bias correction: m_hat = g, v_hat = g^2, so each parameter moves lr * g / (|g| + eps)."""
    params = np.array([1.0, -2.0, 0.5, 0.0, 3.0, 1.0, 0.1, 0.2, 0.3, 0.4])
    g = np.array([0.3, -1.2, 1e-3, 5.0, -0.01, 2.0, 0.0, 1.0, -1.0, 0.5])
    out = _run(Adam(lr=0.01), params, [g])
    expected = params - 0.01 * g / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)
    # Without bias correction (counter starting at 0, or no correction) the first step would be
    # ~0.01 * 0.1 / sqrt(0.001) ~ 0.03 instead of ~0.01: make sure that is not what happened.
    assert np.abs(out - params)[0] == pytest.approx(0.01, rel=1e-6)


def test_adam_step_counter_counts_updates_from_one():
    opt = Adam(lr=0.01)
    params = np.zeros(10)
    opt.setup(params, N_WEIGHTS)
    assert opt._t == 0
    opt.step(params, np.ones(10))
    assert opt._t == 1
    opt.step(params, np.ones(10))
    assert opt._t == 2
    opt.setup(params, N_WEIGHTS)  # a new fit starts over
    assert opt._t == 0


def test_adam_matches_reference_over_many_steps(problem):
    params, grads = problem
    grads = grads * 4
    np.testing.assert_allclose(_run(Adam(lr=0.01), params, grads), _adam_reference(params, grads, 0.01), rtol=1e-12)
    opt = Adam(lr=0.003, beta1=0.8, beta2=0.99, eps=1e-6)
    np.testing.assert_allclose(_run(opt, params, grads),
                               _adam_reference(params, grads, 0.003, 0.8, 0.99, 1e-6), rtol=1e-12)


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop"])
def test_float32_state_tracks_the_float64_reference(problem, name):
    params, grads = problem
    grads = grads * 20
    out32 = _run(get_optimizer(name, lr=0.01), params.astype(np.float32), [g.astype(np.float32) for g in grads])
    out64 = _run(get_optimizer(name, lr=0.01), params, grads)
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-6)


def test_adamw_matches_reference_and_decays_weights_only(problem):
    params, grads = problem
    out = _run(AdamW(lr=0.01, weight_decay=0.1), params, grads)
    np.testing.assert_allclose(out, _adam_reference(params, grads, 0.01, wd=0.1, n_weights=N_WEIGHTS), rtol=1e-12)
    # The decay is applied to the weights only: the biases follow plain Adam exactly.
    np.testing.assert_allclose(out[N_WEIGHTS:], _run(Adam(lr=0.01), params, grads)[N_WEIGHTS:], rtol=1e-13)


def test_adamw_with_zero_gradient_only_shrinks_weights():
    params = np.arange(1.0, 11.0)
    out = _run(AdamW(lr=0.1, weight_decay=0.5), params, [np.zeros(10)] * 3)
    np.testing.assert_allclose(out[:N_WEIGHTS], params[:N_WEIGHTS] * (1 - 0.1 * 0.5) ** 3, rtol=1e-13)
    np.testing.assert_array_equal(out[N_WEIGHTS:], params[N_WEIGHTS:])  # biases untouched


def test_adamw_decay_is_decoupled_from_the_gradient(problem):
    """L2-in-the-gradient Adam (coupled) differs from AdamW: the decay must not enter the moments."""
    params, grads = problem
    lr, wd = 0.01, 0.1
    decoupled = _run(AdamW(lr=lr, weight_decay=wd), params, grads)
    # Coupled version: add wd * w to the gradient and run plain Adam.
    p, coupled_opt = params.copy(), Adam(lr=lr)
    coupled_opt.setup(p, N_WEIGHTS)
    for g in grads:
        g = g.copy()
        g[:N_WEIGHTS] += wd * p[:N_WEIGHTS]
        coupled_opt.step(p, g)
    assert not np.allclose(decoupled[:N_WEIGHTS], p[:N_WEIGHTS], rtol=1e-6)
    # ... and the moment estimates are those of the raw gradients: the same state as plain Adam's.
    adamw, adam = AdamW(lr=lr, weight_decay=wd), Adam(lr=lr)
    p1, p2 = params.copy(), params.copy()
    adamw.setup(p1, N_WEIGHTS)
    adam.setup(p2, N_WEIGHTS)
    for g in grads:
        adamw.step(p1, g.copy())
        adam.step(p2, g.copy())
    assert not np.allclose(p1, p2)
    np.testing.assert_array_equal(adamw._m, adam._m)
    np.testing.assert_array_equal(adamw._v, adam._v)


def test_adamw_without_decay_is_adam(problem):
    params, grads = problem
    np.testing.assert_array_equal(_run(AdamW(lr=0.01), params, grads), _run(Adam(lr=0.01), params, grads))


# ---------------------------------------------------------------------------- RMSprop
def test_rmsprop_matches_reference(problem):
    params, grads = problem
    p, s = params.copy(), np.zeros_like(params)
    for g in grads:
        s = 0.9 * s + 0.1 * g * g
        p = p - 0.01 * g / (np.sqrt(s) + 1e-8)
    np.testing.assert_allclose(_run(RMSprop(lr=0.01), params, grads), p, rtol=1e-12)


# ---------------------------------------------------------------------------- dtype, registry, errors
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_step_keeps_float32(name):
    params = np.ones(10, np.float32)
    opt = get_optimizer(name, lr=0.1)
    opt.setup(params, N_WEIGHTS)
    for _ in range(2):
        opt.step(params, np.full(10, 0.5, np.float32))
    assert params.dtype == np.float32
    state = [v for k, v in vars(opt).items() if isinstance(v, np.ndarray)]
    assert state and all(a.dtype == np.float32 for a in state)
    assert (params < 1).all()


def test_get_optimizer_by_name_and_default_lrs():
    assert type(get_optimizer("sgd")) is SGD and get_optimizer("sgd").lr == 0.01
    assert type(get_optimizer("adam")) is Adam and get_optimizer("adam").lr == 1e-3
    assert type(get_optimizer("adamw")) is AdamW
    assert type(get_optimizer("rmsprop", lr=0.5)) is RMSprop and get_optimizer("rmsprop", lr=0.5).lr == 0.5
    opt = SGD(lr=0.2, momentum=0.5)
    assert get_optimizer(opt) is opt


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: get_optimizer("adagrad"), r"unknown optimizer 'adagrad'; expected one of \['adam', 'adamw'"),
        (lambda: get_optimizer("sgd", momentum=0.9, betas=1), r"optimizer 'sgd' does not take \['betas'\]"),
        (lambda: get_optimizer(SGD(), lr=0.1), "lr and optimizer options go into the optimizer object"),
        (lambda: SGD(lr=-1), "learning rate must be a positive number, got -1"),
        (lambda: SGD(lr=float("nan")), "learning rate must be a positive number, got nan"),
        (lambda: SGD(momentum=1.0), r"momentum must be in \[0, 1\), got 1.0"),
        (lambda: SGD(nesterov=True), "nesterov=True needs a momentum > 0"),
        (lambda: Adam(beta1=1.5), r"beta1 must be in \[0, 1\), got 1.5"),
        (lambda: Adam(eps=0), "eps must be positive, got 0"),
        (lambda: AdamW(weight_decay=-0.1), "weight_decay must be >= 0, got -0.1"),
        (lambda: RMSprop(rho=2), r"rho must be in \[0, 1\), got 2"),
        (lambda: RMSprop(eps=-1), "eps must be positive, got -1"),
    ],
)
def test_bad_optimizer_settings(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------------------- clipping (through fit)
def _one_full_batch_step(clip_norm):
    """One SGD step (lr 1) on the whole batch, with and without clipping; returns (before, after, grads)."""
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(32, 5)), rng.integers(0, 3, 32)
    model = bpexp.MLP([5, 8, 3], activation="tanh", seed=0, dtype="float64")
    model.encode_targets(y, fit=True)
    before = model.params.copy()
    reference = model.copy()
    reference.forward_backward(reference.check_X(X), reference.encode_targets(y))
    bpexp.fit(model, X, y, optimizer="sgd", lr=1.0, epochs=1, batch_size=32, clip_norm=clip_norm, shuffle=False)
    return before, model.params.copy(), reference.grads.copy()


def test_clip_norm_rescales_the_global_gradient():
    before, after, g = _one_full_batch_step(None)
    norm = np.linalg.norm(g)  # weights and biases together
    np.testing.assert_allclose(before - after, g, rtol=1e-10)
    clip = norm / 4
    before, after, g = _one_full_batch_step(clip)
    step = before - after
    np.testing.assert_allclose(step, g * (clip / norm), rtol=1e-10)
    assert np.linalg.norm(step) == pytest.approx(clip, rel=1e-10)


def test_clip_norm_leaves_small_gradients_alone():
    before, after, g = _one_full_batch_step(1e6)
    np.testing.assert_allclose(before - after, g, rtol=1e-12)


def test_clip_norm_must_be_positive():
    model = bpexp.MLP([2, 2], seed=0)
    with pytest.raises(InvalidInputError, match="clip_norm must be positive, got 0"):
        bpexp.fit(model, np.eye(2), [0, 1], clip_norm=0)
    assert math.isfinite(model.params.sum())
