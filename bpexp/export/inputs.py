"""Turning prediction inputs (DataFrames, arrays, CSV files) into feature matrices.

Every error names the problem and where it is: the column (by name when the
model knows its feature names) and the row. Rows of DataFrames and arrays are
counted from 0, as they are indexed; rows of CSV files from 1 with the header as
row 1, as in :func:`bpexp.data.load_csv` (the number an editor shows).

Only NumPy (and pandas for DataFrames) are needed: the MLflow pyfunc wrapper
uses this module inside ``mlflow models serve``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from bpexp.errors import InvalidInputError


def match_columns(columns: list[str], n_inputs: int, feature_names: list[str] | None, what: str) -> list[int]:
    """Positions of the model's features among ``columns``.

    With ``feature_names`` the columns are matched by name (any order, each
    exactly once); without, there must be exactly ``n_inputs`` columns, taken in order.

    Raises
    ------
    InvalidInputError
        Missing, unexpected or repeated columns, or the wrong number of them.
    """
    columns = [str(c) for c in columns]
    if feature_names:
        missing = [n for n in feature_names if n not in columns]
        extra = [c for c in columns if c not in feature_names]
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if missing or extra or repeated:
            parts = []
            if missing:
                parts.append(f"missing column(s) {_short_list(missing)}")
            if extra:
                parts.append(f"unexpected column(s) {_short_list(extra)}")
            if repeated:
                parts.append(f"repeated column(s) {_short_list(repeated)}")
            raise InvalidInputError(
                f"{what} has {len(columns)} columns but the model expects its {len(feature_names)} features "
                f"{_short_list(feature_names)}: {'; '.join(parts)}"
            )
        return [columns.index(n) for n in feature_names]
    if len(columns) != n_inputs:
        raise InvalidInputError(f"{what} has {len(columns)} columns, the model expects {n_inputs}")
    return list(range(n_inputs))


def _short_list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f"[{shown}{more}]"


def features_from_frame(data, n_inputs: int, feature_names: list[str] | None = None,
                        what: str = "input") -> np.ndarray:
    """Validate a DataFrame or array of raw features; return float64 ``(n, n_inputs)``.

    Raises
    ------
    InvalidInputError
        Wrong columns, a non-numeric value, NaN or inf: the message names the
        column and the (0-based) row.
    """
    import pandas as pd

    if isinstance(data, pd.Series):
        data = data.to_frame().T
    if not isinstance(data, pd.DataFrame):
        # A bare array has no column names: its columns are taken in order.
        arr = np.asarray(data)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise InvalidInputError(f"{what} must be a table of rows, got an array of shape {arr.shape}")
        data = pd.DataFrame(arr)  # integer column labels: messages then say "column 3"
        feature_names = None
    if data.shape[0] == 0:
        raise InvalidInputError(f"{what} has no rows")
    order = match_columns(list(data.columns), n_inputs, feature_names, what)
    X = np.empty((data.shape[0], n_inputs), dtype=np.float64)
    for j, pos in enumerate(order):
        col = data.iloc[:, pos]
        name = data.columns[pos]
        if isinstance(col.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype)
        ):
            values = pd.to_numeric(col, errors="coerce")
            bad = values.isna() & col.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise InvalidInputError(f"{what} row {row}, column {name!r}: {col.iloc[row]!r} is not a number")
            col = values
        X[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
    _check_finite(X, [data.columns[p] for p in order], what, first_row=0)
    return X


def _check_finite(X: np.ndarray, names: list, what: str, first_row: int, rows: list[int] | None = None) -> None:
    if np.isfinite(X).all():
        return
    r, j = np.argwhere(~np.isfinite(X))[0]
    row = rows[r] if rows is not None else first_row + int(r)
    value = X[r, j]
    kind = "a missing value (NaN)" if np.isnan(value) else f"{value} (infinite)"
    raise InvalidInputError(f"{what} row {row}, column {names[j]!r}: {kind}; every feature must be a finite number")


def read_csv_features(path, n_inputs: int, feature_names: list[str] | None = None) -> np.ndarray:
    """Read the features of a CSV file with a header row; return float64 ``(n, n_inputs)``.

    Columns are matched by name when ``feature_names`` is given, else by
    position. Blank lines are skipped but still counted, so row numbers in
    messages match the file.

    Raises
    ------
    InvalidInputError
        Missing file, no header or no rows, wrong columns, a row with the wrong
        number of fields, an empty or non-numeric cell, NaN or inf.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"input CSV {path} does not exist")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # utf-8-sig: drop a spreadsheet's BOM
            rows = list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInputError(f"{path} is not a readable UTF-8 CSV file: {exc}") from None
    numbered = [(r, row) for r, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if not numbered:
        raise InvalidInputError(f"input CSV {path} is empty")
    header = [h.strip() for h in numbered[0][1]]
    body = numbered[1:]
    if not body:
        raise InvalidInputError(f"input CSV {path} has a header row but no data rows")
    order = match_columns(header, n_inputs, feature_names, f"{path}")
    names = [header[p] for p in order]
    X = np.empty((len(body), n_inputs), dtype=np.float64)
    for k, (r, row) in enumerate(body):
        if len(row) != len(header):
            raise InvalidInputError(f"{path} row {r} has {len(row)} fields, the header has {len(header)}")
        for j, pos in enumerate(order):
            cell = row[pos].strip()
            try:
                X[k, j] = float(cell)
            except ValueError:
                problem = "is empty (a missing value)" if not cell else f"{cell!r} is not a number"
                raise InvalidInputError(f"{path} row {r}, column {names[j]!r}: {problem}") from None
    _check_finite(X, names, str(path), first_row=0, rows=[r for r, _ in body])
    return X
