"""Datasets: built-in ones by name, user data from CSV or NPZ, seeded splits.

Built-in synthetic sets (xor, moons, circles, spirals) are generated from a
seed; iris, wine, breast_cancer, digits and diabetes come bundled with
scikit-learn (no download).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bpexp.errors import InvalidInputError


@dataclass
class Dataset:
    """Features, targets and what they mean.

    Attributes
    ----------
    name : str
    X : ndarray (n_samples, n_features)
    y : ndarray (n_samples,)
    task : {"classification", "regression"}
    feature_names : list of str
    target_name : str
    source : str
        Where it came from (``"builtin"`` or a file path).
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    task: str
    feature_names: list[str] = field(default_factory=list)
    target_name: str = "target"
    source: str = "builtin"

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def classes(self) -> np.ndarray | None:
        return np.unique(self.y) if self.task == "classification" else None

    @property
    def n_outputs(self) -> int:
        """Output units an MLP needs: one per class (one for two classes), or one."""
        if self.task == "regression":
            return 1
        n = self.classes.size
        return 1 if n == 2 else n

    def digest(self) -> str:
        """SHA-256 of the data (shapes, dtypes and values), to tell datasets apart."""
        h = hashlib.sha256()
        for arr in (self.X, self.y):
            arr = np.ascontiguousarray(arr)
            h.update(f"{arr.shape}{arr.dtype.str}".encode())
            h.update(arr.tobytes() if arr.dtype != object else repr(arr.tolist()).encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        extra = f", classes={self.classes.size}" if self.task == "classification" else ""
        return (f"Dataset({self.name!r}, n_samples={self.n_samples}, n_features={self.n_features}, "
                f"task={self.task!r}{extra})")


# ---------------------------------------------------------------------------- synthetic
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
    from sklearn.datasets import make_moons

    return make_moons(n_samples=n_samples, noise=noise, random_state=seed)


def _make_circles(n_samples=500, noise=0.1, seed=0):
    from sklearn.datasets import make_circles

    return make_circles(n_samples=n_samples, noise=noise, factor=0.5, random_state=seed)


SYNTHETIC = {"xor": make_xor, "moons": _make_moons, "circles": _make_circles, "spirals": make_spirals}
BUNDLED = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
BUILTIN_DATASETS = sorted([*SYNTHETIC, *BUNDLED])


def load_dataset(name: str, *, seed: int = 0, n_samples: int | None = None, noise: float | None = None,
                 target: str | None = None, task: str | None = None) -> Dataset:
    """Load a built-in dataset by name, or a ``.csv`` / ``.npz`` file by path.

    Parameters
    ----------
    name : str
        One of :data:`BUILTIN_DATASETS`, or a path ending in ``.csv`` or ``.npz``.
    seed, n_samples, noise
        For the synthetic sets (xor, moons, circles, spirals) only.
    target : str
        The target column of a CSV file (required for CSV).
    task : {"classification", "regression"}, optional
        For files: overrides the guess made from the target values.
    """
    if name in SYNTHETIC:
        kwargs = {k: v for k, v in (("n_samples", n_samples), ("noise", noise)) if v is not None}
        X, y = SYNTHETIC[name](seed=seed, **kwargs)
        return Dataset(name, np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64),
                       "classification", ["x1", "x2"], "class")
    if name in BUNDLED:
        import sklearn.datasets

        loader, kind = BUNDLED[name]
        bunch = getattr(sklearn.datasets, loader)()
        return Dataset(name, bunch.data.astype(np.float64), bunch.target, kind,
                       [str(f) for f in bunch.feature_names], "target")
    path = Path(name)
    if path.suffix.lower() == ".csv":
        if not target:
            raise InvalidInputError(f"CSV dataset {name}: name the target column (target=...)")
        return load_csv(path, target, task=task)
    if path.suffix.lower() == ".npz":
        return load_npz(path, task=task)
    raise InvalidInputError(
        f"unknown dataset {name!r}; expected one of {BUILTIN_DATASETS} or a path to a .csv or .npz file"
    )


def load_csv(path, target: str, *, task: str | None = None) -> Dataset:
    """Load a CSV file with a header row; ``target`` names the label column.

    Every other column must be numeric; the message of any error names the
    column and the row (1-based, counting the header as row 1).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"CSV file {path} does not exist")
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise InvalidInputError(f"CSV file {path} is empty")
    header = [h.strip() for h in rows[0]]
    if target not in header:
        raise InvalidInputError(f"CSV file {path} has no column {target!r}; its columns are {header}")
    # Keep each row's own number (header = row 1) so messages stay right after blank lines.
    body = [(r, row) for r, row in enumerate(rows[1:], start=2) if any(cell.strip() for cell in row)]
    if not body:
        raise InvalidInputError(f"CSV file {path} has a header but no data rows")
    t = header.index(target)
    features = [h for i, h in enumerate(header) if i != t]
    X = np.empty((len(body), len(features)))
    labels = []
    for k, (r, row) in enumerate(body):
        if len(row) != len(header):
            raise InvalidInputError(f"{path} row {r} has {len(row)} fields, the header has {len(header)}")
        label = row[t].strip()
        if not label:
            raise InvalidInputError(f"{path} row {r}, column {target!r}: the target value is missing")
        labels.append(label)
        for j, (i, cell) in enumerate((i, c) for i, c in enumerate(row) if i != t):
            try:
                X[k, j] = float(cell)
            except ValueError:
                raise InvalidInputError(
                    f"{path} row {r}, column {header[i]!r}: {cell!r} is not a number"
                ) from None
    y = _parse_labels(labels)
    return Dataset(path.stem, X, y, task or _guess_task(y), features, target, str(path))


def load_npz(path, *, task: str | None = None) -> Dataset:
    """Load arrays ``X`` and ``y`` from an ``.npz`` file (never unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"NPZ file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"X", "y"} - set(npz.files)
            if missing:
                raise InvalidInputError(f"NPZ file {path} lacks arrays {sorted(missing)}; it has {npz.files}")
            X, y = npz["X"], npz["y"]
    except ValueError as exc:
        if isinstance(exc, InvalidInputError):
            raise
        raise InvalidInputError(f"NPZ file {path} is not readable without pickle: {exc}") from None
    X = np.asarray(X, dtype=np.float64)
    return Dataset(path.stem, X, y, task or _guess_task(y), [f"x{i}" for i in range(X.shape[1])],
                   "y", str(path))


def _parse_labels(labels: list[str]) -> np.ndarray:
    try:
        values = np.array([float(v) for v in labels])
    except ValueError:
        return np.array(labels)
    if np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values


def _guess_task(y: np.ndarray) -> str:
    """Regression for non-integer numbers, classification for labels and small integer sets."""
    if np.issubdtype(y.dtype, np.floating) and not np.all(y == np.round(y)):
        return "regression"
    if np.issubdtype(y.dtype, np.number) and np.unique(y).size > 20:
        return "regression"
    return "classification"


# ---------------------------------------------------------------------------- splitting
@dataclass
class Split:
    """Train, validation and test parts of a dataset."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> tuple[int, int, int]:
        return len(self.y_train), len(self.y_val), len(self.y_test)


def split(dataset: Dataset, *, val_size: float = 0.15, test_size: float = 0.15, seed: int = 0,
          stratify: bool | None = None) -> Split:
    """Seeded train/validation/test split, stratified by class for classification.

    ``val_size`` and ``test_size`` are fractions of the whole dataset; either
    may be 0.
    """
    from sklearn.model_selection import train_test_split

    for nm, frac in (("val_size", val_size), ("test_size", test_size)):
        if not 0.0 <= frac < 1.0:
            raise InvalidInputError(f"{nm} must be in [0, 1), got {frac}")
    if val_size + test_size >= 1.0:
        raise InvalidInputError(f"val_size + test_size must be < 1, got {val_size + test_size}")
    if stratify is None:
        stratify = dataset.task == "classification"
    X, y = dataset.X, dataset.y
    empty_X, empty_y = X[:0], y[:0]

    def cut(X, y, frac, rng_seed):
        if frac == 0:
            return X, empty_X, y, empty_y
        try:
            return train_test_split(X, y, test_size=frac, random_state=rng_seed,
                                    stratify=y if stratify else None)
        except ValueError as exc:  # e.g. a class with a single sample cannot be stratified
            raise InvalidInputError(f"cannot split dataset {dataset.name!r}: {exc}") from None

    X_rest, X_test, y_rest, y_test = cut(X, y, test_size, seed)
    X_train, X_val, y_train, y_val = cut(X_rest, y_rest, val_size / (1.0 - test_size), seed + 1)
    return Split(X_train, y_train, X_val, y_val, X_test, y_test)
