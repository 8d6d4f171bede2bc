"""Tables as datasets: column roles, checks on the target, and learning the encoder from the training rows.

Roles are inferred from the column types and can be overridden by name:

* numeric: float and integer columns;
* categorical: string, object and ``category`` columns, booleans, and integer
  columns only when named in ``categorical``;
* dropped: columns named in ``drop`` (an id column, free text).

:func:`fit_encoder` learns a :class:`~bpexp.nn.tabular.TabularEncoder` from the
training split only (medians, means and scales; categories and their counts),
which the model keeps as JSON. pandas does the counting: it is fast on millions
of rows, and only learning needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bpexp.errors import InvalidInputError
from bpexp.nn.parallel import map_threads, table_threads
from bpexp.nn.tabular import CategoricalColumn, Column, NumericColumn, TabularEncoder, category_key

#: Categories seen in fewer training rows than this go to one ``other`` bucket.
DEFAULT_MIN_FREQUENCY = 5
#: More distinct categories than this in one column is an error (one-hot would be too wide).
DEFAULT_MAX_CATEGORIES = 200


@dataclass
class ColumnRoles:
    """Which feature columns are numeric, categorical, or dropped (in the table's column order)."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    inferred: dict[str, str] = field(default_factory=dict)  # column -> why (e.g. "strings")
    value_types: dict[str, str] = field(default_factory=dict)  # column -> "string"/"boolean"/"integer"/"float"
    target: str | None = None  # accepted (and ignored) in prediction inputs

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def describe(self) -> str:
        """One line for the terminal: ``features: 4 numeric (...), 2 categorical (...); dropped: year``."""
        parts = [f"{len(self.numeric)} numeric{_names(self.numeric)}",
                 f"{len(self.categorical)} categorical{_names(self.categorical)}"]
        dropped = f"; dropped: {', '.join(self.drop)}" if self.drop else ""
        return f"features: {', '.join(parts)}{dropped}"

    def as_params(self) -> dict[str, str]:
        return {"numeric": ",".join(self.numeric), "categorical": ",".join(self.categorical),
                "drop": ",".join(self.drop)}


def _names(names: list[str], limit: int = 6) -> str:
    if not names:
        return ""
    more = f", +{len(names) - limit}" if len(names) > limit else ""
    return f" ({', '.join(names[:limit])}{more})"


def infer_roles(frame, *, target: str | None = None, numeric=(), categorical=(), drop=()) -> ColumnRoles:
    """Roles of the columns of ``frame`` other than ``target``.

    Raises
    ------
    InvalidInputError
        A named column that does not exist (the message lists the real ones), a
        column named in two roles, a date column, or no feature column left.
    """
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    named = {"numeric": list(numeric), "categorical": list(categorical), "drop": list(drop)}
    for role, names in named.items():
        unknown = [n for n in names if n not in columns]
        if unknown:
            raise InvalidInputError(f"dataset.{role} names column(s) {unknown} that the data does not have; "
                                    f"its columns are {columns}")
        if target in names:
            raise InvalidInputError(f"dataset.{role} names the target column {target!r}")
    seen: dict[str, str] = {}
    for role, names in named.items():
        for n in names:
            if n in seen:
                raise InvalidInputError(f"column {n!r} is named in both dataset.{seen[n]} and dataset.{role}")
            seen[n] = role
    roles = ColumnRoles(drop=list(named["drop"]), target=target)
    for name in columns:
        if name == target or name in roles.drop:
            continue
        role, why = seen.get(name), "named"
        if role is None:
            role, why = _role_of(frame[name], name, pd)
        getattr(roles, role).append(name)
        roles.inferred[name] = why
        roles.value_types[name] = _value_type(frame[name])
    if not roles.features:
        raise InvalidInputError(f"no feature columns left (columns {columns}, target {target!r}, "
                                f"dropped {roles.drop})")
    return roles


def _role_of(col, name: str, pd) -> tuple[str, str]:
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical", "booleans"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical", "category dtype"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise InvalidInputError(f"column {name!r} holds dates or times, which bpexp does not encode yet: "
                                "drop it (dataset.drop) or turn it into numbers first")
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric", "numbers"
    return "categorical", "strings"


def check_target(frame, target: str, what: str, *, drop_missing: bool = False):
    """The frame without rows whose target is missing (if allowed), else an error counting them.

    Raises
    ------
    InvalidInputError
        Missing target values (with their count and first rows), or a constant target.
    """
    if target not in frame.columns:
        raise InvalidInputError(f"{what} has no column {target!r}; its columns are {[str(c) for c in frame.columns]}")
    missing = frame[target].isna().to_numpy()
    if missing.any():
        if not drop_missing:
            rows = frame.index[missing][:5].tolist()
            raise InvalidInputError(
                f"{what}: the target {target!r} is missing in {int(missing.sum())} row(s), first rows {rows}; "
                "fill them in, or drop those rows with dataset.drop_missing_target: true")
        frame = frame[~missing]
    # One value differing from the first (cheaper than counting distinct values in a million rows).
    if frame.shape[0] and not (frame[target] != frame[target].iloc[0]).any():
        raise InvalidInputError(f"{what}: the target {target!r} has a single value "
                                f"({frame[target].iloc[0]!r}); there is nothing to learn")
    return frame


def table_features(frame, roles: ColumnRoles, what: str):
    """The feature columns, typed by role: numbers as float64, categories as pandas ``category``.

    Raises
    ------
    InvalidInputError
        A value that is not a number in a numeric column (row and column named), or
        a column in which every value is missing.
    """
    import pandas as pd

    out = {}
    wanted = set(roles.features)
    for name in [str(c) for c in frame.columns if str(c) in wanted]:  # the table's own column order
        col = frame[name]
        if _all_missing(col):
            raise InvalidInputError(f"{what}: column {name!r} is empty (every value is missing); drop it "
                                    "with dataset.drop")
        if name in roles.numeric:
            out[name] = _numeric(col, name, what, pd)
        else:
            out[name] = _categories(col)
    # copy=False: one block per column, no copy of a million rows into one float block (fresh arrays, or
    # pandas' copy-on-write views of the caller's, either way never written through).
    return pd.DataFrame(out, index=frame.index, copy=False)


def _all_missing(col) -> bool:
    """``col.isna().all()``, deciding on the first rows where one of them has a value (no mask of every row)."""
    return bool(col.iloc[:64].isna().all()) and bool(col.isna().all())


def _numeric(col, name: str, what: str, pd):
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return col.astype(np.float64)
    values = pd.to_numeric(col, errors="coerce")
    bad = (values.isna() & col.notna()).to_numpy()
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(f"{what} row {col.index[r]}, column {name!r}: {col.iloc[r]!r} is not a number "
                                "(the column is declared numeric)")
    return values.astype(np.float64)


def _categories(col):
    """A ``category`` column of the values' string keys (see :func:`~bpexp.nn.tabular.category_key`).

    The keys of the few distinct values are computed, not of every row: hashing a
    million strings into a ``category`` is fast, calling Python per row is not.
    """
    import pandas as pd

    cat = col.astype("category")
    keys = [category_key(c) for c in cat.cat.categories]
    if None not in keys and len(set(keys)) == len(keys):
        if all(isinstance(c, str) for c in cat.cat.categories):  # keys already (text): as it is, no new codes
            return cat
        return pd.Series(pd.Categorical.from_codes(cat.cat.codes.to_numpy(), categories=keys), index=col.index)
    return col.astype(object).map(category_key, na_action="ignore").astype("category")  # e.g. 3 and 3.0


def columns_with_gaps(frame, names=None) -> list[str]:
    """The columns of ``frame`` (or of ``names``) holding a missing value, in order.

    A float column's sum is finite exactly when no value is NaN or infinite, and a sum
    reads the column once without writing a mask of every row (*measured*, 10^6 rows:
    0.3 ms against 0.4-1 ms for ``isna().any()``); only a column whose sum is not
    finite is looked at again. Large tables are checked on several threads.
    """
    names = [str(c) for c in frame.columns] if names is None else list(names)
    flags = map_threads(_has_gap, [frame[n] for n in names], table_threads(len(frame)))
    return [n for n, gap in zip(names, flags) if gap]


def held_out_gaps(parts, names) -> list[str]:
    """The columns among ``names`` with a missing value in the validation or test rows of split ``parts``.

    With the training rows' own gaps (which :func:`fit_encoder` finds as it fits), these are
    the columns that had gaps anywhere in the table: ``allow_missing`` for the encoder,
    found by looking at the held-out rows only.
    """
    held_out = {c for part in (parts.X_val, parts.X_test) for c in columns_with_gaps(part, names)}
    return [c for c in names if c in held_out]


def _has_gap(col) -> bool:
    values = col.to_numpy() if col.dtype.kind == "f" else None
    if values is None or values.dtype.kind != "f":
        return bool(col.isna().any())
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, or a sum past 1e308: looked at again below
        total = np.add.reduce(values)
    return not np.isfinite(total) and bool(np.isnan(values).any())


def needs_encoder(features) -> bool:
    """True unless every column is numeric and nothing is missing (then a plain float array does, as ever)."""
    import pandas as pd

    all_numeric = all(pd.api.types.is_float_dtype(t) for t in features.dtypes)
    return not all_numeric or bool(columns_with_gaps(features))


def fit_encoder(frame, roles: ColumnRoles | None = None, *, standardize: bool = True,
                min_frequency: int = DEFAULT_MIN_FREQUENCY, max_categories: int = DEFAULT_MAX_CATEGORIES,
                allow_missing=(), ignored=()) -> TabularEncoder:
    """Learn the encoding of a table from its training rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        The training rows' raw feature columns.
    roles : ColumnRoles, optional
        Default: inferred from the column types.
    standardize : bool
        Scale numeric columns to zero mean and unit variance (after imputation).
    min_frequency : int
        Categories seen in fewer rows go to one ``other`` bucket.
    max_categories : int
        Refuse a column with more distinct (kept) categories than this.
    allow_missing : iterable of str
        Numeric columns that may be missing at prediction time although the
        training rows had no gap (e.g. the full dataset had some); columns
        with missing training values always may.
    ignored : iterable of str
        Columns the encoder accepts and ignores in its input (dropped ones, the target).

    Raises
    ------
    InvalidInputError
        A column with too many categories (use ``drop``), or an empty training split.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(f"fit_encoder needs a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise InvalidInputError("cannot learn an encoding from 0 training rows")
    roles = roles or infer_roles(frame)
    typed = table_features(frame, roles, "the training data")
    allow_missing = set(allow_missing)

    def fit_column(name: str, col, raw) -> Column:
        if name in roles.numeric:
            column = _fit_numeric(col, name, standardize, name in allow_missing)
            column.value_type = "integer" if roles.value_types.get(name) == "integer" else "float"
            return column
        value_type = roles.value_types.get(name) or _value_type(raw)
        return _fit_categorical(col, value_type, name, min_frequency, max_categories)

    # Columns are independent, and their medians and sums run without the GIL: a large table's are fitted on
    # several threads. The frames are indexed here, on this thread only (pandas does not promise thread safety).
    work = [(name, typed[name], frame[name]) for name in (str(c) for c in frame.columns) if name in roles.features]
    columns = map_threads(lambda item: fit_column(*item), work, table_threads(len(frame)))
    extra = [roles.target] if roles.target else []
    return TabularEncoder(columns, ignored=[*roles.drop, *extra, *ignored])


def _fit_numeric(col, name: str, standardize: bool, allow_missing: bool) -> NumericColumn:
    x = col.to_numpy(dtype=np.float64, na_value=np.nan)
    total = np.add.reduce(x)
    # A finite sum means no NaN (and no inf): the mask of gaps, a pass of its own, is only made when one may be.
    nan = np.isnan(x) if not np.isfinite(total) else None
    n_missing = int(np.count_nonzero(nan)) if nan is not None else 0
    median, filled = None, x
    if n_missing:
        median = median_of(x, x.size - n_missing)
        filled = np.where(nan, median, x)
    elif allow_missing:  # gaps may come at prediction time: their fill value
        median = median_of(x)
    # A column that may never have a gap needs no fill value: its median (a selection over every training value,
    # once the most expensive part of a fit) is not computed.
    mean, scale = mean_std(filled, total if filled is x else None) if standardize else (0.0, 1.0)
    return NumericColumn(name, median, mean, scale if scale > 0 else 1.0, allow_missing=bool(n_missing) or
                         allow_missing, missing_fraction=n_missing / x.size)


def mean_std(x: np.ndarray, total: float | None = None) -> tuple[float, float]:
    """``(x.mean(), x.std())`` bit for bit, summing ``x`` once, not twice.

    ``np.std`` recomputes the mean and allocates ``x - mean``; here the same
    operations in the same order (pairwise sums of the same arrays, the same
    divisions) run once each. ``total``: ``np.add.reduce(x)`` when the caller has it.
    """
    n = x.size
    if n == 0:
        return float("nan"), float("nan")
    mean = float((np.add.reduce(x) if total is None else total) / n)
    d = np.subtract(x, mean)
    np.multiply(d, d, out=d)
    return mean, float(np.sqrt(np.add.reduce(d) / n))


#: From this many values on, :func:`median_of` brackets the middle from a sample before selecting.
_BRACKET_MIN = 20_000
_SAMPLE = 4096


def median_of(x: np.ndarray, n_valid: int | None = None) -> float:
    """``np.median`` of the values of float64 ``x`` that are not NaN, bit for bit (0.0 if none); ``x`` is not changed.

    ``n_valid``: how many values are not NaN (default: all of them). The middle
    values are the same numbers whichever way they are found, and the result is
    computed from them as ``np.median`` does (for an even count ``(a + b) / 2``).
    Large arrays are not copied whole and partitioned: an evenly spaced sample
    gives two bounds the middle ranks lie between (checked by counting), and only
    the values between them are partitioned (*measured*, 700,000 values with 1 %
    NaN: ~2.5 ms against 9 ms for copying out the valid values and partitioning
    them; ``np.median`` itself partitions at three positions). When the bounds
    miss (an unlucky sample), the whole partition runs as before.
    """
    n = x.size if n_valid is None else n_valid
    if n == 0:
        return 0.0
    k = n // 2
    low = k if n % 2 else k - 1  # the ranks low..k (0-based, among the valid values) hold the middle
    middle = _bracketed(x, n, low, k) if n >= _BRACKET_MIN else None
    if middle is None:
        values = x.copy() if n == x.size else x[~np.isnan(x)]
        values.partition(k)  # values[:k] <= values[k] <= values[k + 1:]
        middle = (values[k] if n % 2 else values[:k].max(), values[k])
    lower, upper = middle
    return float(upper) if n % 2 else float((lower + upper) / 2)


def _bracketed(x: np.ndarray, n: int, low: int, high: int) -> tuple[float, float] | None:
    """The valid values of ranks ``low`` and ``high`` of ``x``, found between two sampled bounds, or None."""
    sample = np.sort(x[:: max(1, x.size // _SAMPLE)])  # NaNs sort last
    sample = sample[: np.searchsorted(sample, np.inf, side="right")]
    m = sample.size
    if m < 64:
        return None
    margin = 4 * int(np.sqrt(m)) + 2  # a few standard deviations of a sampled rank
    at = low * m // n
    lo, hi = sample[max(0, at - margin)], sample[min(m - 1, at + margin)]
    below = int(np.count_nonzero(x < lo))  # NaN compares False: never counted
    inside = x[(x >= lo) & (x <= hi)]
    if not below <= low <= high < below + inside.size:
        return None
    inside.partition([low - below, high - below])
    return inside[low - below], inside[high - below]


def _fit_categorical(col, value_type: str, name: str, min_frequency: int, max_categories: int) -> CategoricalColumn:
    n_missing, counts = _category_counts(col)
    kept = sorted(c for c, n in counts.items() if n >= min_frequency)
    if len(kept) > max_categories:
        raise InvalidInputError(
            f"column {name!r} has {len(kept)} categories (more than max_categories={max_categories}): an id or "
            f"free-text column? drop it (dataset.drop: [{name}]) or raise dataset.max_categories")
    # Categories of the table's dtype that no training row holds count as rare too: they go to "other".
    return CategoricalColumn(name, kept, has_missing=n_missing > 0, has_other=len(kept) < len(counts),
                             value_type=value_type, counts=[counts[c] for c in kept],
                             missing_fraction=n_missing / len(col))


def _category_counts(col) -> tuple[int, dict[str, int]]:
    """Missing rows, and rows per category of ``col``'s ``category`` dtype (0 for one no row holds).

    One count of the codes (missing is code -1): ``value_counts`` plus ``isna`` take ~4 ms
    on 700,000 rows, this ~1 ms.
    """
    codes = col.cat.codes.to_numpy()
    per_code = np.bincount(codes.astype(np.intp) + 1, minlength=len(col.cat.categories) + 1)
    return int(per_code[0]), {str(c): int(n) for c, n in zip(col.cat.categories, per_code[1:])}


def _value_type(raw) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(raw.dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(raw.dtype):
        return "integer"
    if pd.api.types.is_float_dtype(raw.dtype):
        return "float"
    return "string"
