"""Turning prediction inputs (DataFrames, arrays, CSV files) into feature matrices.

Every error names the problem and where it is: the column (by name when the
model knows its feature names) and the row. Rows of DataFrames and arrays are
counted from 0, as they are indexed; rows of CSV files from 1 with the header as
row 1, as in :func:`bpexp.load_dataset` (the number an editor shows). Rows a
server was sent are numbered as in a CSV file too, whatever the request's
format (:func:`served_rows_problem`), so a served message and ``bpexp predict`` on
the same rows name the same row.

Only NumPy (and pandas for DataFrames) are needed: the MLflow pyfunc wrapper
uses :func:`features_from_frame` inside ``mlflow models serve``. Files are read
by :func:`bpexp.data.files.read_table`, the reader training uses.
"""

from __future__ import annotations

import re

import numpy as np

from bpexp.errors import InvalidInputError

# Appended to a served message that names a row of a request sent as JSON (no line numbers of its own).
SERVED_ROW_NOTE = "rows are counted as in a CSV file: the first data row is row 2"


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
                        what: str = "input", row_numbers=None) -> np.ndarray:
    """Validate a DataFrame or array of raw features; return float64 ``(n, n_inputs)``.

    ``row_numbers`` gives the row number to report for each row (a file's own);
    default the 0-based position.

    Raises
    ------
    InvalidInputError
        Wrong columns, a non-numeric value, NaN or inf: the message names the
        column and the row.
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
    rows = np.arange(data.shape[0]) if row_numbers is None else np.asarray(row_numbers)
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
                r = int(np.flatnonzero(bad.to_numpy())[0])
                raise InvalidInputError(f"{what} row {rows[r]}, column {name!r}: {col.iloc[r]!r} is not a number")
            col = values
        X[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
    _check_finite(X, [data.columns[p] for p in order], what, rows)
    return X


def _check_finite(X: np.ndarray, names: list, what: str, rows: np.ndarray) -> None:
    if np.isfinite(X).all():
        return
    r, j = np.argwhere(~np.isfinite(X))[0]
    value = X[r, j]
    kind = "a missing value (empty or NaN)" if np.isnan(value) else f"{value} (infinite)"
    raise InvalidInputError(f"{what} row {rows[r]}, column {names[j]!r}: {kind}; every feature must be a finite number")


def read_input_table(path):
    """A CSV or Parquet file of rows to predict, read as training files are (UTF-8 with or without BOM).

    The DataFrame's index holds each row's number in the file (header = row 1).
    """
    from bpexp.data.files import read_table

    return read_table(path, what=f"input file {path}")


def read_csv_features(path, n_inputs: int, feature_names: list[str] | None = None) -> np.ndarray:
    """Read the features of a CSV file with a header row; return float64 ``(n, n_inputs)``.

    Columns are matched by name when ``feature_names`` is given, else by
    position. Blank lines are skipped but still counted, so row numbers in
    messages match the file.

    Raises
    ------
    InvalidInputError
        Missing file, no header or no rows, wrong columns, an empty or non-numeric
        cell, NaN or inf.
    """
    frame = read_input_table(path)
    return features_from_frame(frame, n_inputs, feature_names, what=str(path), row_numbers=frame.index.to_numpy())


def read_table_rows(path, model, unknown: dict | None = None):
    """Rows of a file for a table model: the raw DataFrame, checked (row numbers as in the file)."""
    frame = read_input_table(path)
    model.check_X(frame, str(path), row_numbers=frame.index.to_numpy(), unknown=unknown)
    return frame


def served_rows_problem(model, frame, feature_names: list[str] | None = None, *, what: str = "request",
                        row_numbers=None) -> str | None:
    """The first problem bpexp finds in rows a server was sent, as one line; None if the rows are fine.

    Parameters
    ----------
    model : MLP
    frame : pandas.DataFrame or array
        The rows as sent (raw values, before any schema cast).
    feature_names : list of str, optional
        The model's input columns (its signature); columns not among them are
        dropped first, as MLflow's schema enforcement drops them.
    what : str
        How the message names the rows ("request", "CSV body").
    row_numbers : sequence of int, optional
        Each row's number: a CSV body's own line numbers. Default: counted as in
        a CSV file (the first row is row 2), and the message says so.
    """
    import pandas as pd

    n = len(frame)
    note = row_numbers is None
    rows = np.arange(2, n + 2) if note else np.asarray(row_numbers)
    if isinstance(frame, pd.DataFrame) and all(isinstance(c, (int, np.integer)) for c in frame.columns):
        frame = frame.to_numpy()  # bare rows (no column names): columns are taken in order
    elif feature_names and isinstance(frame, pd.DataFrame):
        frame = frame[[c for c in frame.columns if str(c) in feature_names]]
    try:
        if model.encoder is not None:
            model.check_X(frame, what, row_numbers=rows)
        else:
            features_from_frame(frame, model.n_inputs, feature_names, what, row_numbers=rows)
    except InvalidInputError as exc:
        message = " ".join(str(exc).split())
        if note and re.search(rf"\b{re.escape(what)} row \d+", message):
            message = f"{message} ({SERVED_ROW_NOTE})"
        return message
    return None
