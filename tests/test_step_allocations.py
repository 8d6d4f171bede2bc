"""A training step allocates no arrays: tracemalloc's peak over an epoch stays below one small buffer.

NumPy reports every array allocation to tracemalloc. What remains per step is
NumPy's own ufunc iteration buffer (at most 8,192 elements, ~32 KB of float32,
freed within the call) for broadcasting operations such as the bias add, plus
small Python objects. Any array temporary of a hidden layer here (1,024 x 512
float32 = 2 MB) or of the parameters (~40,000 float32 = 160 KB) would show.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import bpexp
from bpexp.nn.optimizers import SGD, get_optimizer
from bpexp.train.loop import _EpochRunner

ROWS, BATCH = 4096, 1024
#: NumPy's ufunc buffer (8,192 float32) plus bookkeeping; well below any array temporary above.
LIMIT_BYTES = 40_000


def _runner(activation, task, k, optimizer, dropout=0.1):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, 8))
    y = {
        "classification": rng.integers(0, max(k, 2), ROWS),
        "multilabel": rng.integers(0, 2, (ROWS, k)),
        "regression": rng.normal(size=(ROWS, k)),
    }[task]
    loss = "huber" if optimizer == "rmsprop" and task == "regression" else None
    model = bpexp.MLP([8, 512, 64, k], activation=activation, task=task, loss=loss, dropout=dropout,
                      standardize=True, seed=0)
    Xc = model.check_X(X)
    model.preprocessing.fit(Xc)
    Y = model.encode_targets(y, fit=True)
    opt = SGD(lr=0.01, momentum=0.9, nesterov=True) if optimizer == "sgd" else get_optimizer(optimizer)
    opt.setup(model.params, model.n_weights)
    return _EpochRunner(model, Xc, Y, BATCH, opt, l2=1e-4, clip_norm=1.0, dropout_rng=np.random.default_rng(0))


def _peak_extra_bytes(fn) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


CASES = [
    ("relu", "classification", 10, "adam"),
    ("relu", "classification", 1, "adamw"),
    ("tanh", "multilabel", 3, "rmsprop"),
    ("sigmoid", "regression", 2, "sgd"),
    ("leaky_relu", "regression", 2, "rmsprop"),
    ("gelu", "classification", 4, "adam"),
]


@pytest.mark.parametrize(("activation", "task", "k", "optimizer"), CASES)
def test_an_epoch_allocates_no_arrays(activation, task, k, optimizer):
    runner = _runner(activation, task, k, optimizer)
    perm = np.random.default_rng(1).permutation(ROWS)
    runner.run(perm, 1)  # the first epoch allocates the work buffers, once
    peak = _peak_extra_bytes(lambda: runner.run(perm, 2))
    assert peak <= LIMIT_BYTES, f"an epoch of {ROWS // BATCH} steps allocated {peak} bytes at its peak"


def test_allocation_does_not_grow_with_the_number_of_steps():
    runner = _runner("relu", "classification", 10, "adam")
    one_step, all_rows = np.arange(BATCH), np.arange(ROWS)
    runner.run(all_rows, 1)

    def epochs():
        for e in range(3, 6):
            runner.run(all_rows, e)

    short = _peak_extra_bytes(lambda: runner.run(one_step, 2))
    long = _peak_extra_bytes(epochs)
    assert long - short <= 4_000, (short, long)


def test_a_temporary_would_be_caught():
    """The measurement itself: one parameter-sized temporary per step breaks the limit."""
    runner = _runner("relu", "classification", 10, "adam")
    all_rows = np.arange(ROWS)
    runner.run(all_rows, 1)
    model = runner.model
    step = runner.opt.step
    runner.opt.step = lambda p, g: (step(p, g), p - 0.0 * g)  # the kind of slip the test guards against
    assert _peak_extra_bytes(lambda: runner.run(all_rows, 2)) > 4 * model.n_params > LIMIT_BYTES
