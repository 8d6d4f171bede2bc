"""A dataset (features, targets, what they mean) and its seeded train/validation/test split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from bpexp.errors import InvalidInputError


@dataclass
class Dataset:
    """Features, targets and what they mean.

    Attributes
    ----------
    name : str
    X : ndarray (n_samples, n_features) or pandas.DataFrame
        A float array for all-numeric data without missing values (as it always
        was); a DataFrame of the raw feature columns for a table with categorical
        columns or missing values. The DataFrame's index is each row's number in
        its file (header = row 1), so messages can name it.
    y : ndarray (n_samples,)
    task : {"classification", "regression"}
    feature_names : list of str
    target_name : str
    source : str
        Where it came from (``"builtin"``, a file path, ``"DataFrame"``).
    roles : ColumnRoles, optional
        For tables: which columns are numeric, categorical or dropped.
    """

    name: str
    X: object
    y: np.ndarray
    task: str
    feature_names: list[str] = field(default_factory=list)
    target_name: str = "target"
    source: str = "builtin"
    roles: object = None
    # The last digest and the (X, y) objects it is of: every run of a sweep tags it (0.2 s on 10^6 rows).
    _digest: tuple = field(default=(None, None, ""), init=False, repr=False, compare=False)

    @property
    def is_table(self) -> bool:
        """True when ``X`` is a DataFrame of raw columns that needs a fitted encoder."""
        return hasattr(self.X, "columns")

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        """Raw input columns (before one-hot encoding)."""
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
        """SHA-256 of the data (shapes, dtypes and values), to tell datasets apart.

        Remembered while ``X`` and ``y`` are the same objects (datasets are not changed in place).
        """
        X, y, known = self._digest
        if X is self.X and y is self.y:
            return known
        self._digest = (self.X, self.y, self._compute_digest())
        return self._digest[2]

    def _compute_digest(self) -> str:
        h = hashlib.sha256()
        if self.is_table:
            import pandas as pd

            h.update(repr(list(zip(self.X.columns, map(str, self.X.dtypes)))).encode())
            h.update(pd.util.hash_pandas_object(self.X, index=False).to_numpy().tobytes())
            arrays = (self.y,)
        else:
            arrays = (self.X, self.y)
        for arr in arrays:
            arr = np.ascontiguousarray(arr)
            h.update(f"{arr.shape}{arr.dtype.str}".encode())
            h.update(arr.tobytes() if arr.dtype != object else repr(arr.tolist()).encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        extra = f", classes={self.classes.size}" if self.task == "classification" else ""
        return (f"Dataset({self.name!r}, n_samples={self.n_samples}, n_features={self.n_features}, "
                f"task={self.task!r}{extra})")


@dataclass
class Split:
    """Train, validation and test parts of a dataset (arrays, or DataFrames for tables)."""

    X_train: object
    y_train: np.ndarray
    X_val: object
    y_val: np.ndarray
    X_test: object
    y_test: np.ndarray

    def sizes(self) -> tuple[int, int, int]:
        return len(self.y_train), len(self.y_val), len(self.y_test)


def split(dataset: Dataset, *, val_size: float = 0.15, test_size: float = 0.15, seed: int = 0,
          stratify: bool | None = None) -> Split:
    """Seeded train/validation/test split, stratified by class for classification.

    ``val_size`` and ``test_size`` are fractions of the whole dataset; either
    may be 0. DataFrame rows keep their index (their row numbers in the file).
    """
    from bpexp.data.splitting import take_rows, train_test_positions

    for nm, frac in (("val_size", val_size), ("test_size", test_size)):
        if not 0.0 <= frac < 1.0:
            raise InvalidInputError(f"{nm} must be in [0, 1), got {frac}")
    if val_size + test_size >= 1.0:
        raise InvalidInputError(f"val_size + test_size must be < 1, got {val_size + test_size}")
    if stratify is None:
        stratify = dataset.task == "classification"
    # Split row positions, then take each part once: slicing a wide DataFrame twice costs seconds on 10^6 rows.
    # The rows are those scikit-learn's train_test_split draws (bpexp.data.splitting).
    positions, y = np.arange(dataset.n_samples), dataset.y

    def cut(idx, frac, rng_seed):
        if frac == 0:
            return idx, idx[:0]
        try:
            return train_test_positions(idx, frac, rng_seed, y[idx] if stratify else None)
        except ValueError as exc:  # e.g. a class with a single sample cannot be stratified
            raise InvalidInputError(f"cannot split dataset {dataset.name!r}: {exc}") from None

    rest, test = cut(positions, test_size, seed)
    train, val = cut(rest, val_size / (1.0 - test_size), seed + 1)
    take = (lambda idx: take_rows(dataset.X, idx)) if dataset.is_table else (lambda idx: dataset.X[idx])
    return Split(take(train), y[train], take(val), y[val], take(test), y[test])
