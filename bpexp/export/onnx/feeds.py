"""What to pass to ``InferenceSession.run`` for a bpexp graph (NumPy only: no onnx import)."""

from __future__ import annotations

import numpy as np

from bpexp.export.onnx.graph import INPUT_NAME

MISSING_STRING = ""  # kept equal to bpexp.export.onnx.tabular.MISSING_STRING (a test checks it)


def onnx_inputs(model, table, what: str = "input") -> dict[str, np.ndarray]:
    """The onnxruntime input feed for ``table``: ``{input name: array}``.

    Parameters
    ----------
    model : MLP
        The exported model (or the model loaded back with :func:`bpexp.load_model`).
    table : DataFrame, dict of columns or array
        Raw rows as :meth:`MLP.predict` takes them. A table model's columns are looked
        up by name; an optional column that is absent counts as missing everywhere.
    what : str
        How error messages name ``table``.

    Returns
    -------
    dict
        For a plain model ``{"input": X}`` in the model's dtype. For a table model one
        ``(N, 1)`` array per column: float64 with NaN for a missing number; for a
        categorical column an object array of strings, the category keys
        (``"True"``, ``"3"``, ``"Dream"``) with ``""`` for a missing value.

    Raises
    ------
    InvalidInputError
        What :meth:`MLP.predict` would refuse (the rows are validated the same way).

    Notes
    -----
    A raw empty string in a categorical column becomes ``""``, which the graph reads as
    missing; :meth:`MLP.predict` reads it as a category never seen in training. The two
    differ only where the column has a missing bucket.
    """
    encoded = model.check_X(table, what)  # the same validation, messages and row numbers as predict
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        return {INPUT_NAME: encoded}
    from bpexp.nn.tabular import CategoricalColumn

    present = column_names(table)
    n = len(encoded)
    feeds = {}
    for col in encoder.columns:
        raw = table[col.name] if col.name in present else None
        if isinstance(col, CategoricalColumn):
            keys = np.full(n, MISSING_STRING, dtype=object) if raw is None else category_strings(raw)
            feeds[col.name] = keys.reshape(n, 1)
        else:
            feeds[col.name] = float64_column(raw, n).reshape(n, 1)
    return feeds


def category_strings(raw) -> np.ndarray:
    """Category keys (:func:`~bpexp.nn.tabular.category_key`) as an object array, ``""`` where missing.

    Whole-array conversions where the dtype allows (a pandas categorical maps its few
    categories); per value otherwise, with strings, the common case, taken as they are.
    """
    from bpexp.nn.tabular import category_key

    cat = getattr(raw, "cat", None)
    if cat is not None:
        keys = [category_key(c) for c in cat.categories]
        lookup = np.array([MISSING_STRING if k is None else k for k in keys] + [MISSING_STRING], dtype=object)
        return lookup[np.asarray(cat.codes)]  # code -1 (missing) picks the trailing ""
    arr = np.asarray(raw) if hasattr(raw, "dtype") else np.asarray(raw, dtype=object)
    arr = arr.reshape(-1)
    if arr.dtype.kind == "b":
        return np.where(arr, "True", "False").astype(object)
    if arr.dtype.kind in "iuU":
        return arr.astype(str).astype(object)
    out = [v if type(v) is str else category_key(v) for v in arr.astype(object)]
    return np.array([MISSING_STRING if k is None else k for k in out], dtype=object)


def column_names(table) -> set[str]:
    if hasattr(table, "columns"):  # a DataFrame
        return {str(c) for c in table.columns}
    if isinstance(table, np.ndarray):  # a structured array
        return set(table.dtype.names or ())
    return {str(k) for k in table}  # a dict of columns


def float64_column(raw, n: int) -> np.ndarray:
    """A numeric column as float64, NaN where missing (the values were validated by check_X)."""
    if raw is None:
        return np.full(n, np.nan)
    to_numpy = getattr(raw, "to_numpy", None)
    if to_numpy is not None:
        try:
            return np.array(to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        except (TypeError, ValueError):
            pass
    arr = np.asarray(raw)
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64).reshape(-1)
    values = arr.astype(object).reshape(-1)
    out = np.empty(values.size)
    for i, v in enumerate(values):
        blank = v is None or (isinstance(v, str) and not v.strip()) or v.__class__.__name__ in ("NAType", "NaTType")
        out[i] = np.nan if blank else float(v)
    return out
