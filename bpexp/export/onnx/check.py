"""``check_onnx``: run an exported graph in onnxruntime and compare it with the NumPy model.

A table model is checked on more than its input example: rows with a category
never seen in training and rows with missing values are added to it (see
:func:`check_rows`), and the encoded feature matrix inside the graph is compared
column block by column block with :meth:`TabularEncoder.transform`, so a
difference names the input column it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpexp.export.errors import OnnxCheckError
from bpexp.export.onnx.convert import class_constant
from bpexp.export.onnx.feeds import column_names, float64_column, onnx_inputs
from bpexp.export.onnx.graph import INPUT_NAME, ONNX_ATOL

UNSEEN = "<unseen by bpexp>"  # a category no training split has (made unique per column anyway)


def reference_outputs(model, X) -> np.ndarray:
    """What the ONNX graph's first output must reproduce: probabilities or predicted values (2-D)."""
    if model.is_classifier:
        return model.predict_proba(X)
    out = model.predict(X)
    return out.reshape(len(out), -1)


@dataclass
class OnnxCheck:
    """Result of :func:`check_onnx`.

    Attributes
    ----------
    max_abs_diff : float
        Largest absolute difference between onnxruntime's and NumPy's outputs.
    max_scaled_diff : float
        Largest ``|diff| / max(1, |numpy value|)``: the quantity held to ``atol``.
    n_rows : int
        Rows compared (for a table model: the example rows plus ``n_edge_rows``).
    labels_agree : float or None
        Fraction of rows whose ``label`` output equals :meth:`MLP.predict` (classification).
    n_edge_rows : int
        Rows added to a table model's example: unseen categories, missing values.
    """

    max_abs_diff: float
    max_scaled_diff: float
    n_rows: int
    labels_agree: float | None = None
    n_edge_rows: int = 0


def _ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise OnnxCheckError("checking the ONNX model needs onnxruntime: pip install 'bpexp[onnx]'") from None
    return ort


def check_onnx(path: str | Path, model, X, *, atol: float = ONNX_ATOL) -> OnnxCheck:
    """Run ``path`` in onnxruntime on ``X`` and compare with the NumPy model.

    Probabilities (and any output of magnitude up to 1) must agree to ``atol``
    absolutely. Larger regression values are compared relative to their size:
    float32 cannot resolve 300 to better than 3e-5, so no float32 graph could meet
    an absolute 1e-5 there, whatever its quality.

    Parameters
    ----------
    path : path
        The saved graph.
    model : MLP
    X : array or table
        The input example: a feature matrix, or for a table model raw rows (a
        DataFrame with strings, None and NaN as users send them).
    atol : float

    Raises
    ------
    OnnxCheckError
        onnxruntime is missing or fails, the shapes differ, or the difference exceeds
        ``atol``; for a table model, the encoded features of a column differ (named).
    """
    ort = _ort()
    if getattr(model, "encoder", None) is not None:
        return _check_table(ort, path, model, X, atol)
    X = model.check_X(X, "the input example")
    expected = reference_outputs(model, X).astype(np.float64)
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {INPUT_NAME: X})
    except Exception as exc:  # noqa: BLE001 - any runtime failure means the graph is unusable
        raise OnnxCheckError(f"onnxruntime cannot run the exported graph {path}: {exc}") from None
    check = _compare(got, expected, atol, f"on {len(X)} example rows")
    if model.task == "classification" and len(got) > 1:
        check.labels_agree = float(np.mean(got[1] == class_constant(model.predict(X))))
    return check


def _compare(got: list, expected: np.ndarray, atol: float, rows: str) -> OnnxCheck:
    if got[0].shape != expected.shape:
        raise OnnxCheckError(f"ONNX output has shape {got[0].shape}, the NumPy model gives {expected.shape}")
    diff = np.abs(got[0].astype(np.float64) - expected)
    scaled = diff / np.maximum(1.0, np.abs(expected))
    check = OnnxCheck(float(diff.max()), float(scaled.max()), len(expected))
    if not check.max_scaled_diff <= atol:  # written this way round so NaN fails too
        raise OnnxCheckError(
            f"the ONNX model does not reproduce the NumPy model: max abs difference {check.max_abs_diff:.3g} "
            f"(scaled {check.max_scaled_diff:.3g}) > {atol:g} {rows}"
        )
    return check


def _check_table(ort, path, model, X, atol: float) -> OnnxCheck:
    import onnx

    model.check_X(X, "the input example")  # a bad example is named as such, not as the check rows
    rows, n_edge = check_rows(model.encoder, X)
    features = model.check_X(rows, "the ONNX check rows")
    expected = reference_outputs(model, rows).astype(np.float64)
    feeds = onnx_inputs(model, rows, "the ONNX check rows")
    try:
        proto = onnx.load(str(path))
        features_name = _expose_features(proto)
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        got = session.run(None, feeds)
    except Exception as exc:  # noqa: BLE001 - any runtime failure means the graph is unusable
        raise OnnxCheckError(f"onnxruntime cannot run the exported graph {path}: {exc}") from None
    names = [o.name for o in session.get_outputs()]
    _compare_features(got[names.index(features_name)], features, model.encoder, rows, atol, len(features) - n_edge)
    got = [got[i] for i, n in enumerate(names) if n != features_name]
    n_example = len(expected) - n_edge
    check = _compare(got, expected, atol, f"on {len(expected)} rows ({n_example} example rows and {n_edge} with "
                                          "unseen categories and missing values)")
    check.n_edge_rows = n_edge
    if model.task == "classification" and len(got) > 1:
        check.labels_agree = float(np.mean(got[1] == class_constant(model.predict(rows))))
    return check


def _expose_features(proto) -> str:
    """Make the encoded feature matrix (the first MatMul's input) a graph output too; return its name."""
    from onnx import helper

    name = next(n.input[0] for n in proto.graph.node if n.op_type == "MatMul")
    if name not in {o.name for o in proto.graph.output}:
        proto.graph.output.append(helper.make_empty_tensor_value_info(name))
    return name


def _compare_features(got, expected: np.ndarray, encoder, rows: dict, atol: float, n_example: int) -> None:
    """Each input column's block of the graph's feature matrix against the NumPy encoder's; names the column."""
    if got.shape != expected.shape:
        raise OnnxCheckError(f"the ONNX graph encodes the rows into shape {got.shape}, the NumPy encoder into "
                             f"{expected.shape}")
    start = 0
    for col in encoder.columns:
        block = slice(start, start + col.width)
        start += col.width
        diff = np.abs(got[:, block].astype(np.float64) - expected[:, block])
        bad = ~(diff <= atol)  # NaN counts as a difference
        if bad.any():
            r = int(np.flatnonzero(bad.any(axis=1))[0])
            row = f"example row {r}" if r < n_example else "an added check row"
            raise OnnxCheckError(
                f"the ONNX graph's preprocessing of input column {col.name!r} differs from the NumPy encoder: "
                f"{row} (value {rows[col.name][r]!r}) is encoded as {got[r, block].tolist()} instead of "
                f"{expected[r, block].tolist()} ({', '.join(col.output_names())})")


def check_rows(encoder, X) -> tuple[dict, int]:
    """The example rows plus edge rows, as a dict of raw columns; and how many edge rows there are.

    Edge rows start from the first example row and change one column each: a category
    never seen in training, a missing category, a missing number (where the column
    allows it); then one row with every such column missing, and one with every
    categorical column unseen.
    """
    from bpexp.nn.tabular import CategoricalColumn

    n = len(encoder.transform(X, np.float64, what="the input example"))
    base = {c.name: _raw_column(X, c, n) for c in encoder.columns}
    changes = []
    unseen = {c.name: _unseen(c) for c in encoder.columns if isinstance(c, CategoricalColumn)}
    missing = {c.name: (None if isinstance(c, CategoricalColumn) else np.nan) for c in encoder.columns
               if isinstance(c, CategoricalColumn) or c.allow_missing}
    changes += [{name: value} for name, value in unseen.items()]
    changes += [{name: value} for name, value in missing.items()]
    changes += [d for d in (missing, unseen) if len(d) > 1]
    rows = {}
    for col in encoder.columns:
        extra = [change.get(col.name, base[col.name][0]) for change in changes]
        rows[col.name] = np.concatenate([base[col.name], np.array(extra, dtype=base[col.name].dtype)])
    return rows, len(changes)


def _raw_column(X, col, n: int) -> np.ndarray:
    """A column of the example as a 1-D array: float64 for numbers, objects (None for missing) otherwise."""
    from bpexp.nn.tabular import CategoricalColumn, category_key

    raw = X[col.name] if col.name in column_names(X) else None  # an absent optional column: missing throughout
    if not isinstance(col, CategoricalColumn):
        return float64_column(raw, n)
    if raw is None:
        return np.full(n, None, dtype=object)
    values = np.asarray(raw, dtype=object).reshape(-1)
    return np.array([None if category_key(v) is None else v for v in values], dtype=object)


def _unseen(col) -> str:
    value = UNSEEN
    while value in col.categories:
        value += "_"
    return value
