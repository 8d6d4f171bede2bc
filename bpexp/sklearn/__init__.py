"""scikit-learn estimators trained by bpexp: ``MLPClassifier`` and ``MLPRegressor``.

Swap ``from sklearn.neural_network import MLPClassifier`` for
``from bpexp.sklearn import MLPClassifier`` and Pipelines, ``GridSearchCV``,
``cross_val_score``, ``clone`` and ``OptunaSearchCV`` work as before. Importing
this package imports scikit-learn, not MLflow, Optuna or ipywidgets; fitting never
logs anything. :func:`log_estimator` logs a fitted estimator as a bpexp MLflow run
on request.
"""

from bpexp.sklearn.estimators import MLPClassifier, MLPRegressor


def log_estimator(estimator, X_example, **kwargs):
    """Log a fitted estimator as an MLflow run (see :func:`bpexp.sklearn.tracking.log_estimator`)."""
    from bpexp.sklearn.tracking import log_estimator as _log

    return _log(estimator, X_example, **kwargs)


__all__ = ["MLPClassifier", "MLPRegressor", "log_estimator"]
