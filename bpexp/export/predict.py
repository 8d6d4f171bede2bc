"""Predicting a CSV file with a saved model (``bpexp predict``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bpexp.errors import InvalidInputError

_log = logging.getLogger(__name__)


def prediction_frame(model, X: np.ndarray, *, proba: bool = False):
    """Predictions as a DataFrame: ``prediction`` (original labels or values), plus one column per class.

    Multi-output models give ``output_0..`` columns instead of ``prediction``.
    """
    import pandas as pd

    if proba and not model.is_classifier:
        raise InvalidInputError("--proba needs a classification model; this one does regression")
    pred = model.predict(X)
    frame = pd.DataFrame({"prediction": pred}) if pred.ndim == 1 else \
        pd.DataFrame(pred, columns=[f"output_{i}" for i in range(pred.shape[1])])
    if proba:
        p = model.predict_proba(X)
        names = [str(c) for c in model.classes_]
        if set(names) & set(frame.columns):  # a class called "prediction" must not hide the labels
            names = [f"proba_{n}" for n in names]
        for name, col in zip(names, p.T):
            frame[name] = col
    return frame


def predict_csv(source, input_csv, *, proba: bool = False, tracking_uri: str | None = None):
    """Predict every row of ``input_csv`` with the model at ``source``.

    Parameters
    ----------
    source : path or URI
        A model folder, an exported directory, or a ``models:/`` / ``runs:/`` URI.
    input_csv : path
        A CSV file with a header row. Columns are matched by name when the model
        knows its feature names (exported and MLflow models), else by position.
    proba : bool
        Add one probability column per class (named by the class label).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InvalidInputError
        A bad CSV: the message names the row (header = row 1) and the column.
    ModelFormatError
        ``source`` is not a usable model.
    """
    from bpexp.export.inputs import read_csv_features, read_table_rows
    from bpexp.export.loading import load_with_features

    model, names = load_with_features(source, tracking_uri=tracking_uri)
    if model.encoder is not None:  # a table model takes the raw rows (strings, blanks) by column name
        unknown: dict[str, int] = {}
        frame = read_table_rows(Path(input_csv), model, unknown)
        if unknown:
            counts = ", ".join(f"{c}: {n}" for c, n in unknown.items())
            _log.warning("values outside the training categories (rare, unseen or missing; encoded as 'other' "
                         "or none): %s", counts)
        return prediction_frame(model, frame, proba=proba)
    X = read_csv_features(Path(input_csv), model.n_inputs, names)
    return prediction_frame(model, X, proba=proba)
