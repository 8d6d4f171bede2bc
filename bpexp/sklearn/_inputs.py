"""Input checks of the estimators: arrays (scikit-learn's ``validate_data``), sparse matrices, and tables.

A DataFrame with strings, booleans, categories or missing values goes to bpexp's
table preprocessing (:func:`bpexp.data.tabular.fit_encoder`, learned from the
training rows and kept in the model as JSON): the estimator then takes raw rows,
as the MLP does. Anything else is a numeric array, checked by scikit-learn.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_array, check_consistent_length, validate_data

#: Largest dense copy of a sparse input (bytes): bpexp trains on dense arrays.
MAX_DENSE_BYTES = 4 * 2**30
NO_Y = object()  # "only X" (y=None is a bad target that scikit-learn's checks must see refused)


def is_mixed_table(X) -> bool:
    """A DataFrame that needs bpexp's table encoder: a non-numeric (or boolean) column, or a missing value."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - a dependency of bpexp
        return False
    if not isinstance(X, pd.DataFrame):
        return False
    for dtype in X.dtypes:
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            return True
    return bool(X.isna().to_numpy().any())


def check_array_input(est, X, y=NO_Y, *, reset: bool, regression: bool = False):
    """``validate_data`` for numeric arrays (float32 kept, else float64; sparse densified)."""
    options = dict(reset=reset, dtype=(np.float32, np.float64), order="C", accept_sparse=["csr", "csc", "coo"])
    if y is NO_Y:
        X = validate_data(est, X, **options)
    else:
        X, y = validate_data(est, X, y, multi_output=True, y_numeric=regression, **options)
    X = _dense(X)
    return X if y is NO_Y else (X, y)


def _dense(X):
    if not hasattr(X, "toarray"):
        return X
    nbytes = X.shape[0] * X.shape[1] * X.dtype.itemsize
    if nbytes > MAX_DENSE_BYTES:
        raise ValueError(f"sparse X of shape {X.shape} would take {nbytes / 2**30:.1f} GB as the dense array bpexp "
                         "trains on; reduce the features first (e.g. TruncatedSVD or feature selection)")
    return np.ascontiguousarray(X.toarray())


def check_table_input(est, X, y=NO_Y, *, reset: bool, regression: bool = False):
    """Names and width of a raw table (the encoder checks its values); ``y`` checked as scikit-learn does."""
    import pandas as pd

    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"this {type(est).__name__} was trained on a table (a DataFrame with text or missing "
                         f"values): pass a DataFrame with the columns {list(est.feature_names_in_)}, "
                         f"got {type(X).__name__}")
    validate_data(est, X, reset=reset, skip_check_array=True)
    if y is NO_Y:
        return X
    if y is None:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target y is None")
    y = check_array(y, ensure_2d=False, dtype="numeric" if regression else None, input_name="y")
    check_consistent_length(X, y)
    return X, y


def fit_table_encoder(X):
    """The table encoder learned from the training rows ``X`` (roles inferred from the column types)."""
    from bpexp.data.tabular import fit_encoder

    return fit_encoder(X)
