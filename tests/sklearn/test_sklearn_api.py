"""bpexp.sklearn estimators in scikit-learn's machinery, their attributes, options and bad parameters."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_digits, load_iris, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import bpexp
from bpexp.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.3, stratify=y, random_state=0)


def test_import_loads_neither_mlflow_nor_optuna_nor_ipywidgets():
    code = ("import sys; from bpexp.sklearn import MLPClassifier, MLPRegressor; "
            "print(sorted(m for m in ('mlflow', 'optuna', 'ipywidgets', 'optuna_integration') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_bpexp_does_not_import_scikit_learn_estimators():
    code = "import sys, bpexp; print('bpexp.sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_parameter_names_are_scikit_learns():
    ours = set(MLPClassifier().get_params())
    theirs = set(SkMLPClassifier().get_params()) - {"max_fun"}  # lbfgs only
    assert theirs <= ours
    assert ours - theirs == {"dropout", "clip_norm", "weight_decay", "standardize", "dtype", "schedule", "callbacks"}
    assert set(MLPRegressor().get_params()) == ours | {"loss"}


def test_fitted_attributes(digits):
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier((32, 16), max_iter=30, random_state=0).fit(X_train, y_train)
    assert clf.classes_.tolist() == list(range(10))
    assert clf.n_features_in_ == 64 and clf.n_layers_ == 4 and clf.n_outputs_ == 10
    assert clf.out_activation_ == "softmax"
    assert [W.shape for W in clf.coefs_] == [(64, 32), (32, 16), (16, 10)]
    assert [b.shape for b in clf.intercepts_] == [(32,), (16,), (10,)]
    assert len(clf.loss_curve_) == clf.n_iter_ == 30
    assert clf.t_ == 30 * X_train.shape[0]
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert isinstance(clf.model_, bpexp.MLP) and clf.model_.dtype == np.float64  # float64 data: "auto"
    assert clf.score(X_test, y_test) > 0.9
    clf.coefs_[0][...] = 0  # views into the model: editing coefs_ edits the model
    assert not clf.model_.weights[0][0].any()


def test_loss_curve_is_the_loss_bpexp_minimizes(iris):
    X, y = iris
    clf = MLPClassifier((8,), alpha=0.01, max_iter=5, random_state=0).fit(X, y)
    logs = clf.history_[-1]
    assert clf.loss_curve_[-1] == pytest.approx(logs["train_loss"] + logs["l2_penalty"])


def test_predict_proba_and_log_proba(iris):
    X, y = iris
    clf = MLPClassifier((8,), max_iter=50, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(clf.predict_log_proba(X), np.log(proba))
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])


def test_binary_string_labels_have_a_logistic_output(iris):
    X, y = iris
    labels = np.where(y == 0, "setosa", "other")
    clf = MLPClassifier((8,), learning_rate_init=0.02, max_iter=100, random_state=0).fit(X, labels.astype(object))
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 1
    assert clf.classes_.tolist() == ["other", "setosa"]
    assert clf.predict_proba(X).shape == (150, 2)
    assert clf.score(X, labels) == 1.0


def test_multilabel_targets():
    X, Y = make_multilabel_classification(n_samples=300, n_features=10, n_classes=4, random_state=0)
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier((32,), max_iter=200, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.classes_.tolist() == [0, 1, 2, 3]
    assert clf.predict(X).shape == (300, 4) and set(np.unique(clf.predict(X))) <= {0, 1}
    assert clf.predict_proba(X).shape == (300, 4)
    assert clf.score(X, Y) > 0.3  # subset accuracy: all four labels right
    assert (clf.predict(X) == Y).mean() > 0.8
    part = MLPClassifier((32,), random_state=0)
    for _ in range(3):
        part.partial_fit(X, Y)  # classes are implied by the indicator matrix
    assert part.n_iter_ == 3


def test_multi_output_regression():
    X, y = load_diabetes(return_X_y=True)
    Y = np.column_stack([y, -2 * y])
    reg = MLPRegressor(hidden_layer_sizes=(32,), standardize=True, max_iter=100, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (442, 2) and reg.predict(X).dtype == np.float64
    assert reg.n_outputs_ == 2 and reg.out_activation_ == "identity"
    assert reg.score(X, Y) > 0.4
    single = MLPRegressor(hidden_layer_sizes=(32,), standardize=True, max_iter=100, random_state=0).fit(X, y)
    assert single.predict(X).shape == (442,)


def test_huber_loss_regressor():
    X, y = load_diabetes(return_X_y=True)
    reg = MLPRegressor("huber", (16,), standardize=True, max_iter=30, random_state=0).fit(X, y)
    assert reg.model_.head.loss == "huber"


def test_same_random_state_same_model_and_clone_is_unfitted(iris):
    X, y = iris
    a = MLPClassifier((8,), max_iter=20, random_state=3).fit(X, y)
    b = clone(a)
    assert not hasattr(b, "model_") and b.get_params() == a.get_params()
    b.fit(X, y)
    np.testing.assert_array_equal(a.model_.params, b.model_.params)
    assert a.loss_curve_ == b.loss_curve_


def test_pickle_round_trip_keeps_predictions_and_coefs_views(iris):
    X, y = iris
    clf = MLPClassifier((8,), max_iter=20, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    again.partial_fit(X, y)
    np.testing.assert_array_equal(again.coefs_[0], again.model_.weights[0][0])


def test_pipeline_grid_search_and_cross_val_score(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=15, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(16,), (64,)],
                               "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3)
    grid.fit(X_train, y_train)
    assert set(grid.best_params_) == {"mlpclassifier__hidden_layer_sizes", "mlpclassifier__alpha"}
    assert grid.cv_results_["mean_test_score"].shape == (4,)
    assert grid.score(X_test, y_test) > 0.85
    reg = MLPRegressor(hidden_layer_sizes=(16,), standardize=True, learning_rate_init=0.01, max_iter=50,
                       random_state=0)
    scores = cross_val_score(reg,
                             *load_diabetes(return_X_y=True), cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.2)


# optuna_integration imports optuna.terminator, deprecated in Optuna 4.9: library noise.
@pytest.mark.filterwarnings("ignore:`optuna.terminator` module has been deprecated:FutureWarning")
def test_optuna_search_cv(iris):
    optuna = pytest.importorskip("optuna")
    from optuna.distributions import FloatDistribution, IntDistribution
    from optuna_integration import OptunaSearchCV

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # OptunaSearchCV is "experimental"
        search = OptunaSearchCV(
            MLPClassifier(max_iter=30, random_state=0),
            {"hidden_layer_sizes": IntDistribution(4, 32, log=True),
             "learning_rate_init": FloatDistribution(1e-3, 3e-2, log=True)},
            cv=3, n_trials=4, random_state=0,
        )
        search.fit(X, y)
    assert len(search.trials_) == 4 and all(t.state.name == "COMPLETE" for t in search.trials_)
    assert isinstance(search.best_estimator_, MLPClassifier)
    assert search.best_score_ > 0.6 and search.score(X, y) > 0.6


def test_partial_fit_continues_weights_and_optimizer_state(iris):
    X, y = iris
    clf = MLPClassifier((8,), random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 2 and clf.t_ == 300 and len(clf.loss_curve_) == 2
    assert clf.history_[-1]["epoch"] == 1
    opt_state = clf._optimizer_state["state"]
    assert opt_state["_t"] == 2 * 1  # Adam counted both calls' steps (one full batch each)


def test_partial_fit_equals_fit_epoch_by_epoch_for_sgd_without_shuffling(iris):
    X, y = iris
    options = dict(hidden_layer_sizes=(8,), solver="sgd", momentum=0.9, batch_size=50, shuffle=False,
                   random_state=0, n_iter_no_change=100)
    full = MLPClassifier(max_iter=3, **options).fit(X, y)
    part = MLPClassifier(**options)
    for _ in range(3):
        part.partial_fit(X, y, classes=[0, 1, 2])
    np.testing.assert_allclose(part.model_.params, full.model_.params, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(part.loss_curve_, full.loss_curve_, rtol=1e-12)


def test_partial_fit_ignores_early_stopping_as_scikit_learn_does(iris):
    X, y = iris
    clf = MLPClassifier((8,), early_stopping=True, random_state=0)
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert clf.n_iter_ == 3 and clf.validation_scores_ == [] and clf.best_loss_ is None


def test_warm_start_continues_from_the_weights(iris):
    X, y = iris
    clf = MLPClassifier((8,), max_iter=5, warm_start=True, random_state=0).fit(X, y)
    before = clf.model_.params.copy()
    clf.fit(X, y)
    assert clf.n_iter_ == 10 and len(clf.loss_curve_) == 10
    assert clf.loss_curve_[5] < clf.loss_curve_[0]
    assert not np.array_equal(before, clf.model_.params)
    with pytest.raises(ValueError, match="warm_start can only be used where y has the same classes"):
        clf.fit(X, np.where(y == 2, 5, y))


def test_tol_stops_training_and_no_convergence_warns(iris):
    X, y = iris
    stopped = MLPClassifier((8,), max_iter=500, tol=10.0, n_iter_no_change=3, random_state=0).fit(X, y)
    # Epoch 1 sets best_loss_; epochs 2-5 do not improve on it by 10.0, and 4 > n_iter_no_change.
    assert stopped.n_iter_ == 5
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(3\\) reached"):
        MLPClassifier((8,), max_iter=3, random_state=0).fit(X, y)


def test_early_stopping_keeps_the_best_validation_weights(digits):
    X_train, _, y_train, _ = digits
    clf = MLPClassifier((32,), max_iter=60, early_stopping=True, n_iter_no_change=3, random_state=0)
    clf.fit(X_train, y_train)
    assert clf.best_loss_ is None and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.t_ == clf.n_iter_ * round(0.9 * X_train.shape[0])


def test_adaptive_learning_rate_divides_by_five(iris):
    X, y = iris
    clf = MLPClassifier((8,), solver="sgd", learning_rate="adaptive", learning_rate_init=0.1, tol=10.0,
                        n_iter_no_change=1, max_iter=6, random_state=0).fit(X, y)
    lrs = clf.history_["lr"]
    # No epoch improves by tol: after epochs 3 and 5 the count (2) exceeds n_iter_no_change (1).
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.02, 0.02, 0.004])


def test_invscaling_learning_rate(iris):
    X, y = iris
    clf = MLPClassifier((8,), solver="sgd", learning_rate="invscaling", learning_rate_init=0.5, power_t=0.5,
                        max_iter=3, random_state=0).fit(X, y)
    assert clf.history_["lr"] == pytest.approx([0.5, 0.5 / 151 ** 0.5, 0.5 / 301 ** 0.5])


def test_bpexp_extras_schedule_callbacks_dropout_clip_adamw_rmsprop(iris):
    X, y = iris
    seen = []
    cb = bpexp.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    clf = MLPClassifier((8,), solver="adamw", weight_decay=0.01, dropout=0.2, clip_norm=1.0, schedule="cosine",
                        callbacks=[cb], max_iter=5, random_state=0).fit(X, y)
    assert seen == [1, 2, 3, 4, 5] and clf.model_.dropout == [0.2]
    assert clf.history_["lr"][-1] < clf.history_["lr"][0]
    MLPClassifier((8,), solver="rmsprop", max_iter=3, random_state=0).fit(X, y)
    es = MLPClassifier((8,), max_iter=200, callbacks=[bpexp.EarlyStopping("train_loss", patience=1, min_delta=1.0)],
                       random_state=0).fit(X, y)
    assert es.n_iter_ == 2


def test_verbose_prints_scikit_learns_lines(iris, capsys):
    X, y = iris
    MLPClassifier((8,), max_iter=2, verbose=True, random_state=0).fit(X, y)
    assert capsys.readouterr().out.startswith("Iteration 1, loss = ")


def test_model_folder_predicts_like_the_estimator(iris, tmp_path):
    X, y = iris
    clf = MLPClassifier((8,), max_iter=20, random_state=0).fit(X, np.array(["a", "b", "c"])[y])
    clf.model_.save(tmp_path / "m")
    loaded = bpexp.load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize(("params", "message"), [
    ({"solver": "lbfgs"}, "solver='lbfgs' is not supported \\(lbfgs is not available in bpexp\\)"),
    ({"solver": "newton"}, "solver='newton' is not supported"),
    ({"activation": "softplus"}, "activation='softplus' is not supported"),
    ({"learning_rate": "fast"}, "learning_rate='fast' is not supported"),
    ({"alpha": -1.0}, "alpha must be a number in \\[0, inf\\), got -1.0"),
    ({"learning_rate_init": 0.0}, "learning_rate_init must be a number in \\(0, inf\\)"),
    ({"momentum": 1.0}, "momentum must be a number in \\[0, 1\\)"),
    ({"beta_2": 1.5}, "beta_2 must be a number"),
    ({"epsilon": 0.0}, "epsilon must be a number in \\(0"),
    ({"validation_fraction": 1.0}, "validation_fraction must be a number in \\(0, 1\\)"),
    ({"max_iter": 0}, "max_iter must be an integer >= 1, got 0"),
    ({"n_iter_no_change": 0.5}, "n_iter_no_change must be an integer"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1 or 'auto', got 0"),
    ({"batch_size": "big"}, "batch_size must be an integer >= 1 or 'auto', got 'big'"),
    ({"clip_norm": -1.0}, "clip_norm must be a number in \\(0"),
    ({"hidden_layer_sizes": (8, 0)}, "hidden_layer_sizes must be positive integers, got \\(8, 0\\)"),
    ({"dtype": "float16"}, "dtype='float16' is not supported"),
    ({"weight_decay": 0.1}, "weight_decay=0.1 is decoupled weight decay, used by solver='adamw' only"),
    ({"schedule": "cosine", "solver": "sgd", "learning_rate": "adaptive"}, "give either schedule='cosine' or"),
    ({"callbacks": [print]}, "callbacks must be a list of bpexp.Callback objects"),
    ({"dropout": 1.0}, "dropout rate must be in \\[0, 1\\)"),
])
def test_bad_parameters_are_named(iris, params, message):
    X, y = iris
    with pytest.raises(ValueError, match=message):
        MLPClassifier(**params).fit(X, y)


def test_bad_regressor_loss_and_targets_are_named(iris):
    X, y = iris
    with pytest.raises(ValueError, match="loss='poisson' is not supported \\(Poisson regression is not available"):
        MLPRegressor("poisson").fit(X, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier(max_iter=2).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="only 1 class"):
        MLPClassifier(max_iter=2).fit(X, np.zeros(150))
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="multiclass-multioutput targets are not supported"):
        MLPClassifier(max_iter=2).fit(X, np.column_stack([y, y]))
    clf = MLPClassifier((4,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="classes=\\[0, 1\\] is not the same as on the first call"):
        clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.predict(X[:, :3])
    reg = MLPRegressor(hidden_layer_sizes=(4,), random_state=0).partial_fit(X, y)
    with pytest.raises(ValueError, match="y has 2 output\\(s\\), but the model was trained on 1"):
        reg.partial_fit(X, np.column_stack([y, y]))
    with pytest.raises(ValueError, match="validation set is too small or too large: validation_fraction=0.01 of 60"):
        MLPClassifier(early_stopping=True, validation_fraction=0.01).fit(X[:60], y[:60])


def test_large_batch_size_is_clipped_with_a_warning(iris):
    X, y = iris
    with pytest.warns(UserWarning, match="batch_size=1000 larger than the 150 training samples"):
        MLPClassifier((4,), batch_size=1000, max_iter=2, random_state=0).fit(X, y)


def test_sparse_input_is_densified_and_a_huge_one_refused(iris):
    import scipy.sparse as sp

    X, y = iris
    dense = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    sparse = MLPClassifier((8,), max_iter=5, random_state=0).fit(sp.csr_matrix(X), y)
    np.testing.assert_array_equal(sparse.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X))
    huge = sp.csr_matrix(([1.0, 2.0], ([0, 99_999], [0, 9_999])), shape=(100_000, 10_000))  # 8 GB dense
    with pytest.raises(ValueError, match="sparse X of shape \\(100000, 10000\\) would take 7.5 GB"):
        MLPRegressor().fit(huge, np.zeros(100_000))
