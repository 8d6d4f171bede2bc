"""What a model learned about a raw table, and how it turns rows into its input matrix.

A :class:`TabularEncoder` holds only what was *learned* from the training split
(medians, means, scales, category lists) as plain numbers and strings, so it is
saved as JSON inside ``model.json`` and needs nothing but NumPy to apply: the
learning itself (with pandas) lives in :mod:`bpexp.data.tabular`.

Each input column becomes one or more output columns, in input order:

* numeric: ``(x - mean) / scale`` after filling missing values with the training
  median, plus a 0/1 ``name=missing`` indicator column when missing values are
  allowed for it (the training data had some);
* categorical: one-hot over the training categories, then ``name=missing`` when
  the training split had missing values, then ``name=other`` when rare categories
  were pooled. A category never seen in training goes to ``other`` where there is
  one and to all zeros otherwise (as scikit-learn's ``infrequent_if_exist``): it is
  counted, never an error.

The table may be a pandas DataFrame, a dict of columns or a NumPy structured
array: columns are looked up by name (``table[name]``), so this module never
imports pandas.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from bpexp.errors import InvalidInputError
from bpexp.nn.parallel import map_threads, row_ranges, table_threads

NUMERIC, CATEGORICAL = "numeric", "categorical"
_F32_MAX = float(np.finfo(np.float32).max)


def category_key(value) -> str | None:
    """The string a categorical value is matched by; ``None`` for a missing value.

    Integral floats match their integer (an int column read with blanks becomes
    float: ``3.0`` must still be category ``"3"``); booleans are ``"True"``/``"False"``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if math.isfinite(value) and value == int(value):
            return str(int(value))
        return repr(float(value))
    if value.__class__.__name__ in ("NAType", "NaTType"):  # pandas' missing markers, without importing pandas
        return None
    return str(value)


@dataclass
class NumericColumn:
    """A numeric input column: its training median (the fill value of gaps), mean and scale.

    ``median`` is None for a column that allows no missing values: nothing is
    ever filled in there, so it is not computed.
    """

    name: str
    median: float | None
    mean: float
    scale: float
    allow_missing: bool = False
    missing_fraction: float = 0.0
    value_type: str = "float"  # the raw values in training: "float" or "integer" (for the serving signature)

    @property
    def width(self) -> int:
        return 2 if self.allow_missing else 1

    def output_names(self) -> list[str]:
        return [self.name] + ([f"{self.name}=missing"] if self.allow_missing else [])


@dataclass
class CategoricalColumn:
    """A categorical input column: the training categories and the extra buckets."""

    name: str
    categories: list[str]
    has_missing: bool = False
    has_other: bool = False
    value_type: str = "string"  # what the raw values are: "string", "boolean" or "integer"
    counts: list[int] = field(default_factory=list)  # training rows per category (for the model card)
    missing_fraction: float = 0.0

    def __post_init__(self):
        self._lookup = {c: i for i, c in enumerate(self.categories)}

    @property
    def width(self) -> int:
        return len(self.categories) + self.has_missing + self.has_other

    def output_names(self) -> list[str]:
        names = [f"{self.name}={c}" for c in self.categories]
        return names + ([f"{self.name}=missing"] if self.has_missing else []) + \
            ([f"{self.name}=other"] if self.has_other else [])

    def codes(self, values: np.ndarray) -> tuple[np.ndarray, int]:
        """Output offsets (within this column's block) per row, -1 for all zeros; and the unknown count."""
        codes, unknown = self._codes_and_unknown(values)
        return codes, int(unknown.sum())

    def _codes_and_unknown(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`codes`, with a per-row mask of the values counted as unknown."""
        lookup, n_known = self._lookup, len(self.categories)
        missing_code = n_known if self.has_missing else -2
        other_code = n_known + self.has_missing if self.has_other else -1
        # map(dict.get) rather than a generator: the one per-row Python step, at C speed between calls.
        codes = np.fromiter(map(lookup.get, values, itertools.repeat(-3)), dtype=np.intp, count=len(values))
        unknown = np.zeros(len(values), dtype=bool)
        slow = np.flatnonzero(codes == -3)  # not a training category as is: normalize, then decide
        for r in slow:
            key = category_key(values[r])
            if key is None:
                codes[r] = missing_code
            elif key in lookup:
                codes[r] = lookup[key]
            else:
                codes[r] = other_code
                unknown[r] = True
        if missing_code == -2:  # missing never seen in training: treated like an unknown category
            was_missing = codes == -2
            unknown |= was_missing
            codes[was_missing] = other_code
        return codes, unknown


Column = NumericColumn | CategoricalColumn


class TabularEncoder:
    """Raw table rows -> the model's input matrix, from statistics of the training split.

    Parameters
    ----------
    columns : list of NumericColumn or CategoricalColumn
        The input columns, in the order their outputs appear.
    ignored : list of str
        Columns that may appear in the input and are not used (dropped columns,
        the target): they are not reported as unexpected.

    Notes
    -----
    Build one with :func:`bpexp.data.tabular.fit_encoder`; pass it to
    :class:`~bpexp.nn.MLP` as ``encoder=``.
    """

    fitted = True  # an encoder only exists once learned (the MLP asks this of its preprocessing)

    def __init__(self, columns: list[Column], ignored: list[str] | None = None):
        if not columns:
            raise InvalidInputError("a tabular encoder needs at least one input column")
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"repeated input columns in {names}")
        self.columns = list(columns)
        self.ignored = [str(c) for c in (ignored or []) if c not in names]
        self._offsets = np.cumsum([0] + [c.width for c in self.columns])

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def n_features_out(self) -> int:
        """Width of the matrix :meth:`transform` returns (the MLP's input size)."""
        return int(self._offsets[-1])

    @property
    def feature_names_out(self) -> list[str]:
        return [n for c in self.columns for n in c.output_names()]

    def required_columns(self) -> list[str]:
        """Input columns that must be present: those with no missing values in training."""
        return [c.name for c in self.columns if not _column_optional(c)]

    # ------------------------------------------------------------------ transform
    def transform(self, table, dtype=np.float32, *, what: str = "input", row_numbers=None,
                  unknown: dict | None = None) -> np.ndarray:
        """The input matrix for the rows of ``table``.

        Parameters
        ----------
        table : DataFrame, dict of columns or structured array
            Raw rows with the training columns by name (any order; extra columns
            are refused unless they were dropped in training or are the target).
        dtype : numpy dtype
            Of the returned matrix.
        what : str
            How messages name the input (``"input"``, a file path...).
        row_numbers : sequence of int, optional
            The row number messages give for each row (a CSV file's own line
            numbers); default the 0-based position.
        unknown : dict, optional
            Filled with ``{column: count}`` of values outside the model's categories
            (never seen, too rare to keep, or missing where training had no gaps).

        Raises
        ------
        InvalidInputError
            A missing or unexpected column, a value that is not a number in a
            numeric column, a missing value where training had none, inf, or a value
            beyond float32's range; the message names the row and the column.
        """
        present, n_rows = _table_columns(table, what)
        self._check_columns(present, what)
        if n_rows == 0:
            raise InvalidInputError(f"{what} has no rows")
        out = np.zeros((n_rows, self.n_features_out), dtype=dtype)
        inputs = {c.name: table[c.name] if c.name in present else None for c in self.columns}
        counts = _BlockEncoder(self, inputs, n_rows).run(out)
        if counts is not None:
            if unknown is not None:
                for name, count in counts.items():
                    if count:
                        unknown[name] = unknown.get(name, 0) + count
            return out
        out[...] = 0  # a value to check: column by column, naming the first bad row as ever
        for col, start in zip(self.columns, self._offsets):
            raw = inputs[col.name]
            if isinstance(col, NumericColumn):
                self._numeric_into(out, start, col, raw, n_rows, what, row_numbers)
            else:
                count = _categorical_into(out, start, col, raw, n_rows)
                if count and unknown is not None:
                    unknown[col.name] = unknown.get(col.name, 0) + count
        return out

    def _check_columns(self, present: list[str], what: str) -> None:
        missing = [n for n in self.required_columns() if n not in present]
        known = set(self.input_names) | set(self.ignored)
        extra = [c for c in present if c not in known]
        if missing or extra:
            parts = ([f"missing column(s) {_short(missing)}"] if missing else []) + \
                    ([f"unexpected column(s) {_short(extra)}"] if extra else [])
            raise InvalidInputError(f"{what}: {'; '.join(parts)}; the model takes the columns "
                                    f"{_short(self.input_names)}")

    def _numeric_into(self, out, start, col: NumericColumn, raw, n_rows, what, row_numbers) -> None:
        x = np.full(n_rows, np.nan) if raw is None else _as_float64(raw, col.name, what, row_numbers)
        nan = np.isnan(x)
        if nan.any():
            if not col.allow_missing:
                r = int(np.flatnonzero(nan)[0])
                raise InvalidInputError(
                    f"{what} row {_row(r, row_numbers)}, column {col.name!r}: a missing value, and this column "
                    f"had none in training, so the model has no way to fill it")
            x = np.where(nan, col.median, x)
        bad = ~np.isfinite(x) | (np.abs(x) > _F32_MAX) if out.dtype == np.float32 else ~np.isfinite(x)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            kind = "infinite" if np.isinf(x[r]) else "beyond float32's range (±3.4e38)"
            raise InvalidInputError(f"{what} row {_row(r, row_numbers)}, column {col.name!r}: {float(x[r])!r} is "
                                    f"{kind}; every feature must be a finite number")
        x -= col.mean
        x /= col.scale
        out[:, start] = x
        if col.allow_missing:
            out[:, start + 1] = nan

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """Plain JSON-able state (what ``model.json`` stores)."""
        cols = []
        for c in self.columns:
            d = {k: v for k, v in vars(c).items() if not k.startswith("_")}
            cols.append({"kind": NUMERIC if isinstance(c, NumericColumn) else CATEGORICAL, **d})
        return {"columns": cols, "ignored": list(self.ignored)}

    @classmethod
    def from_dict(cls, state: Mapping) -> TabularEncoder:
        """Rebuild from :meth:`to_dict`'s output, checking every field's type.

        Raises
        ------
        InvalidInputError
            A field is missing, unknown or of the wrong type.
        """
        if not isinstance(state, Mapping) or not isinstance(state.get("columns"), list):
            raise InvalidInputError("tabular encoder state must be an object with a 'columns' list")
        columns = [_column_from_dict(c) for c in state["columns"]]
        ignored = state.get("ignored", [])
        if not isinstance(ignored, list) or not all(isinstance(n, str) for n in ignored):
            raise InvalidInputError("tabular encoder 'ignored' must be a list of column names")
        return cls(columns, ignored)

    def schema(self) -> list[dict]:
        """Per input column: role, category count, missing fraction in training (for runs and model cards)."""
        rows = []
        for c in self.columns:
            row = {"column": c.name, "role": NUMERIC if isinstance(c, NumericColumn) else CATEGORICAL,
                   "missing_fraction": round(c.missing_fraction, 6), "outputs": c.width}
            if isinstance(c, CategoricalColumn):
                row |= {"categories": len(c.categories), "other_bucket": c.has_other, "value_type": c.value_type}
            rows.append(row)
        return rows

    def __repr__(self) -> str:
        n_num = sum(isinstance(c, NumericColumn) for c in self.columns)
        return (f"TabularEncoder({n_num} numeric, {len(self.columns) - n_num} categorical columns "
                f"-> {self.n_features_out} features)")


def _column_optional(c: Column) -> bool:
    return c.allow_missing if isinstance(c, NumericColumn) else c.has_missing


def _categorical_into(out, start, col: CategoricalColumn, raw, n_rows) -> int:
    codes, unknown = _categorical_codes(raw, col, n_rows)
    rows = np.flatnonzero(codes >= 0)
    out[rows, start + codes[rows]] = 1
    return unknown


def _categorical_codes(raw, col: CategoricalColumn, n_rows: int) -> tuple[np.ndarray, int]:
    """:meth:`CategoricalColumn.codes` of a raw column; a pandas Categorical decides its few categories only."""
    cat = getattr(raw, "cat", None) if raw is not None else None
    if cat is None:
        values = np.full(n_rows, None, dtype=object) if raw is None else _category_values(raw, col)
        return col.codes(values)
    keyed = np.array([category_key(v) for v in cat.categories] + [None], dtype=object)
    per_category, unknown = col._codes_and_unknown(keyed)
    row_categories = np.asarray(cat.codes)  # -1 (missing) picks the trailing None
    count = int(unknown[row_categories].sum()) if unknown.any() else 0
    return per_category[row_categories], count


#: Rows encoded at a time: a block of the output stays in cache while every column is written into it.
_BLOCK_ROWS = 4096


class _BlockEncoder:
    """The fast path of :meth:`TabularEncoder.transform`: whole-array conversions, then row blocks.

    Numeric columns are imputed, checked and standardized together, a block of
    rows at a time, with the same float64 operations as the column-at-a-time path
    (so the same values). It gives up (``run`` returns None) at the first value the
    checked path must report, and never raises for one. A large table's rows are
    encoded in consecutive ranges on several threads (:mod:`bpexp.nn.parallel`).
    """

    def __init__(self, encoder: TabularEncoder, inputs: dict, n_rows: int):
        self.encoder, self.inputs, self.n_rows = encoder, inputs, n_rows

    def run(self, out: np.ndarray) -> dict[str, int] | None:
        numeric, categorical, counts = [], [], {}
        for col, start in zip(self.encoder.columns, self.encoder._offsets):
            raw = self.inputs[col.name]
            if isinstance(col, NumericColumn):
                x = np.full(self.n_rows, np.nan) if raw is None else _float64_view(raw)
                if x is None:
                    return None
                numeric.append((col, int(start), x))
            else:
                try:
                    codes, counts[col.name] = _categorical_codes(raw, col, self.n_rows)
                except TypeError:  # e.g. unhashable values: the checked path raises in the usual column order
                    return None
                categorical.append((int(start), codes, bool((codes >= 0).all())))
        limit = _F32_MAX if out.dtype == np.float32 else math.inf
        ranges = row_ranges(self.n_rows, table_threads(self.n_rows), _BLOCK_ROWS)
        done = map_threads(lambda span: _encode_rows(out, *span, numeric, categorical, limit), ranges, len(ranges))
        return counts if all(done) else None


def _encode_rows(out: np.ndarray, first: int, stop: int, numeric: list, categorical: list, limit: float) -> bool:
    """Rows ``first:stop`` of ``out``, a block at a time; False (nothing reported) if a value needs checking.

    Each call has its own block buffer, so calls on disjoint row ranges may run on different threads.
    """
    block = _NumericBlock(numeric, min(_BLOCK_ROWS, stop - first)) if numeric else None
    every = np.arange(min(_BLOCK_ROWS, stop - first))
    for r0 in range(first, stop, _BLOCK_ROWS):
        r1 = min(r0 + _BLOCK_ROWS, stop)
        rows = out[r0:r1]
        if block is not None and not block.encode_into(rows, r0, r1, limit):
            return False
        for start, codes, all_set in categorical:
            c = codes[r0:r1]
            if all_set:
                rows[every[:r1 - r0], start + c] = 1
            else:
                hit = np.flatnonzero(c >= 0)
                rows[hit, start + c[hit]] = 1
    return True


class _NumericBlock:
    """The numeric columns of a block of rows, as one (columns, rows) float64 array."""

    def __init__(self, numeric: list, block_rows: int):
        cols = [c for c, _, _ in numeric]
        self.xs = [x for _, _, x in numeric]
        # Columns without a median refuse gaps (encode_into returns before filling any), so 0.0 is never used.
        self.median = np.array([0.0 if c.median is None else c.median for c in cols], dtype=np.float64)[:, None]
        self.mean = np.array([c.mean for c in cols], dtype=np.float64)[:, None]
        self.scale = np.array([c.scale for c in cols], dtype=np.float64)[:, None]
        self.refuse = np.array([not c.allow_missing for c in cols])
        self.allow_rows = np.flatnonzero(~self.refuse)
        # Slices, not fancy indexing: columns adjacent in the output are written as one strided block.
        self.runs = _runs([s for _, s, _ in numeric])
        self.indicator_runs = _runs([s + 1 for c, s, _ in numeric if c.allow_missing])
        self.buf = np.empty((len(cols), block_rows), dtype=np.float64)

    def encode_into(self, rows: np.ndarray, r0: int, r1: int, limit: float) -> bool:
        """Write rows ``r0:r1`` into ``rows``; False (nothing reported) if a value needs the checked path."""
        X = self.buf[:, :r1 - r0]
        for j, x in enumerate(self.xs):
            X[j] = x[r0:r1]
        nan = np.isnan(X)
        gaps = nan.any(axis=1)
        if gaps.any():
            if (gaps & self.refuse).any():
                return False
            np.copyto(X, self.median, where=nan)
        top = max(float(X.max()), -float(X.min()))  # |X|.max() without a temporary; NaN stays NaN
        if not (top <= limit and math.isfinite(top)):  # NaN, inf, or beyond float32
            return False
        X -= self.mean
        X /= self.scale
        for j0, j1, c0 in self.runs:
            rows[:, c0:c0 + j1 - j0] = X[j0:j1].T
        if self.indicator_runs:
            indicators = nan[self.allow_rows]
            for j0, j1, c0 in self.indicator_runs:
                rows[:, c0:c0 + j1 - j0] = indicators[j0:j1].T
        return True


def _runs(positions: list[int]) -> list[tuple[int, int, int]]:
    """``(j0, j1, c0)`` per run of consecutive output columns: items ``j0:j1`` go to columns ``c0:c0 + j1 - j0``."""
    runs: list[tuple[int, int, int]] = []
    for j, c in enumerate(positions):
        if runs and runs[-1][2] + (runs[-1][1] - runs[-1][0]) == c:
            j0, _, c0 = runs[-1]
            runs[-1] = (j0, j + 1, c0)
        else:
            runs.append((j, j + 1, c))
    return runs


def _category_values(raw, col: CategoricalColumn) -> np.ndarray:
    """Raw values as an object array; a pandas Categorical maps its few categories, not every row."""
    cat = getattr(raw, "cat", None)
    if cat is not None:
        cats = np.asarray(cat.categories, dtype=object)
        codes = np.asarray(cat.codes)
        values = np.empty(len(codes), dtype=object)
        keyed = np.array([category_key(v) for v in cats] + [None], dtype=object)
        values[:] = keyed[codes]  # code -1 (missing) picks the trailing None
        return values
    # A plain list keeps its values' own types (NumPy would turn [3, "4", 2.0] into strings).
    arr = np.asarray(raw) if hasattr(raw, "dtype") else np.asarray(raw, dtype=object)
    if arr.dtype.kind == "b":  # whole-array conversions: no per-row normalization needed
        return np.where(arr, "True", "False").astype(object).reshape(-1)
    if arr.dtype.kind in "iuU":
        return arr.astype(str).astype(object).reshape(-1)
    return arr.astype(object, copy=False).reshape(-1)


def _as_float64(raw, name: str, what: str, row_numbers) -> np.ndarray:
    """A numeric column as float64 (missing -> NaN); a value that is not a number names its row."""
    x = _float64_view(raw)
    if x is not None:
        return np.array(x, dtype=np.float64, copy=True)
    values = np.asarray(raw, dtype=object).reshape(-1)
    x = np.empty(values.size)
    for r, v in enumerate(values):
        if category_key(v) is None:
            x[r] = np.nan
            continue
        try:
            if isinstance(v, (bool, np.bool_)):
                raise ValueError
            x[r] = float(v) if not (isinstance(v, str) and not v.strip()) else np.nan
        except (ValueError, TypeError):
            raise InvalidInputError(f"{what} row {_row(r, row_numbers)}, column {name!r}: {v!r} is not a number"
                                    ) from None
    return x


def _float64_view(raw) -> np.ndarray | None:
    """A numeric column as a 1-D float64 array (missing -> NaN), not copied when it is one; None if not numbers."""
    to_numpy = getattr(raw, "to_numpy", None)
    try:
        if to_numpy is not None:
            x = to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            arr = np.asarray(raw)
            if arr.dtype.kind in "US":
                raise ValueError("strings")
            x = arr.astype(np.float64, copy=False)
        return np.asarray(x, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError):
        return None


def _table_columns(table, what: str) -> tuple[list[str], int]:
    """Column names and row count of a DataFrame, a dict of columns or a structured array."""
    if hasattr(table, "columns") and hasattr(table, "__getitem__"):  # a DataFrame
        names = [str(c) for c in table.columns]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"{what} has repeated column names: {_short(_repeated(names))}")
        return names, len(table)
    if isinstance(table, np.ndarray) and table.dtype.names:
        return list(table.dtype.names), len(table)
    if isinstance(table, Mapping):
        lengths = {len(np.atleast_1d(np.asarray(v, dtype=object))) for v in table.values()}
        if len(lengths) > 1:
            raise InvalidInputError(f"{what}: the columns have different lengths {sorted(lengths)}")
        return [str(k) for k in table], (lengths.pop() if lengths else 0)
    raise InvalidInputError(
        f"{what} must be a table with named columns (a pandas DataFrame or a dict of columns) for a model "
        f"trained on a table, got {type(table).__name__}")


def _column_from_dict(d) -> Column:
    if not isinstance(d, Mapping) or d.get("kind") not in (NUMERIC, CATEGORICAL):
        raise InvalidInputError(f"tabular encoder column must have kind 'numeric' or 'categorical', got {d!r}"[:300])
    fields = {k: v for k, v in d.items() if k != "kind"}
    if d["kind"] == NUMERIC:
        spec = {"name": str, "median": float, "mean": float, "scale": float, "allow_missing": bool,
                "missing_fraction": float, "value_type": str}
        # A null median: the column refuses gaps, so it has no fill value (only then may it be null).
        no_fill = "median" in fields and fields["median"] is None and fields.get("allow_missing") is False
        checked = {k: v for k, v in fields.items() if not (no_fill and k == "median")}
        _check_fields(checked, {k: t for k, t in spec.items() if not (no_fill and k == "median")})
        numbers = ("mean", "scale") if no_fill else ("median", "mean", "scale")
        if not all(math.isfinite(checked[k]) for k in numbers) or not checked["scale"] > 0:
            raise InvalidInputError(f"column {fields['name']!r}: median/mean must be finite and scale positive")
        return NumericColumn(**{"median": None, **{k: spec[k](v) for k, v in checked.items()}})  # ints -> float
    spec = {"name": str, "categories": list, "has_missing": bool, "has_other": bool, "value_type": str,
            "counts": list, "missing_fraction": float}
    _check_fields(fields, spec)
    cats = fields["categories"]
    if not all(isinstance(c, str) for c in cats) or len(set(cats)) != len(cats):
        raise InvalidInputError(f"column {fields['name']!r}: categories must be distinct strings")
    return CategoricalColumn(**fields)


def _check_fields(fields: dict, spec: dict) -> None:
    unknown = sorted(set(fields) - set(spec))
    missing = sorted({"name"} - set(fields)) or sorted(k for k in ("median", "mean", "scale", "categories")
                                                      if k in spec and k not in fields)
    if unknown or missing:
        raise InvalidInputError(f"tabular encoder column: unknown fields {unknown}, missing fields {missing}")
    for key, value in fields.items():
        want = spec[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if want is float else \
            isinstance(value, want)
        if not ok:
            raise InvalidInputError(f"tabular encoder column field {key!r} must be {want.__name__}, got {value!r}"
                                    [:300])


def _row(r: int, row_numbers) -> int:
    return int(row_numbers[r]) if row_numbers is not None else r


def _repeated(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


def _short(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{f', ... ({len(names) - limit} more)' if len(names) > limit else ''}]"
