"""The epoch loop: seeded mini-batches, validation, callbacks, divergence guard."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from bpexp.errors import InvalidInputError, TrainingDivergedError
from bpexp.metrics import head_metrics
from bpexp.nn.optimizers import Optimizer, get_optimizer
from bpexp.nn.schedules import Schedule, get_schedule
from bpexp.train.callbacks import Callback
from bpexp.train.history import History
from bpexp.train.threads import BlasThreads, check_threads, limit_blas_threads

__all__ = ["Trainer", "fit", "limit_blas_threads"]


class Trainer:
    """State shared with callbacks during one :func:`fit` call."""

    def __init__(self, model, epochs: int, optimizer: Optimizer, schedule: Schedule, history: History):
        self.model, self.epochs, self.optimizer = model, epochs, optimizer
        self.schedule, self.history = schedule, history
        self.stop_training = False
        self.error: BaseException | None = None

    def stop(self, reason: str = "stopped by a callback") -> None:
        """Ask the loop to end after the current epoch."""
        self.stop_training = True
        self.history.stop_reason = reason


def fit(
    model,
    X,
    y,
    *,
    validation_data: tuple | None = None,
    optimizer: str | Optimizer = "sgd",
    lr: float | None = None,
    epochs: int = 10,
    batch_size: int = 32,
    l2: float = 0.0,
    clip_norm: float | None = None,
    schedule: str | Schedule | None = None,
    callbacks: Sequence[Callback] = (),
    seed: int | None = None,
    shuffle: bool = True,
    threads: int | str | None = "auto",
) -> History:
    """Train ``model`` by mini-batch backpropagation and return its :class:`History`.

    Parameters
    ----------
    model : MLP
    X, y : array-like
        Features (n, n_inputs) and targets: class labels (any sortable values; predictions
        decode back to them), a 0/1 matrix for multilabel, or values.
    validation_data : (X_val, y_val), optional
        Evaluated after every epoch: ``val_loss`` and the task's metrics
        (``val_accuracy``, ``val_f1``, ``val_log_loss`` or ``val_r2``,
        ``val_mse``, ``val_mae``).
    optimizer : str or Optimizer, default "sgd"
        ``"sgd"`` (plain), ``"adam"``, ``"adamw"``, ``"rmsprop"``, or an instance such
        as ``SGD(lr=0.1, momentum=0.9, nesterov=True)`` for non-default options.
    lr : float, optional
        Learning rate when ``optimizer`` is a name (default: the optimizer's).
    epochs, batch_size : int
    l2 : float, default 0
        L2 penalty ``l2/2 * sum(W**2)`` on weights (not biases), in loss and
        gradient, independent of batch size.
    clip_norm : float, optional
        Rescale each batch gradient to at most this global L2 norm.
    schedule : str or Schedule, optional
        ``"constant"`` (default), ``"step"``, ``"exponential"``, ``"cosine"``, ``"plateau"`` or an instance.
    callbacks : sequence of Callback
    seed : int, optional
        Seeds shuffling and dropout: the same seed and thread count give bit-identical results.
    shuffle : bool, default True
    threads : int, "auto" or None, default "auto"
        BLAS threads for the matrix products. ``"auto"`` times a few steps on one thread and
        on all available cores at the start (and every few seconds) and keeps the faster;
        threads that had to wait for a CPU (a busy machine) are not used. An integer fixes
        the count; ``None`` leaves BLAS as the caller set it. The caller's setting is
        restored on return; the count used is ``history.blas_threads``.

    Returns
    -------
    History

    Raises
    ------
    InvalidInputError
        For bad data, shapes, labels or names.
    TrainingDivergedError
        When the loss or the weights become non-finite; the weights are restored
        to the end of the last finite epoch first.
    """
    epochs, batch_size = _check_options(epochs, batch_size, l2, clip_norm)
    threads = check_threads(threads)
    X, Y, validation, opt, sched = _prepare(model, X, y, validation_data, optimizer, lr, schedule)
    opt.setup(model.params, model.n_weights)
    sched.reset(opt.lr, epochs)
    shuffle_rng, dropout_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    if not any(model.dropout):
        dropout_rng = None
    history = History()
    trainer = Trainer(model, epochs, opt, sched, history)
    loop = _EpochRunner(model, X, Y, batch_size, opt, l2, clip_norm, dropout_rng)
    orders = (shuffle_rng.permutation(X.shape[0]) if shuffle else np.arange(X.shape[0]) for _ in range(epochs))
    _train(trainer, loop, orders, validation, list(callbacks), BlasThreads(threads))
    return history


def _check_options(epochs, batch_size, l2, clip_norm) -> tuple[int, int]:
    if int(epochs) < 1:
        raise InvalidInputError(f"epochs must be >= 1, got {epochs}")
    if int(batch_size) < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    if l2 < 0:
        raise InvalidInputError(f"l2 must be >= 0, got {l2}")
    if clip_norm is not None and not clip_norm > 0:
        raise InvalidInputError(f"clip_norm must be positive, got {clip_norm}")
    return int(epochs), int(batch_size)


def _prepare(model, X, y, validation_data, optimizer, lr, schedule):
    """Checked arrays, validation data, optimizer and schedule; learns labels and standardization.

    Learning the class labels and the standardization are the only changes fit makes
    before training starts; they are undone if the inputs turn out to be unusable, so a
    corrected second call does not inherit labels learned from the bad one.
    """
    classes_before = model.classes_
    prep_fitted_before = model.preprocessing is not None and model.preprocessing.fitted
    targets_fitted_before = model.target_scaler is not None and model.target_scaler.fitted
    try:
        X = model.check_X(X)
        Y = model.encode_targets(y, fit=True)
        if X.shape[0] != Y.shape[0]:
            raise InvalidInputError(f"X has {X.shape[0]} rows but y has {Y.shape[0]}")
        if model.preprocessing is not None and not model.preprocessing.fitted:
            model.preprocessing.fit(X)
        return X, Y, _prepare_validation(model, validation_data), get_optimizer(optimizer, lr), get_schedule(schedule)
    except BaseException:
        model.classes_ = classes_before
        if model.preprocessing is not None and not prep_fitted_before:
            model.preprocessing.mean = model.preprocessing.scale = None
        if model.target_scaler is not None and not targets_fitted_before:
            model.target_scaler.mean = model.target_scaler.scale = None
        raise


def _train(trainer: Trainer, loop, orders, validation, callbacks: list, blas: BlasThreads) -> None:
    """The epochs, with callbacks and the thread policy; records how training ended on the history."""
    history = trainer.history
    try:
        history.blas_threads = blas.start(loop.probe_step)
        loop.blas = blas if blas.auto else None
        for cb in callbacks:
            cb.on_train_begin(trainer)
        for epoch, perm in enumerate(orders, start=1):
            logs = _epoch(trainer, loop, epoch, perm, validation)
            history.append(logs)
            trainer.schedule.update(epoch, logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if trainer.stop_training:
                break
        history.status = "stopped" if trainer.stop_training else "completed"
    except KeyboardInterrupt as exc:
        history.status, trainer.error = "interrupted", exc
        raise
    except BaseException as exc:
        history.status, trainer.error = "failed", exc
        raise
    finally:
        try:
            for cb in callbacks:
                cb.on_train_end(history)
        finally:
            history.blas_threads = blas.current
            blas.restore()


def _epoch(trainer: Trainer, loop, epoch: int, perm: np.ndarray, validation) -> dict:
    """One epoch of training and its logs (training metrics, lr, L2, validation, weight norms, time)."""
    t0 = time.perf_counter()
    model, opt = trainer.model, trainer.optimizer
    opt.lr = trainer.schedule.lr_for_epoch(epoch)
    logs = {"epoch": epoch, **loop.run(perm, epoch)}
    logs["lr"] = opt.lr
    if loop.l2:
        logs["l2_penalty"] = model.l2_penalty(loop.l2)
    if validation is not None:
        logs.update(_validation_logs(model, *validation))
        if not math.isfinite(logs["val_loss"]):
            loop.restore(f"validation loss became {logs['val_loss']} at epoch {epoch}")
    logs.update(_weight_norms(model))
    logs["epoch_seconds"] = time.perf_counter() - t0
    return logs


class _EpochRunner:
    """Runs one epoch of mini-batches with preallocated batch buffers."""

    def __init__(self, model, X, Y, batch_size, opt, l2, clip_norm, dropout_rng):
        self.model, self.X, self.Y, self.opt = model, X, Y, opt
        self.l2, self.clip_norm, self.dropout_rng = l2, clip_norm, dropout_rng
        self.batch_size = min(batch_size, X.shape[0])
        self.xbuf = np.empty((self.batch_size, X.shape[1]), dtype=X.dtype)
        self.ybuf = np.empty((self.batch_size,) + Y.shape[1:], dtype=Y.dtype)
        self.snapshot = np.empty_like(model.params)  # weights at the start of the epoch
        self.finite = np.empty(model.params.shape, dtype=bool)
        self.prep = model.preprocessing
        self.is_classifier = model.is_classifier
        self.blas = None  # a BlasThreads to consult between steps (fit's auto thread policy)

    def run(self, perm: np.ndarray, epoch: int) -> dict:
        # Overflow on the way to divergence is detected below and reported as one clear
        # TrainingDivergedError; numpy's per-operation warnings would only bury it.
        with np.errstate(over="ignore", invalid="ignore"):
            return self._run(perm, epoch)

    def _run(self, perm: np.ndarray, epoch: int) -> dict:
        model, opt, bs = self.model, self.opt, self.batch_size
        np.copyto(self.snapshot, model.params)
        # Each layer's weight gradient as a flat slice of the gradient array: one dot product each.
        ends = np.cumsum([W.size for W in model._W]).tolist()
        gWs = [model.grads[a:b] for a, b in zip([0, *ends[:-1]], ends)]
        gb_all = model.grads[model.n_weights :]
        grad_norm_sums = [0.0] * len(gWs)
        total_loss, correct, n = 0.0, 0, perm.size
        n_batches = -(-n // bs)
        blas, clock = self.blas, time.perf_counter
        t_step = clock()
        for b, start in enumerate(range(0, n, bs)):
            idx = perm[start : start + bs]
            nb = idx.size
            # mode="clip": with the default mode="raise" take gathers into a temporary and copies it into
            # out= (numpy's documented behaviour); the indices are a permutation, always valid. The array
            # method skips np.take's Python wrapper (~4 us a call).
            xb = self.X.take(idx, axis=0, out=self.xbuf[:nb], mode="clip")
            if self.prep is not None:
                self.prep.transform(xb, out=xb)
            yb = self.Y.take(idx, axis=0, out=self.ybuf[:nb], mode="clip")
            loss, n_correct = model.forward_backward(xb, yb, self.l2, self.dropout_rng)
            if not math.isfinite(loss):
                self.restore(f"train loss became {loss} at epoch {epoch} (batch {b + 1} of {n_batches})")
            total_loss += loss * nb
            correct += n_correct
            sq = [float(np.dot(g, g)) for g in gWs]
            for k, v in enumerate(sq):
                grad_norm_sums[k] += math.sqrt(v)
            if self.clip_norm is not None:
                norm = math.sqrt(sum(sq) + float(np.dot(gb_all, gb_all)))
                if norm > self.clip_norm:
                    model.grads *= self.clip_norm / norm
            opt.step(model.params, model.grads)
            if blas is not None:
                t_prev, t_step = t_step, clock()
                blas.after_step(t_step - t_prev, self.probe_step)
                t_step = clock()  # a probe's own time is not the next step's
        if not np.isfinite(model.params, out=self.finite).all():
            self.restore(f"weights became non-finite during epoch {epoch}")
        logs = {"train_loss": total_loss / n}
        if self.is_classifier:
            logs["train_accuracy"] = correct / n
        for i, s in enumerate(grad_norm_sums, start=1):
            logs[f"grad_norm/layer{i}"] = float(s / n_batches)
        return logs

    def probe_step(self) -> None:
        """One forward and backward pass on the first batch, for timing (the gradients are overwritten
        by the next real step; the dropout generator is not touched, so results do not depend on it)."""
        nb = self.batch_size
        xb = self.xbuf
        np.copyto(xb, self.X[:nb])
        if self.prep is not None:
            self.prep.transform(xb, out=xb)
        np.copyto(self.ybuf, self.Y[:nb])
        with np.errstate(all="ignore"):
            self.model.forward_backward(xb, self.ybuf, 0.0, None)

    def restore(self, what: str):
        np.copyto(self.model.params, self.snapshot)
        raise TrainingDivergedError(
            f"training diverged: {what}; weights restored to the start of that epoch. "
            f"Try a lower learning rate (lr={self.opt.lr:g}), gradient clipping (clip_norm) "
            "or standardized inputs."
        )


def _prepare_validation(model, validation_data):
    if validation_data is None:
        return None
    try:
        Xv, yv = validation_data
    except (TypeError, ValueError):
        raise InvalidInputError("validation_data must be a pair (X_val, y_val)") from None
    Xv = model.check_X(Xv, what="validation X")
    yv = model.encode_targets(yv, what="validation y")
    if Xv.shape[0] != yv.shape[0]:
        raise InvalidInputError(f"validation X has {Xv.shape[0]} rows but validation y has {yv.shape[0]}")
    return model._preprocess(Xv), yv


def _validation_logs(model, Xv, yv) -> dict:
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite val_loss is reported by the caller
        loss, outputs = model._loss_and_outputs(Xv, yv)
    logs = {"val_loss": loss}
    if math.isfinite(loss):
        metrics = head_metrics(model.task, model.n_outputs, model.decode_values(yv), model.decode_values(outputs))
        logs.update({f"val_{k}": v for k, v in metrics.items()})
    return logs


def _weight_norms(model) -> dict:
    return {f"weight_norm/layer{i}": float(np.linalg.norm(W)) for i, W in enumerate(model._W, start=1)}
