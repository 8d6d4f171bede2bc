"""Input standardization saved with the model, so a loaded model takes raw inputs."""

from __future__ import annotations

import numpy as np


class Standardizer:
    """Per-feature ``(x - mean) / scale``, fitted on training data only.

    Features with zero variance get ``scale = 1`` so they pass through centred
    instead of becoming NaN.
    """

    def __init__(self, mean: np.ndarray | None = None, scale: np.ndarray | None = None):
        self.mean = mean
        self.scale = scale

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    def fit(self, X: np.ndarray) -> Standardizer:
        """Fit mean and scale on ``X`` (computed in float64, stored in X's dtype)."""
        mean = X.mean(axis=0, dtype=np.float64)
        std = X.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
        self.mean = mean.astype(X.dtype)
        self.scale = std.astype(X.dtype)
        return self

    def transform(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Return standardized ``X``; with ``out=X`` this works in place."""
        out = np.subtract(X, self.mean, out=out)
        out /= self.scale
        return out

    def copy(self) -> Standardizer:
        if not self.fitted:
            return Standardizer()
        return Standardizer(self.mean.copy(), self.scale.copy())

    def astype(self, dtype) -> Standardizer:
        return Standardizer(self.mean.astype(dtype), self.scale.astype(dtype))

    def __repr__(self) -> str:
        state = f"{self.mean.shape[0]} features" if self.fitted else "unfitted"
        return f"Standardizer({state})"
