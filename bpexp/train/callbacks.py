"""The callbacks protocol (Keras style) and the callbacks the trainer ships with.

A callback sees ``on_train_begin(trainer)``, then ``on_epoch_end(epoch, logs)``
after every epoch with a plain dict of that epoch's metrics, then
``on_train_end(history)`` however training ended (completed, stopped, failed
or interrupted: it runs in a ``finally``), so loggers can always flush.
A callback stops training with ``self.trainer.stop("reason")``.

MLflow logging, Optuna pruning and live notebook plots are callbacks built on
this protocol elsewhere; the trainer imports none of them.
"""

from __future__ import annotations

import numpy as np

from bpexp.errors import InvalidInputError
from bpexp.nn.schedules import is_improvement, resolve_mode


class Callback:
    """Base class: override the hooks you need.

    Attributes
    ----------
    trainer : Trainer
        Set in :meth:`on_train_begin`: ``trainer.model``, ``trainer.history``,
        ``trainer.epochs``, ``trainer.optimizer``, ``trainer.stop(reason)``.
    """

    trainer = None

    def on_train_begin(self, trainer) -> None:
        self.trainer = trainer

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        pass

    def on_train_end(self, history) -> None:
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A key of the epoch logs.
    mode : {"auto", "min", "max"}
        Direction of improvement; "auto" infers it from the name.
    patience : int, default 10
        Epochs without an improvement larger than ``min_delta`` before stopping.
    min_delta : float, default 0.0
    restore_best_weights : bool, default True
        At the end of training put back the weights of the best epoch.
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", patience: int = 10,
                 min_delta: float = 0.0, restore_best_weights: bool = True):
        if patience < 1:
            raise InvalidInputError(f"patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise InvalidInputError(f"min_delta must be >= 0, got {min_delta}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.mode = resolve_mode(monitor, mode)
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, trainer):
        super().on_train_begin(trainer)
        self.best, self.best_epoch, self.wait = None, None, 0
        self._best_params = np.empty_like(trainer.model.params) if self.restore_best_weights else None

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise InvalidInputError(
                f"early stopping monitors {self.monitor!r}, which is not in the epoch logs "
                f"{sorted(logs)}; pass validation_data or monitor a training metric"
            )
        value = logs[self.monitor]
        if is_improvement(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self._best_params is not None:
                np.copyto(self._best_params, self.trainer.model.params)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.trainer.stop(
                f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                f"(best {self.best:.6g} at epoch {self.best_epoch})"
            )

    def on_train_end(self, history):
        if history.status == "failed" or self.best_epoch is None:
            return
        history.best_epoch = self.best_epoch
        if self._best_params is not None and self.best_epoch != len(history):
            np.copyto(self.trainer.model.params, self._best_params)


class ProgressBar(Callback):
    """A tqdm progress bar over epochs showing the latest losses and main metric."""

    def __init__(self, desc: str | None = None, keys: tuple[str, ...] = ("train_loss", "val_loss",
                 "val_accuracy", "val_r2")):
        self.desc, self.keys = desc, keys

    def on_train_begin(self, trainer):
        super().on_train_begin(trainer)
        from tqdm.auto import tqdm

        self._bar = tqdm(total=trainer.epochs, desc=self.desc or "training", unit="epoch")

    def on_epoch_end(self, epoch, logs):
        self._bar.set_postfix({k: f"{logs[k]:.4g}" for k in self.keys if k in logs}, refresh=False)
        self._bar.update(1)

    def on_train_end(self, history):
        self._bar.close()


class LambdaCallback(Callback):
    """Wrap plain functions as a callback, e.g. ``LambdaCallback(on_epoch_end=print)``."""

    def __init__(self, on_train_begin=None, on_epoch_end=None, on_train_end=None):
        self._begin, self._epoch, self._end = on_train_begin, on_epoch_end, on_train_end

    def on_train_begin(self, trainer):
        super().on_train_begin(trainer)
        if self._begin:
            self._begin(trainer)

    def on_epoch_end(self, epoch, logs):
        if self._epoch:
            self._epoch(epoch, logs)

    def on_train_end(self, history):
        if self._end:
            self._end(history)
