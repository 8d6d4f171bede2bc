"""``load_dataset``: a built-in name, a file (CSV, Parquet, NPZ) or a pandas DataFrame, as a :class:`Dataset`.

Tables go through the same steps whatever they came from: the target is
checked (no missing values unless asked to drop them, more than one value),
column roles are inferred or taken from the caller, numeric columns are parsed
(a value that is not a number names its row and column), and the result is a
plain float array when every feature is a number and none is missing (exactly
as before tables were supported), else a DataFrame of typed raw columns for an
encoder to learn from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bpexp.data.builtin import BUILTIN_DATASETS, BUNDLED, SYNTHETIC, load_builtin
from bpexp.data.dataset import Dataset
from bpexp.data.files import TABLE_SUFFIXES, check_column_names, read_npz, read_table
from bpexp.data.splitting import label_counts
from bpexp.data.tabular import check_target, columns_with_gaps, infer_roles, table_features
from bpexp.errors import InvalidInputError


def load_dataset(name, *, seed: int = 0, n_samples: int | None = None, noise: float | None = None,
                 target: str | None = None, task: str | None = None, numeric=(), categorical=(), drop=(),
                 encoding: str | None = None, drop_missing_target: bool = False) -> Dataset:
    """Load a built-in dataset, a ``.csv`` / ``.parquet`` / ``.npz`` file, or a pandas DataFrame.

    Parameters
    ----------
    name : str, path or pandas.DataFrame
        One of :data:`BUILTIN_DATASETS`, a path, or a DataFrame holding the target column.
    seed, n_samples, noise
        For the synthetic sets (xor, moons, circles, spirals) only.
    target : str
        The label column of a table (required for CSV, Parquet and DataFrames).
    task : {"classification", "regression"}, optional
        Overrides the guess made from the target values.
    numeric, categorical, drop : list of str
        Column roles that override the inferred ones (integer columns are numeric
        unless named in ``categorical``; ``drop`` for id or free-text columns).
    encoding : str, optional
        Of a CSV file: default UTF-8 with or without a byte-order mark.
    drop_missing_target : bool
        Drop rows whose target is missing instead of refusing the table.

    Raises
    ------
    InvalidInputError
        Unknown names, unreadable files, and every problem with the table's contents,
        naming the column and the row (a file's own row number, header = row 1).
    """
    table_options = {"target": target, "task": task, "numeric": numeric, "categorical": categorical,
                     "drop": drop, "drop_missing_target": drop_missing_target}
    if hasattr(name, "columns"):  # a pandas DataFrame
        check_column_names([str(c) for c in name.columns], "the DataFrame")
        frame = name.rename(columns=str)
        return dataset_from_frame(frame, "dataframe", "DataFrame", what="the DataFrame", **table_options)
    name = str(name)
    if name in SYNTHETIC or name in BUNDLED:
        return load_builtin(name, seed=seed, n_samples=n_samples, noise=noise)
    path = Path(name)
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        if not target:
            raise InvalidInputError(f"dataset {name}: name the target column (target=...)")
        frame = read_table(path, encoding=encoding)
        return dataset_from_frame(frame, path.stem, str(path), what=str(path), **table_options)
    if suffix == ".npz":
        X, y = read_npz(path)
        return Dataset(path.stem, X, y, task or guess_task(y), [f"x{i}" for i in range(X.shape[1])], "y", str(path))
    raise InvalidInputError(
        f"unknown dataset {name!r}; expected one of {BUILTIN_DATASETS} or a path to a "
        f"{', '.join(TABLE_SUFFIXES)} or .npz file"
    )


def dataset_from_frame(frame, name: str, source: str, *, what: str, target: str | None, task: str | None,
                       numeric=(), categorical=(), drop=(), drop_missing_target: bool = False) -> Dataset:
    """A :class:`Dataset` from a DataFrame of raw columns including ``target``."""
    if not target:
        raise InvalidInputError(f"{what}: name the target column (target=...)")
    frame = check_target(frame, target, what, drop_missing=drop_missing_target)
    roles = infer_roles(frame, target=target, numeric=numeric, categorical=categorical, drop=drop)
    features = table_features(frame, roles, what)
    y = column_labels(frame[target])
    if not roles.categorical and not columns_with_gaps(features):
        X = features.to_numpy(dtype=np.float64)  # every feature a number, none missing: the plain path
        return Dataset(name, X, y, task or guess_task(y), list(features.columns), target, source)
    return Dataset(name, features, y, task or guess_task(y), list(features.columns), target, source, roles)


def column_labels(col) -> np.ndarray:
    """A target column's labels (see :func:`labels`), without a Python loop over text columns."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        return labels(col.to_numpy())
    numbers = pd.to_numeric(col, errors="coerce")
    if numbers.notna().all():  # "1", "2", ... written as text: numbers after all
        return labels(numbers.to_numpy())
    return col.astype(str).to_numpy(dtype=str)


def labels(values: np.ndarray) -> np.ndarray:
    """Target values as ints (integral numbers), floats, or strings; never an object array."""
    if values.dtype.kind in "biuf":
        if values.dtype.kind == "f" and np.all(values == np.round(values)):
            return values.astype(np.int64)
        return values
    as_text = [str(v) for v in values.tolist()]
    try:
        numbers = np.array([float(v) for v in as_text])
    except ValueError:
        return np.array(as_text)
    return numbers.astype(np.int64) if np.all(numbers == np.round(numbers)) else numbers


def guess_task(y: np.ndarray) -> str:
    """Regression for non-integer numbers, classification for labels and small integer sets."""
    if np.issubdtype(y.dtype, np.floating) and not np.all(y == np.round(y)):
        return "regression"
    if np.issubdtype(y.dtype, np.number) and _n_distinct(y) > 20:
        return "regression"
    return "classification"


def _n_distinct(y: np.ndarray) -> int:
    """``np.unique(y).size``; by counting for small non-negative integers (class labels), 10x cheaper."""
    counts = label_counts(y)
    return int(np.count_nonzero(counts)) if counts is not None else int(np.unique(y).size)
