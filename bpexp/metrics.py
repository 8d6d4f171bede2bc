"""Metrics on NumPy arrays: accuracy, macro F1, log loss; MSE, MAE, R².

Written directly in NumPy (and checked against scikit-learn in the tests)
because they run after every epoch, where scikit-learn's input validation
would cost more than a small model's epoch.
"""

from __future__ import annotations

import numpy as np

#: Metric names per task, in the order they are reported; the first is the main one.
TASK_METRICS = {
    "classification": ("accuracy", "f1", "log_loss"),
    "multilabel": ("accuracy", "f1", "log_loss"),
    "regression": ("r2", "mse", "mae"),
}

#: Whether a higher value is better, for every metric bpexp logs.
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "r2": True, "log_loss": False, "mse": False,
                    "mae": False, "loss": False}


def accuracy(y_true, y_pred) -> float:
    """Fraction of exactly matching predictions (rows, for label matrices)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    eq = y_true == y_pred
    if eq.ndim == 2:
        eq = eq.all(axis=1)
    return float(eq.mean())


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of true class index ``i`` predicted as ``j``."""
    return np.bincount(np.asarray(y_true) * n_classes + np.asarray(y_pred),
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def f1_macro(y_true, y_pred, n_classes: int) -> float:
    """Unweighted mean of per-class F1 over class indices ``0..n_classes-1``.

    Classes with no true and no predicted samples count as F1 = 0, as in
    scikit-learn's ``zero_division=0`` over the labels present in either array.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    return _f1_from_counts(np.diag(cm), cm.sum(axis=0), cm.sum(axis=1))


def f1_macro_multilabel(Y_true, Y_pred) -> float:
    """Macro F1 over all the columns of 0/1 label matrices.

    Every column counts, including one with no true and no predicted positives
    (F1 = 0 there), as in scikit-learn's ``f1_score(average="macro")`` for
    multilabel indicators.
    """
    Y_true, Y_pred = np.asarray(Y_true, bool), np.asarray(Y_pred, bool)
    tp = (Y_true & Y_pred).sum(axis=0)
    return _f1_from_counts(tp, Y_pred.sum(axis=0), Y_true.sum(axis=0), only_present=False)


def _f1_from_counts(tp, predicted, actual, only_present: bool = True) -> float:
    denom = predicted + actual
    f1 = np.divide(2 * tp, denom, out=np.zeros(tp.shape, dtype=float), where=denom > 0)
    if not only_present:
        return float(f1.mean())
    present = denom > 0
    return float(f1[present].mean()) if present.any() else 0.0


def _clip_eps(P: np.ndarray) -> float:
    # scikit-learn (>= 1.2) clips probabilities at the machine epsilon of their dtype.
    return float(np.finfo(P.dtype if np.issubdtype(P.dtype, np.floating) else np.float64).eps)


def log_loss(y_index, proba) -> float:
    """Mean negative log-likelihood of the true class indices under ``proba``.

    Probabilities are clipped to ``[eps, 1 - eps]`` with ``eps`` the machine
    epsilon of their dtype, as scikit-learn does.
    """
    proba = np.asarray(proba)
    eps = _clip_eps(proba)
    p = np.clip(proba[np.arange(len(y_index)), y_index].astype(np.float64), eps, 1 - eps)
    return float(-np.log(p).mean())


def binary_log_loss(Y, P) -> float:
    """Binary cross-entropy averaged over all entries of 0/1 targets ``Y`` (clipped like :func:`log_loss`)."""
    P = np.asarray(P)
    eps = _clip_eps(P)
    P = np.clip(P.astype(np.float64), eps, 1 - eps)
    Y = np.asarray(Y, np.float64)
    return float(-(Y * np.log(P) + (1 - Y) * np.log1p(-P)).mean())


def mse(y_true, y_pred) -> float:
    d = np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)
    return float(np.mean(d * d))


def mae(y_true, y_pred) -> float:
    return float(np.mean(np.abs(np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64))))


def r2(y_true, y_pred) -> float:
    """Coefficient of determination, averaged uniformly over outputs."""
    y_true = np.asarray(y_true, np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, np.float64).reshape(len(y_pred), -1)
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(score.mean())


def head_metrics(task: str, n_outputs: int, y_encoded: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """The task's metrics from encoded targets and head outputs (probabilities or values)."""
    if task == "regression":
        return {"r2": r2(y_encoded, outputs), "mse": mse(y_encoded, outputs), "mae": mae(y_encoded, outputs)}
    if task == "multilabel":
        pred = outputs >= 0.5
        return {"accuracy": accuracy(y_encoded.astype(bool), pred), "f1": f1_macro_multilabel(y_encoded, pred),
                "log_loss": binary_log_loss(y_encoded, outputs)}
    if n_outputs == 1:  # binary sigmoid head: P(class 1)
        y_idx = y_encoded[:, 0].astype(np.intp)
        proba = np.hstack([1 - outputs, outputs])
    else:
        y_idx, proba = y_encoded, outputs
    pred = np.argmax(proba, axis=1)
    n_classes = proba.shape[1]
    return {"accuracy": accuracy(y_idx, pred), "f1": f1_macro(y_idx, pred, n_classes),
            "log_loss": log_loss(y_idx, proba)}


def evaluate(model, X, y) -> dict[str, float]:
    """The model's loss and task metrics on raw ``X`` and ``y``.

    Classification: ``loss``, ``accuracy``, ``f1`` (macro), ``log_loss``;
    regression: ``loss``, ``r2``, ``mse``, ``mae`` (metrics in the targets' units; the
    loss on standardized targets when the model standardizes).
    """
    Xp = model._preprocess(model.check_X(X))
    yp = model.encode_targets(y)
    loss, outputs = model._loss_and_outputs(Xp, yp)
    metrics = head_metrics(model.task, model.n_outputs, model.decode_values(yp), model.decode_values(outputs))
    return {"loss": loss, **metrics}
