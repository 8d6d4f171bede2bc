"""Built-in datasets: synthetic sets generated from a seed (xor, moons, circles,
spirals) and the tables bundled with scikit-learn (iris, wine, breast_cancer,
digits, diabetes; no download). scikit-learn's sets are kept on disk after their
first load (:mod:`bpexp.data.cache`): importing ``sklearn.datasets`` costs seconds.
"""

from __future__ import annotations

import numpy as np

from bpexp.data.cache import cached_arrays
from bpexp.data.dataset import Dataset


def make_xor(n_samples: int = 400, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points around the four corners of a square; opposite corners share a class."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(n_samples, 2))
    X = (corners * 2.0 - 1.0) + noise * rng.standard_normal((n_samples, 2))
    return X, (corners[:, 0] ^ corners[:, 1]).astype(np.int64)


def make_spirals(n_samples: int = 600, noise: float = 0.2, n_arms: int = 2, seed: int = 0):
    """Interleaved spiral arms, one class per arm."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % n_arms
    t = np.sqrt(rng.uniform(0, 1, n_samples)) * 3 * np.pi
    angle = t + y * (2 * np.pi / n_arms)
    X = np.column_stack([t * np.cos(angle), t * np.sin(angle)]) / np.pi
    X += noise * rng.standard_normal(X.shape)
    return X, y.astype(np.int64)


def _make_moons(n_samples=500, noise=0.2, seed=0):
    return _generated("moons", n_samples, noise, seed)


def _make_circles(n_samples=500, noise=0.1, seed=0):
    return _generated("circles", n_samples, noise, seed)


def _generated(name: str, n_samples: int, noise: float, seed: int):
    """scikit-learn's make_moons / make_circles (factor 0.5), through the cache (:mod:`bpexp.data.cache`)."""

    def generate() -> dict:
        from sklearn.datasets import make_circles, make_moons

        if name == "moons":
            X, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
        else:
            X, y = make_circles(n_samples=n_samples, noise=noise, factor=0.5, random_state=seed)
        return {"X": X, "y": y}

    arrays = cached_arrays(name, {"n_samples": n_samples, "noise": noise, "seed": seed}, generate)
    return arrays["X"], arrays["y"]


SYNTHETIC = {"xor": make_xor, "moons": _make_moons, "circles": _make_circles, "spirals": make_spirals}
BUNDLED = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
BUILTIN_DATASETS = sorted([*SYNTHETIC, *BUNDLED])


def load_builtin(name: str, *, seed: int = 0, n_samples: int | None = None, noise: float | None = None) -> Dataset:
    """A built-in dataset by name (see :data:`BUILTIN_DATASETS`)."""
    if name in SYNTHETIC:
        kwargs = {k: v for k, v in (("n_samples", n_samples), ("noise", noise)) if v is not None}
        X, y = SYNTHETIC[name](seed=seed, **kwargs)
        return Dataset(name, np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64),
                       "classification", ["x1", "x2"], "class")
    loader, kind = BUNDLED[name]

    def load() -> dict:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader)()
        return {"X": bunch.data.astype(np.float64), "y": bunch.target,
                "feature_names": np.array([str(f) for f in bunch.feature_names])}

    arrays = cached_arrays(name, {}, load)
    return Dataset(name, arrays["X"], arrays["y"], kind, arrays["feature_names"].tolist(), "target")
