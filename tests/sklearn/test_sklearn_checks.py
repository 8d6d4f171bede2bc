"""scikit-learn's own estimator checks (legacy ones included) over both estimators."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from bpexp.sklearn import MLPClassifier, MLPRegressor

# Few epochs, as scikit-learn tests its own MLPs: the checks use tiny data sets, and a check that needs a
# trained model (e.g. "accuracy above 0.83 on three blobs") gets there in 100 epochs.
ESTIMATORS = [
    MLPClassifier(max_iter=100, random_state=0),
    MLPRegressor(max_iter=100, random_state=0),
]

#: Checks that cannot hold for these estimators, with the reason; the aim is none.
EXPECTED_FAILURES: dict[str, dict[str, str]] = {"MLPClassifier": {}, "MLPRegressor": {}}


def expected_failures(estimator) -> dict[str, str]:
    return EXPECTED_FAILURES[type(estimator).__name__]


@parametrize_with_checks(ESTIMATORS, legacy=True, expected_failed_checks=expected_failures)
def test_sklearn_check(estimator, check):
    check(estimator)
