"""What the two estimators share: parameters, their checks, and the fit machinery around :func:`bpexp.fit`."""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from bpexp.nn import MLP, SGD, Adam, AdamW, RMSprop, Schedule, get_schedule
from bpexp.sklearn._inputs import NO_Y, check_array_input, check_table_input, fit_table_encoder, is_mixed_table
from bpexp.sklearn._training import AdaptiveLR, CarryOptimizerState, InvScaling, SklearnConvergence
from bpexp.train import Callback
from bpexp.train import fit as bpexp_fit

#: scikit-learn's activation names, and bpexp's own, to bpexp's names.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "sigmoid": "sigmoid", "leaky_relu": "leaky_relu", "gelu": "gelu"}
SOLVERS = ("adam", "sgd", "adamw", "rmsprop")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
DTYPES = ("auto", "float32", "float64")


class BaseMLP(BaseEstimator):
    """Base class of :class:`~bpexp.sklearn.MLPClassifier` and :class:`~bpexp.sklearn.MLPRegressor`.

    Subclasses set ``_score_key`` and implement ``_targets`` (validate ``y`` and
    build the model) and ``_update_targets`` (check ``y`` against a fitted model).
    """

    _score_key = ""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        dropout=0.0,
        clip_norm=None,
        weight_decay=0.0,
        standardize=False,
        dtype="auto",
        schedule=None,
        callbacks=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.clip_norm = clip_norm
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.dtype = dtype
        self.schedule = schedule
        self.callbacks = callbacks

    # ------------------------------------------------------------------ public API
    def fit(self, X, y):
        """Train for up to ``max_iter`` epochs (from the current weights if ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)

    def _partial_fit(self, X, y, classes=None):
        return self._fit(X, y, incremental=True, classes=classes)

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        """Raise ``ValueError`` naming the parameter and its value when one is out of range."""
        _choice("solver", self.solver, SOLVERS, "lbfgs is not available in bpexp" if self.solver == "lbfgs" else "")
        _choice("learning_rate", self.learning_rate, LEARNING_RATES)
        _choice("dtype", str(self.dtype), DTYPES)
        for name, low, high in (("alpha", 0, None), ("learning_rate_init", 0, None), ("power_t", 0, None),
                                ("tol", 0, None), ("momentum", 0, 1), ("beta_1", 0, 1), ("beta_2", 0, 1),
                                ("epsilon", 0, None), ("weight_decay", 0, None)):
            _number(name, getattr(self, name), low, high, strict_low=name in ("learning_rate_init", "epsilon"),
                    strict_high=name in ("momentum", "beta_1", "beta_2"))
        _number("validation_fraction", self.validation_fraction, 0, 1, strict_low=True, strict_high=True)
        _integer("max_iter", self.max_iter, 1)
        _integer("n_iter_no_change", self.n_iter_no_change, 1)
        if self.batch_size != "auto":
            _integer("batch_size", self.batch_size, 1, "or 'auto'")
        if self.clip_norm is not None:
            _number("clip_norm", self.clip_norm, 0, None, strict_low=True)
        if self.weight_decay and self.solver != "adamw":
            raise ValueError(f"weight_decay={self.weight_decay!r} is decoupled weight decay, used by "
                             f"solver='adamw' only (solver={self.solver!r}); use alpha for an L2 penalty")
        if self.schedule is not None and self.learning_rate != "constant":
            raise ValueError(f"give either schedule={self.schedule!r} or learning_rate={self.learning_rate!r}, "
                             "not both")
        if self.callbacks is not None and not all(isinstance(c, Callback) for c in self.callbacks):
            raise ValueError(f"callbacks must be a list of bpexp.Callback objects, got {self.callbacks!r}")

    def _model_dtype(self, X) -> str:
        """``dtype``; "auto" is scikit-learn's rule: float32 input trains in float32, anything else in float64."""
        if self.dtype == "auto":
            return "float32" if getattr(X, "dtype", None) == np.float32 else "float64"
        return str(self.dtype)

    def _model_options(self) -> dict:
        return {}

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        if not all(isinstance(s, numbers.Integral) and s >= 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    def _activation(self):
        acts = [self.activation] if isinstance(self.activation, str) else list(self.activation)
        for a in acts:
            _choice("activation", a, tuple(ACTIVATIONS))
        mapped = [ACTIVATIONS[a] for a in acts]
        return mapped[0] if isinstance(self.activation, str) else mapped

    def _optimizer(self):
        lr, eps = float(self.learning_rate_init), float(self.epsilon)
        if self.solver == "sgd":
            return SGD(lr=lr, momentum=self.momentum, nesterov=bool(self.nesterovs_momentum and self.momentum > 0))
        if self.solver == "adam":
            return Adam(lr=lr, beta1=self.beta_1, beta2=self.beta_2, eps=eps)
        if self.solver == "adamw":
            return AdamW(lr=lr, beta1=self.beta_1, beta2=self.beta_2, eps=eps, weight_decay=self.weight_decay)
        return RMSprop(lr=lr, eps=eps)

    def _schedule(self, n_samples: int):
        """The learning-rate schedule of this call; scikit-learn's ``learning_rate`` is for ``sgd`` only."""
        if self.schedule is not None:
            return self.schedule if isinstance(self.schedule, Schedule) else get_schedule(self.schedule)
        if self.solver != "sgd" or self.learning_rate == "constant":
            return None
        if self.learning_rate == "invscaling":
            return InvScaling(self.power_t, n_samples, self.t_)
        return AdaptiveLR(self._adaptive_lr)

    def _batch_size(self, n_samples: int) -> int:
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(f"Got batch_size={self.batch_size} larger than the {n_samples} training samples; "
                          "it is clipped to the sample size", UserWarning, stacklevel=3)
        return min(int(self.batch_size), n_samples)

    # ------------------------------------------------------------------ fitting
    def _check_input(self, X, y=NO_Y, *, reset: bool):
        """Checked ``X`` (and ``y``): a numeric array, or the raw table of a model with a table encoder."""
        regression = self._score_key == "val_r2"
        table = is_mixed_table(X) if reset else self.model_.encoder is not None
        if table:
            return check_table_input(self, X, y, reset=reset, regression=regression)
        return check_array_input(self, X, y, reset=reset, regression=regression)

    def _fit(self, X, y, *, incremental: bool, classes=None):
        self._check_params()
        first = not hasattr(self, "model_") or not (incremental or self.warm_start)
        X, y = self._check_input(X, y, reset=first)
        y = self._prepare_targets(y, first, incremental, classes)
        if first:
            self._rng = check_random_state(self.random_state)
        early = bool(self.early_stopping) and not incremental
        X_train, y_train, validation = self._split(X, y) if early else (X, y, None)
        if first:
            self._initialize(X_train, y, classes)
        adaptive_before = self._adaptive_lr
        schedule = self._schedule(X_train.shape[0])
        stopping = SklearnConvergence(self, self._score_key if early else None,
                                      schedule if isinstance(schedule, AdaptiveLR) else None)
        carry = CarryOptimizerState(self._optimizer_state if incremental else None)
        callbacks = [carry, stopping, *(self.callbacks or [])]
        epochs = 1 if incremental else int(self.max_iter)
        try:
            history = bpexp_fit(
                self.model_, X_train, y_train, validation_data=validation, optimizer=self._optimizer(),
                epochs=epochs, batch_size=self._batch_size(X_train.shape[0]), l2=float(self.alpha),
                clip_norm=self.clip_norm, schedule=schedule, callbacks=callbacks,
                seed=int(self._rng.randint(np.iinfo(np.int32).max)), shuffle=bool(self.shuffle),
            )
        finally:
            self._optimizer_state = carry.state
        self._adaptive_lr = schedule.current if isinstance(schedule, AdaptiveLR) else adaptive_before
        self._after_fit(history, X_train.shape[0])
        if not incremental and not stopping.converged and len(history) == epochs:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        return self

    def _initialize(self, X, y, classes) -> None:
        """A fresh model (and table encoder, learned from the training rows) and fresh training state."""
        task, n_outputs, labels = self._head(y, classes)
        self.n_outputs_ = n_outputs
        self.out_activation_ = {"regression": "identity", "multilabel": "logistic"}.get(
            task, "logistic" if n_outputs == 1 else "softmax")
        encoder = fit_table_encoder(X) if is_mixed_table(X) else None
        sizes = [X.shape[1] if encoder is None else encoder.n_features_out, *self._hidden_sizes(), n_outputs]
        self.n_layers_ = len(sizes)
        self.model_ = MLP(sizes, activation=self._activation(), task=task, dropout=self.dropout,
                          standardize=bool(self.standardize) and encoder is None, encoder=encoder,
                          dtype=self._model_dtype(X), **self._model_options(),
                          seed=int(self._rng.randint(np.iinfo(np.int32).max)))
        self.model_.classes_ = labels
        self.loss_curve_, self.n_iter_, self.t_ = [], 0, 0
        self._no_improvement_count, self._optimizer_state = 0, None
        self._adaptive_lr = None
        early = bool(self.early_stopping)
        self._best_loss = np.inf  # watched by partial_fit even with early_stopping (which it does not use)
        self.best_loss_ = None if early else np.inf
        self.validation_scores_ = [] if early else None
        self.best_validation_score_ = -np.inf if early else None

    def _split(self, X, y):
        """scikit-learn's validation split for early stopping (stratified for single-output classifiers)."""
        n = len(X)
        n_val = math.ceil(self.validation_fraction * n)  # as train_test_split counts
        if n_val < 2 or n_val >= n:
            raise ValueError(f"The validation set is too small or too large: validation_fraction="
                             f"{self.validation_fraction} of {n} samples is {n_val}; it needs at least 2 "
                             "and must leave training samples")
        stratify = y if self._score_key == "val_accuracy" and y.ndim == 1 else None
        X_train, X_val, y_train, y_val = train_test_split(
            X, y, random_state=self._rng, test_size=self.validation_fraction, stratify=stratify)
        return X_train, y_train, (X_val, y_val)

    def _after_fit(self, history, n_train: int) -> None:
        self.n_iter_ += len(history)
        self.t_ += len(history) * n_train
        self.history_ = history
        self.best_loss_ = None if self.early_stopping else float(self._best_loss)
        self._publish_weights()

    def _publish_weights(self) -> None:
        """``coefs_``/``intercepts_`` as views of the model's weights (editing them edits the model)."""
        self.coefs_ = [W for W, _ in self.model_.weights]
        self.intercepts_ = [b for _, b in self.model_.weights]

    def __setstate__(self, state):
        super().__setstate__(state)
        if "model_" in state:  # pickling copied coefs_ apart from the model: make them views again
            self._publish_weights()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified: bpexp trains on dense arrays
        return tags

    def _raw_outputs(self, X):
        check_is_fitted(self)
        return self._check_input(X, reset=False)



def _choice(name, value, allowed, hint: str = "") -> None:
    if not isinstance(value, str) or value not in allowed:
        extra = f" ({hint})" if hint else ""
        raise ValueError(f"{name}={value!r} is not supported{extra}; expected one of {list(allowed)}")


def _number(name, value, low, high, *, strict_low=False, strict_high=False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = (value > low if strict_low else value >= low) and (
            high is None or (value < high if strict_high else value <= high))
    if not ok:
        lo, hi = "(" if strict_low else "[", ")" if strict_high or high is None else "]"
        raise ValueError(f"{name} must be a number in {lo}{low}, {'inf' if high is None else high}{hi}, "
                         f"got {value!r}")


def _integer(name, value, low, extra: str = "") -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}{' ' + extra if extra else ''}, got {value!r}")
