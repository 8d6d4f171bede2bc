"""Log a fitted bpexp estimator as a bpexp MLflow run: params, curves, the pyfunc model (no pickle).

Fitting never logs anything, inside an active MLflow run or not; this is the one,
explicit way::

    from bpexp.sklearn import log_estimator
    logged = log_estimator(clf, X_train[:5], experiment="digits-sklearn")   # -> run id and model URI

MLflow is imported here only, when the function is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from bpexp.tracking.tags import EPOCHS_RUN_TAG, ESTIMATOR_TAG, TASK_TAG, VERSION_TAG


@dataclass(frozen=True)
class LoggedEstimator:
    """Where :func:`log_estimator` put the estimator."""

    run_id: str
    model_uri: str
    tracking_uri: str
    experiment_id: str


def log_estimator(estimator, X_example, *, y_eval=None, X_eval=None, tracking_uri: str | None = None,
                  experiment: str = "bpexp-sklearn", run_name: str | None = None,
                  tags: dict[str, str] | None = None) -> LoggedEstimator:
    """Log a fitted :class:`~bpexp.sklearn.MLPClassifier` or :class:`~bpexp.sklearn.MLPRegressor` as one run.

    The run holds the estimator's parameters (``get_params``), its curves (``loss`` and
    ``validation_score`` per epoch over all fits; the last fit's bpexp logs, such as
    ``train_loss``, ``val_loss`` and the per-layer gradient norms), ``n_iter`` and
    ``best_loss``/``best_validation_score``, ``score`` when ``X_eval``/``y_eval`` are
    given, and :attr:`model_` as a bpexp MLflow pyfunc model (models from code, no pickle;
    the signature and input example come from ``X_example``).

    Parameters
    ----------
    estimator : fitted bpexp estimator
        Not a Pipeline: its pyfunc model would leave out the other steps.
    X_example : array-like or DataFrame
        A few raw input rows (the first 5 are used).
    X_eval, y_eval : optional
        Data to compute ``estimator.score`` on, logged as metric ``score``.
    tracking_uri : str, optional
        Default ``$MLFLOW_TRACKING_URI``, else the project's ``mlruns/`` store.
    experiment, run_name, tags : optional

    Returns
    -------
    LoggedEstimator
        ``run_id``, ``model_uri`` (``models:/m-...``), ``tracking_uri``, ``experiment_id``.
    """
    from bpexp._version import __version__
    from bpexp.sklearn._base import BaseMLP
    from bpexp.tracking import TrackedRun, connect, get_or_create_experiment, metric_sink
    from bpexp.tracking.store import resolve_tracking_uri

    if not isinstance(estimator, BaseMLP):
        raise TypeError(f"log_estimator takes a fitted bpexp.sklearn estimator, got {type(estimator).__name__}; "
                        "for a Pipeline, log its bpexp step with examples of the features it receives")
    check_is_fitted(estimator)
    uri = resolve_tracking_uri(tracking_uri)
    client = connect(uri)
    experiment_id = get_or_create_experiment(client, experiment, uri)
    run_tags = {VERSION_TAG: __version__, ESTIMATOR_TAG: type(estimator).__name__,
                TASK_TAG: estimator.model_.task, **(tags or {})}
    # The curves exist already: written from this process in one go, with no helper process to start.
    with metric_sink(uri, helper=False) as sink:
        tracked = TrackedRun(client, uri, experiment_id, sink, run_name=run_name, tags=run_tags)
        try:
            tracked.log_params(estimator.get_params(deep=False))
            _log_curves(tracked, estimator)
            summary = _summary(estimator, X_eval, y_eval)
            tracked.log_summary(summary, {EPOCHS_RUN_TAG: estimator.n_iter_}, step=estimator.n_iter_)
            model_uri = tracked.log_model(estimator.model_, _example(estimator, X_example))
        except BaseException as exc:
            tracked.end("FAILED", f"{type(exc).__name__}: {exc}")
            raise
        tracked.end("FINISHED")
    return LoggedEstimator(tracked.run_id, model_uri, uri, experiment_id)


def _log_curves(tracked, est) -> None:
    for epoch, loss in enumerate(est.loss_curve_, start=1):
        tracked.queue_metrics({"loss": loss}, step=epoch)
    for epoch, score in enumerate(est.validation_scores_ or [], start=1):
        tracked.queue_metrics({"validation_score": score}, step=epoch)
    history = getattr(est, "history_", None)
    if history is not None:
        first = est.n_iter_ - len(history)
        for logs in history:
            tracked.queue_metrics(logs, step=first + logs["epoch"])


def _summary(est, X_eval, y_eval) -> dict[str, Any]:
    summary: dict[str, Any] = {"n_iter": est.n_iter_}
    for key in ("best_loss_", "best_validation_score_"):
        value = getattr(est, key, None)
        if value is not None and np.isfinite(value):
            summary[key.rstrip("_")] = float(value)
    if X_eval is not None and y_eval is not None:
        summary["score"] = float(est.score(X_eval, y_eval))
    return summary


def _example(est, X_example):
    """The first rows as a DataFrame with the estimator's feature names (x0, x1, ... without).

    A table model's rows stay raw (strings, ``None`` for missing values), as a user would send them.
    """
    import pandas as pd

    from bpexp.tracking.model import input_example

    if est.model_.encoder is not None:
        return input_example(est.model_, X_example, [])
    if isinstance(X_example, pd.DataFrame):
        X_example = X_example.to_numpy(dtype=np.float64)
    names = [str(n) for n in getattr(est, "feature_names_in_", [])]
    return input_example(est.model_, np.asarray(X_example, dtype=np.float64), names)
