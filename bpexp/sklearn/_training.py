"""scikit-learn's training rules as bpexp callbacks and schedules.

scikit-learn's ``MLPClassifier`` stops when the loss (or the validation score,
with ``early_stopping``) has not improved by ``tol`` for more than
``n_iter_no_change`` epochs, divides an ``"adaptive"`` learning rate by 5
instead of stopping, and decays an ``"invscaling"`` one with the number of
samples seen. bpexp's :class:`~bpexp.EarlyStopping` has slightly different
semantics (its best value moves only on an improvement larger than
``min_delta``; patience is ``>=``), so the estimators implement scikit-learn's
rule here, on top of bpexp's callback protocol, rather than change it.
"""

from __future__ import annotations

import numpy as np

from bpexp.nn.schedules import Schedule
from bpexp.train.callbacks import Callback

#: scikit-learn's floor for the adaptive learning rate: below it, training stops.
ADAPTIVE_MIN_LR = 1e-6


class InvScaling(Schedule):
    """``lr = lr_init / (t + 1) ** power_t`` with ``t`` the training samples seen before the epoch.

    ``samples_before`` carries ``t`` over from earlier ``partial_fit``/warm-start calls.
    """

    name = "invscaling"

    def __init__(self, power_t: float, samples_per_epoch: int, samples_before: int = 0):
        self.power_t, self.samples_per_epoch, self.samples_before = power_t, samples_per_epoch, samples_before

    def lr_for_epoch(self, epoch):
        t = self.samples_before + (epoch - 1) * self.samples_per_epoch
        return self.base_lr / (t + 1) ** self.power_t


class AdaptiveLR(Schedule):
    """A learning rate that :class:`SklearnConvergence` divides by 5 when progress stalls."""

    name = "adaptive"

    def __init__(self, current: float | None = None):
        self.current = current

    def reset(self, base_lr, epochs):
        super().reset(base_lr, epochs)
        if self.current is None:
            self.current = base_lr

    def lr_for_epoch(self, epoch):
        return self.current


class SklearnConvergence(Callback):
    """Records the loss curve and applies scikit-learn's ``tol`` / ``n_iter_no_change`` rule.

    The state (``loss_curve_``, the best loss, ``validation_scores_``,
    ``best_validation_score_``, the no-improvement count) lives on the estimator,
    so ``partial_fit`` and warm starts continue it as scikit-learn does.

    Parameters
    ----------
    est : the estimator being fitted
    score_key : str or None
        The validation log to watch (``val_accuracy``, ``val_r2``) when early
        stopping is on; ``None`` watches the training loss (with its L2 term).
    adaptive : AdaptiveLR or None
    """

    def __init__(self, est, score_key: str | None, adaptive: AdaptiveLR | None):
        self.est, self.score_key, self.adaptive = est, score_key, adaptive
        self.converged = False

    def on_train_begin(self, trainer):
        super().on_train_begin(trainer)
        self._best_params = None

    def on_epoch_end(self, epoch, logs):
        est = self.est
        loss = float(logs["train_loss"] + logs.get("l2_penalty", 0.0))
        est.loss_curve_.append(loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_ + epoch}, loss = {loss:.8f}")
        if self.score_key is not None:
            self._watch_score(float(logs[self.score_key]))
        else:
            if loss > est._best_loss - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            est._best_loss = min(est._best_loss, loss)
        if est._no_improvement_count > est.n_iter_no_change:
            self._stalled()

    def _watch_score(self, score: float) -> None:
        est = self.est
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {score:f}")
        if score < est.best_validation_score_ + est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            params = self.trainer.model.params
            if self._best_params is None:
                self._best_params = np.empty_like(params)
            np.copyto(self._best_params, params)

    def _stalled(self) -> None:
        est = self.est
        what = "Validation score" if self.score_key is not None else "Training loss"
        msg = (f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} "
               "consecutive epochs.")
        if self.adaptive is not None and self.adaptive.current > ADAPTIVE_MIN_LR:
            self.adaptive.current /= 5.0
            est._no_improvement_count = 0
            if est.verbose:
                print(f"{msg} Setting learning rate to {self.adaptive.current:f}")
            return
        if est.verbose:
            print(f"{msg} Stopping.")
        self.converged = True
        self.trainer.stop(msg + " Stopping.")

    def on_train_end(self, history):
        # With early stopping, scikit-learn returns the weights of the best validation score.
        if history.status != "failed" and self._best_params is not None:
            np.copyto(self.trainer.model.params, self._best_params)


class CarryOptimizerState(Callback):
    """Carries the optimizer's state (moments, step counter) from one ``fit`` call to the next.

    :func:`bpexp.fit` gives its optimizer fresh state at the start of every call;
    ``partial_fit`` must continue where the last call left off. The state is the
    optimizer's private attributes, put back after ``fit`` set it up and before the
    first step (``on_train_begin``), so nothing in the optimizers or the loop changes.
    A different solver or parameter count starts fresh.
    """

    def __init__(self, saved: dict | None):
        self.saved = saved
        self.state: dict | None = None

    def on_train_begin(self, trainer):
        super().on_train_begin(trainer)
        opt, saved = trainer.optimizer, self.saved
        if saved and saved["type"] is type(opt) and saved["n_params"] == trainer.model.params.size:
            vars(opt).update(saved["state"])

    def on_train_end(self, history):
        opt = self.trainer.optimizer
        state = {k: v for k, v in vars(opt).items() if k.startswith("_")}
        self.state = {"type": type(opt), "n_params": self.trainer.model.params.size, "state": state}
