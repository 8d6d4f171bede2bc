"""Learning-rate schedules: their values per epoch, reduce-on-plateau's reactions, use inside fit."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bpexp
from bpexp.errors import InvalidInputError
from bpexp.nn.schedules import (
    SCHEDULES,
    Constant,
    CosineWithWarmup,
    ExponentialDecay,
    ReduceOnPlateau,
    StepDecay,
    get_schedule,
)


def _values(schedule, base_lr=0.1, epochs=10):
    schedule.reset(base_lr, epochs)
    return [schedule.lr_for_epoch(e) for e in range(1, epochs + 1)]


def test_constant():
    assert _values(Constant()) == [0.1] * 10


def test_step_decay():
    values = _values(StepDecay(step_size=3, gamma=0.5), base_lr=0.8)
    assert values == pytest.approx([0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1])


def test_exponential_decay():
    values = _values(ExponentialDecay(gamma=0.9), base_lr=2.0, epochs=5)
    assert values == pytest.approx([2.0, 1.8, 1.62, 1.458, 1.3122])


def test_cosine_without_warmup():
    values = _values(CosineWithWarmup(), base_lr=1.0, epochs=5)
    # progress (e - 1) / 5: the first epoch runs at the base rate, then a half cosine.
    expected = [0.5 * (1 + math.cos(math.pi * k / 5)) for k in range(5)]
    assert values == pytest.approx(expected)
    assert values[0] == 1.0 and all(a > b for a, b in zip(values, values[1:]))


def test_cosine_with_warmup_and_floor():
    values = _values(CosineWithWarmup(warmup_epochs=4, min_lr=0.1), base_lr=1.0, epochs=10)
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # linear warm-up reaches the base rate
    decay = [0.1 + 0.45 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    assert values[4:] == pytest.approx(decay)
    assert min(values[4:]) > 0.1
    # Past the planned epochs the rate stays at the floor instead of rising again.
    sched = CosineWithWarmup(warmup_epochs=2, min_lr=0.1)
    sched.reset(1.0, 6)
    assert sched.lr_for_epoch(20) == pytest.approx(0.1)


def test_reduce_on_plateau_waits_patience_epochs_then_reduces():
    sched = ReduceOnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=0.01)
    sched.reset(0.4, 100)
    losses = [1.0, 0.9, 0.95, 0.91, 0.92, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85]
    lrs = []
    for epoch, loss in enumerate(losses, start=1):
        lrs.append(sched.lr_for_epoch(epoch))
        sched.update(epoch, {"val_loss": loss})
    # Improvements at epochs 1, 2, 6. Three epochs without improvement (more than patience=2)
    # reduce the rate for the following epoch; the count restarts after each reduction.
    assert lrs == pytest.approx([0.4, 0.4, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05])
    for epoch in range(15, 40):
        sched.update(epoch, {"val_loss": 0.85})
    assert sched.lr_for_epoch(40) == pytest.approx(0.01)  # never below min_lr


def test_reduce_on_plateau_min_delta_and_max_mode():
    sched = ReduceOnPlateau(monitor="val_accuracy", factor=0.1, patience=0, min_delta=0.05)
    assert sched.mode == "max"
    sched.reset(1.0, 10)
    sched.update(1, {"val_accuracy": 0.5})
    sched.update(2, {"val_accuracy": 0.6})  # +0.1 > min_delta: improvement
    assert sched.lr_for_epoch(3) == 1.0
    sched.update(3, {"val_accuracy": 0.62})  # +0.02 < min_delta: not an improvement
    assert sched.lr_for_epoch(4) == pytest.approx(0.1)


def test_reduce_on_plateau_needs_its_metric():
    sched = ReduceOnPlateau(monitor="val_loss")
    sched.reset(0.1, 5)
    with pytest.raises(InvalidInputError, match="monitors 'val_loss', which is not in the logs"):
        sched.update(1, {"train_loss": 1.0})


def test_schedule_registry_and_unknown_name():
    assert sorted(SCHEDULES) == ["constant", "cosine", "exponential", "plateau", "step"]
    assert type(get_schedule(None)) is Constant
    assert type(get_schedule("cosine", warmup_epochs=2)) is CosineWithWarmup
    with pytest.raises(InvalidInputError, match=r"unknown schedule 'linear'; expected one of \['constant'"):
        get_schedule("linear")
    with pytest.raises(InvalidInputError, match=r"schedule 'step' does not take \['gama'\]"):
        get_schedule("step", gama=0.5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: StepDecay(step_size=0), "step_size must be >= 1, got 0"),
        (lambda: StepDecay(gamma=0), r"gamma must be in \(0, 1\], got 0"),
        (lambda: ExponentialDecay(gamma=1.5), r"gamma must be in \(0, 1\], got 1.5"),
        (lambda: CosineWithWarmup(warmup_epochs=-1), "warmup_epochs must be >= 0, got -1"),
        (lambda: CosineWithWarmup(min_lr=-1), "min_lr must be >= 0, got -1"),
        (lambda: ReduceOnPlateau(patience=-1), "patience must be >= 0, got -1"),
        (lambda: ReduceOnPlateau(mode="up"), "mode must be 'min', 'max' or 'auto', got 'up'"),
    ],
)
def test_bad_schedule_settings(call, message):
    with pytest.raises(InvalidInputError, match=message):
        call()


def test_fit_applies_the_schedule_each_epoch():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    model = bpexp.MLP([3, 4, 2], seed=0)
    history = bpexp.fit(model, X, y, optimizer="sgd", lr=0.2, epochs=7, schedule=StepDecay(step_size=2, gamma=0.5),
                        seed=0)
    assert history["lr"] == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.05, 0.05, 0.025])
    history = bpexp.fit(model, X, y, optimizer="adam", lr=0.01, epochs=3, schedule="exponential", seed=0)
    assert history["lr"] == pytest.approx([0.01, 0.0095, 0.009025])


def test_fit_with_reduce_on_plateau_reduces_after_a_stall():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    model = bpexp.MLP([3, 4, 2], seed=0)
    # A min_delta no loss can beat: epoch 1 sets the best, epochs 2 and 3 do not improve, which is
    # more than patience=1, so epoch 4 runs at half the rate; the count then starts over.
    sched = ReduceOnPlateau(monitor="val_loss", factor=0.5, patience=1, min_delta=1e9)
    history = bpexp.fit(model, X, y, lr=0.1, epochs=6, schedule=sched, validation_data=(X, y), seed=0)
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025])
