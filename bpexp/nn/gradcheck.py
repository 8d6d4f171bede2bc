"""Gradient checking by central differences in float64."""

from __future__ import annotations

import copy

import numpy as np


def _float64_copy(model):
    # A shallow copy re-allocated in float64, rather than a rebuild from the saved
    # architecture: it keeps the model's class and its activation and head objects,
    # so custom activations (or a subclass's own backward pass) are what gets checked.
    clone = copy.copy(model)
    clone.dtype = np.dtype(np.float64)
    clone._allocate()
    clone.params[...] = model.params
    if model.preprocessing is not None and model.preprocessing.fitted:
        clone.preprocessing = model.preprocessing.astype(np.float64)
    if model.target_scaler is not None and model.target_scaler.fitted:
        clone.target_scaler = model.target_scaler.astype(np.float64)
    return clone


def gradcheck(model, X, y, *, l2: float = 0.0, eps: float = 1e-6, max_checks_per_array: int = 200,
              seed: int = 0) -> float:
    """Compare backprop gradients with central differences; return the worst relative error.

    The model is copied to float64 (float32 cannot resolve the differences) and
    run without dropout. For each weight matrix and bias vector the relative
    error ``||g - g_num|| / (||g|| + ||g_num||)`` is computed over all its entries
    (or ``max_checks_per_array`` random ones for larger arrays); the maximum over
    arrays is returned. A correct network gives ~1e-9; above 1e-6 means a bug.

    Parameters
    ----------
    model : MLP
    X, y : array-like
        Raw features and targets (as given to :func:`bpexp.fit`).
    l2 : float
        Include the L2 term in the loss and gradient being checked.
    eps : float
        Finite-difference step.
    """
    m = _float64_copy(model)
    Xp = m._preprocess(m.check_X(X))
    yp = m.encode_targets(y, fit=m.classes_ is None)
    m.forward_backward(Xp, yp, l2=l2)
    analytic = m.grads.copy()

    def objective() -> float:
        return m._data_loss(Xp, yp) + m.l2_penalty(l2)

    rng = np.random.default_rng(seed)
    worst = 0.0
    offsets = _array_slices(m)
    for start, stop in offsets:
        size = stop - start
        idx = np.arange(start, stop)
        if size > max_checks_per_array:
            idx = start + rng.choice(size, max_checks_per_array, replace=False)
        numeric = np.empty(idx.size)
        for k, i in enumerate(idx):
            orig = m.params[i]
            m.params[i] = orig + eps
            f_plus = objective()
            m.params[i] = orig - eps
            f_minus = objective()
            m.params[i] = orig
            numeric[k] = (f_plus - f_minus) / (2 * eps)
        g = analytic[idx]
        denom = np.linalg.norm(g) + np.linalg.norm(numeric)
        if denom > 0:
            worst = max(worst, float(np.linalg.norm(g - numeric) / denom))
    return worst


def _array_slices(model) -> list[tuple[int, int]]:
    """(start, stop) of every W and every b inside the flat parameter array."""
    base = model.params.__array_interface__["data"][0]
    item = model.params.itemsize
    out = []
    for W, b in model.weights:
        for arr in (W, b):
            start = (arr.__array_interface__["data"][0] - base) // item
            out.append((start, start + arr.size))
    return out
