"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn estimators trained by bpexp."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d

from bpexp.sklearn._base import BaseMLP

#: MLPRegressor's losses: scikit-learn's squared error (half the mean squared error, as
#: scikit-learn computes it) and bpexp's Huber loss.
LOSSES = {"squared_error": "mse", "huber": "huber"}

_PARAMETERS = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Width of each hidden layer (``()`` for none).
    activation : str or sequence of str, default "relu"
        scikit-learn's ``identity``, ``logistic``, ``tanh``, ``relu``, or bpexp's ``sigmoid``,
        ``leaky_relu``, ``gelu``; one per hidden layer if a sequence.
    solver : {"adam", "sgd", "adamw", "rmsprop"}, default "adam"
        ``lbfgs`` is not available.
    alpha : float, default 1e-4
        L2 penalty ``alpha/2 * sum(W**2)`` on the weights (not biases) added to the *mean*
        loss, whatever the batch size. scikit-learn divides its penalty by the batch size
        (``alpha/(2*batch) * sum(W**2)``), so the same regularization as scikit-learn at batch
        size ``B`` is ``alpha = alpha_sklearn / B`` here (1e-4 with batches of 200 is 5e-7).
    batch_size : int or "auto", default "auto"
        ``min(200, n_samples)`` for "auto"; larger values are clipped with a warning.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        scikit-learn's schedules, for ``solver="sgd"`` only (as in scikit-learn).
    learning_rate_init : float, default 1e-3
    power_t : float, default 0.5
        Exponent of ``"invscaling"``: ``lr = learning_rate_init / (t + 1) ** power_t``, ``t`` the
        samples seen.
    max_iter : int, default 200
        Epochs (``fit``); ``partial_fit`` runs one.
    shuffle : bool, default True
    random_state : int, RandomState or None
        Seeds the initial weights, the shuffling, dropout and the early-stopping split.
    tol : float, default 1e-4
    verbose : bool, default False
        Print the loss (and validation score) after every epoch.
    warm_start : bool, default False
        ``fit`` continues from the current weights (with a fresh optimizer state, as scikit-learn).
    momentum : float, default 0.9
    nesterovs_momentum : bool, default True
        SGD momentum, Nesterov's if true (``solver="sgd"`` only).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data, stop when the validation score
        (accuracy / R²) has not improved by ``tol`` for more than ``n_iter_no_change`` epochs,
        and keep the best epoch's weights. Without it the same rule watches the training loss.
    validation_fraction : float, default 0.1
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        Adam's (and AdamW's) moment decay rates and epsilon; epsilon is RMSprop's too.
    n_iter_no_change : int, default 10
    dropout : float or sequence of float, default 0.0
        bpexp: inverted dropout after each hidden layer, during training only.
    clip_norm : float, optional
        bpexp: rescale each batch gradient to at most this global norm.
    weight_decay : float, default 0.0
        bpexp: AdamW's decoupled weight decay (``solver="adamw"`` only).
    standardize : bool, default False
        bpexp: learn a per-feature standardization (and, for regression, of the targets) from
        the training data and keep it in the model, so it takes raw inputs. (Tables go through
        bpexp's table encoder, which standardizes their numeric columns anyway.)
    dtype : {"auto", "float32", "float64"}, default "auto"
        bpexp: the precision of the weights and of training. "auto" is scikit-learn's rule
        (float32 input trains in float32, any other in float64); "float32" trains faster on
        float64 data (bpexp's own default), at float32's precision: predictions then differ
        in the 7th digit between batches of different sizes, as float32 matrix products do.
    schedule : str or bpexp schedule, optional
        bpexp: any bpexp learning-rate schedule (``"cosine"``, ``bpexp.nn.StepDecay(...)``, ...),
        for every solver; instead of ``learning_rate``.
    callbacks : list of bpexp.Callback, optional
        bpexp: extra callbacks of the trainer (``bpexp.EarlyStopping``, ``bpexp.ProgressBar``, ...).

    Attributes
    ----------
    loss_curve_ : list of float
        The training loss (with the L2 term) after each epoch.
    best_loss_ : float or None
        The lowest of them (None with early stopping).
    validation_scores_, best_validation_score_ : list of float, float or None
        With early stopping: the score on the held-out split after each epoch, and the best.
    n_iter_ : int
        Epochs run (over all ``fit`` calls of a warm start or ``partial_fit`` calls).
    t_ : int
        Training samples seen by the solver.
    coefs_, intercepts_ : list of ndarray
        Per layer ``W`` of shape (fan_in, fan_out) and ``b``: views into :attr:`model_`.
    n_features_in_, feature_names_in_ : int, ndarray
    n_layers_, n_outputs_ : int
    out_activation_ : str
        ``"softmax"``, ``"logistic"`` or ``"identity"``.
    model_ : bpexp.MLP
        The trained bpexp model: ``model_.save(dir)``, ``bpexp.load_model``, the MLflow pyfunc
        model (:func:`bpexp.sklearn.log_estimator`) and ``bpexp export`` need no pickle.
    history_ : bpexp.History
        The per-epoch logs of the last ``fit``/``partial_fit`` call.
"""


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier trained by bpexp's NumPy backprop trainer.

    A drop-in replacement for :class:`sklearn.neural_network.MLPClassifier`: the same
    parameter names and fitted attributes, faster training, plus
    bpexp's dropout, gradient clipping, AdamW, RMSprop, schedules and callbacks.
    Targets are class labels (any sortable values) or, for multilabel, a 0/1 matrix;
    binary and multilabel models have a logistic output, multiclass a softmax.
    {parameters}
    classes_ : ndarray
        The class labels (for multilabel: ``0 .. n_labels - 1``).

    Examples
    --------
    >>> from bpexp.sklearn import MLPClassifier
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier((32,), max_iter=300, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    _score_key = "val_accuracy"

    def _prepare_targets(self, y, first: bool, incremental: bool, classes):
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind == "multiclass-multioutput":
            raise ValueError("multiclass-multioutput targets are not supported: y must be class labels "
                             "or a 0/1 multilabel indicator matrix")
        if y.dtype == object:
            y = _plain_labels(y)
        if not first:
            self._check_same_targets(y, kind, incremental, classes)
        elif incremental and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return y

    def _check_same_targets(self, y, kind, incremental, classes) -> None:
        multilabel = self.model_.task == "multilabel"
        if multilabel != (kind == "multilabel-indicator"):
            raise ValueError(f"y is {kind}, but the model was trained on "
                             f"{'multilabel' if multilabel else 'single-label'} targets")
        if multilabel:
            return
        if incremental and classes is not None and not np.array_equal(np.unique(_plain_labels(classes)),
                                                                        self.classes_):
            raise ValueError(f"classes={list(classes)!r} is not the same as on the first call to partial_fit, "
                             f"was {self.classes_.tolist()!r}")
        unknown = np.setdiff1d(y, self.classes_)
        if not incremental and unknown.size:  # warm start: scikit-learn insists on the same classes
            raise ValueError(f"warm_start can only be used where y has the same classes as in the previous "
                             f"call to fit; previously got {self.classes_.tolist()}, y has {np.unique(y).tolist()}")

    def _head(self, y, classes):
        if type_of_target(y) == "multilabel-indicator":
            return "multilabel", y.shape[1], np.arange(y.shape[1])
        labels = np.unique(y if classes is None else _plain_labels(classes))
        if labels.size < 2:
            raise ValueError(f"y has only 1 class ({labels.tolist()[0]!r}); a classifier needs at least two")
        unknown = np.setdiff1d(y, labels)
        if unknown.size:
            raise ValueError(f"y has labels {unknown.tolist()} that are not in classes={labels.tolist()}")
        return "classification", (1 if labels.size == 2 else labels.size), labels

    @property
    def classes_(self):
        check_is_fitted(self)
        return self.model_.classes_

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``, continuing the weights and the optimizer's state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like, optional
            All the class labels; required on the first call (not for multilabel ``y``).

        Returns
        -------
        self
        """
        if classes is None and not hasattr(self, "model_") and type_of_target(y) == "multilabel-indicator":
            classes = np.arange(np.shape(y)[1])
        return self._partial_fit(X, y, classes)

    def predict(self, X):
        """Class labels (a 0/1 matrix for multilabel models)."""
        X = self._raw_outputs(X)
        return self.model_.predict(X)

    def predict_proba(self, X):
        """Probabilities, one column per class of :attr:`classes_` (per label for multilabel)."""
        X = self._raw_outputs(X)
        return self.model_.predict_proba(X).astype(np.float64)

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor trained by bpexp's NumPy backprop trainer.

    A drop-in replacement for :class:`sklearn.neural_network.MLPRegressor` (squared error,
    identity output), with one output per column of ``y`` for multi-output regression.

    Parameters
    ----------
    loss : {"squared_error", "huber"}, default "squared_error"
        ``"huber"`` (bpexp: Huber loss with delta 1) is robust to outliers; scikit-learn's
        ``"poisson"`` is not available.
    {parameters}
    Examples
    --------
    >>> from bpexp.sklearn import MLPRegressor
    >>> from sklearn.datasets import load_diabetes
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = MLPRegressor((64,), standardize=True, max_iter=200, random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.5
    True
    """

    _score_key = "val_r2"

    # scikit-learn (1.9) puts ``loss`` first; the rest is the shared signature, spelled out
    # because scikit-learn reads the parameters from ``__init__``'s signature.
    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, dropout=0.0, clip_norm=None,
                 weight_decay=0.0, standardize=False, dtype="auto", schedule=None, callbacks=None):
        self.loss = loss
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose, warm_start=warm_start,
            momentum=momentum, nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            n_iter_no_change=n_iter_no_change, dropout=dropout, clip_norm=clip_norm, weight_decay=weight_decay,
            standardize=standardize, dtype=dtype, schedule=schedule, callbacks=callbacks)

    def _check_params(self):
        hint = "Poisson regression is not available in bpexp" if self.loss == "poisson" else ""
        if not isinstance(self.loss, str) or self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r} is not supported{' (' + hint + ')' if hint else ''}; "
                             f"expected one of {list(LOSSES)}")
        super()._check_params()

    def _model_options(self):
        return {"output": "identity", "loss": LOSSES[self.loss]}

    def _prepare_targets(self, y, first, incremental, classes):
        if not first and (y.shape[1] if y.ndim == 2 else 1) != self.n_outputs_:
            raise ValueError(f"y has {y.shape[1] if y.ndim == 2 else 1} output(s), but the model was trained "
                             f"on {self.n_outputs_}")
        return y

    def _head(self, y, classes):
        return "regression", (y.shape[1] if y.ndim == 2 else 1), None

    def partial_fit(self, X, y):
        """One epoch over ``(X, y)``, continuing the weights and the optimizer's state.

        Returns
        -------
        self
        """
        return self._partial_fit(X, y)

    def predict(self, X):
        """Predicted values (float64): shape (n_samples,) for one output, (n_samples, n_outputs) otherwise."""
        X = self._raw_outputs(X)
        return self.model_.predict(X).astype(np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def _plain_labels(y):
    """Labels of an object array (pandas strings, say) as a plain string/number array bpexp can save."""
    y = np.asarray(y)
    return np.array(y.tolist()) if y.dtype == object else y


MLPClassifier.__doc__ = MLPClassifier.__doc__.replace("{parameters}", _PARAMETERS)
MLPRegressor.__doc__ = MLPRegressor.__doc__.replace(
    "{parameters}", _PARAMETERS.replace("    Parameters\n    ----------\n", "", 1))
