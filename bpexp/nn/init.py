"""Weight initialisation chosen per activation, always from an explicit Generator."""

from __future__ import annotations

import numpy as np

from bpexp.errors import InvalidInputError


def init_weight(kind: str, fan_in: int, fan_out: int, rng: np.random.Generator, dtype) -> np.ndarray:
    """Draw a (fan_in, fan_out) weight matrix.

    ``"he"`` (normal, std ``sqrt(2 / fan_in)``) suits the ReLU family;
    ``"glorot"`` (uniform, limit ``sqrt(6 / (fan_in + fan_out))``) suits tanh,
    sigmoid and linear layers.
    """
    if kind == "he":
        w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
    elif kind == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, size=(fan_in, fan_out))
    else:
        raise InvalidInputError(f"unknown init {kind!r}; expected 'he' or 'glorot'")
    return w.astype(dtype)
