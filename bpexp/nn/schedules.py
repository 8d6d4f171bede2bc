"""Learning-rate schedules, applied once per epoch.

A schedule is reset at the start of :func:`bpexp.fit` with the base learning
rate and the number of epochs; ``lr_for_epoch(epoch)`` (epochs count from 1)
gives the rate for the coming epoch, and ``update(epoch, logs)`` lets
reduce-on-plateau react to the metric it monitors.
"""

from __future__ import annotations

import math

from bpexp.errors import InvalidInputError


class Schedule:
    name = ""

    def reset(self, base_lr: float, epochs: int) -> None:
        self.base_lr, self.epochs = base_lr, epochs

    def lr_for_epoch(self, epoch: int) -> float:
        raise NotImplementedError

    def update(self, epoch: int, logs: dict) -> None:
        """Called after each epoch with its logs; most schedules ignore it."""

    def config(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in ("base_lr", "epochs")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    name = "constant"

    def lr_for_epoch(self, epoch):
        return self.base_lr


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs."""

    name = "step"

    def __init__(self, step_size: int = 10, gamma: float = 0.1):
        if step_size < 1:
            raise InvalidInputError(f"step_size must be >= 1, got {step_size}")
        _check_factor("gamma", gamma)
        self.step_size, self.gamma = int(step_size), float(gamma)

    def lr_for_epoch(self, epoch):
        return self.base_lr * self.gamma ** ((epoch - 1) // self.step_size)


class ExponentialDecay(Schedule):
    """Multiply the rate by ``gamma`` every epoch."""

    name = "exponential"

    def __init__(self, gamma: float = 0.95):
        _check_factor("gamma", gamma)
        self.gamma = float(gamma)

    def lr_for_epoch(self, epoch):
        return self.base_lr * self.gamma ** (epoch - 1)


class CosineWithWarmup(Schedule):
    """Linear warm-up over ``warmup_epochs``, then cosine decay to ``min_lr``."""

    name = "cosine"

    def __init__(self, warmup_epochs: int = 0, min_lr: float = 0.0):
        if warmup_epochs < 0:
            raise InvalidInputError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        if min_lr < 0:
            raise InvalidInputError(f"min_lr must be >= 0, got {min_lr}")
        self.warmup_epochs, self.min_lr = int(warmup_epochs), float(min_lr)

    def lr_for_epoch(self, epoch):
        w = self.warmup_epochs
        if epoch <= w:
            return self.base_lr * epoch / w
        span = max(self.epochs - w, 1)
        progress = min((epoch - w - 1) / span, 1.0)
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress))


class ReduceOnPlateau(Schedule):
    """Multiply the rate by ``factor`` after ``patience`` epochs without improvement.

    Improvement means the monitored log value moved by more than ``min_delta`` in
    the direction of ``mode`` ("min" for losses, "max" for scores; "auto" picks
    from the name).
    """

    name = "plateau"

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 5,
                 min_delta: float = 0.0, min_lr: float = 0.0, mode: str = "auto"):
        _check_factor("factor", factor)
        if patience < 0:
            raise InvalidInputError(f"patience must be >= 0, got {patience}")
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.min_delta, self.min_lr = float(min_delta), float(min_lr)
        self.mode = resolve_mode(monitor, mode)

    def reset(self, base_lr, epochs):
        super().reset(base_lr, epochs)
        self._lr, self._best, self._wait = base_lr, None, 0

    def lr_for_epoch(self, epoch):
        return self._lr

    def update(self, epoch, logs):
        value = logs.get(self.monitor)
        if value is None:
            raise InvalidInputError(
                f"reduce-on-plateau monitors {self.monitor!r}, which is not in the logs {sorted(logs)}"
            )
        if is_improvement(value, self._best, self.mode, self.min_delta):
            self._best, self._wait = value, 0
            return
        self._wait += 1
        if self._wait > self.patience:
            self._lr = max(self._lr * self.factor, self.min_lr)
            self._wait = 0


def resolve_mode(monitor: str, mode: str) -> str:
    """``"min"`` or ``"max"``; ``"auto"`` means max for accuracy/F1/R² style names."""
    if mode in ("min", "max"):
        return mode
    if mode != "auto":
        raise InvalidInputError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    higher_is_better = ("acc", "f1", "r2", "auc", "precision", "recall")
    return "max" if any(k in monitor for k in higher_is_better) else "min"


def is_improvement(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _check_factor(name, value):
    if not 0.0 < value <= 1.0:
        raise InvalidInputError(f"{name} must be in (0, 1], got {value}")


SCHEDULES: dict[str, type[Schedule]] = {
    c.name: c for c in (Constant, StepDecay, ExponentialDecay, CosineWithWarmup, ReduceOnPlateau)
}


def get_schedule(schedule: str | Schedule | None, **options) -> Schedule:
    """Build a schedule from a name and options, or pass one through (None = constant)."""
    if schedule is None:
        schedule = "constant"
    if isinstance(schedule, Schedule):
        return schedule
    cls = SCHEDULES.get(schedule) if isinstance(schedule, str) else None
    if cls is None:
        raise InvalidInputError(f"unknown schedule {schedule!r}; expected one of {sorted(SCHEDULES)}")
    try:
        return cls(**options)
    except TypeError:
        import inspect

        valid = list(inspect.signature(cls).parameters)
        raise InvalidInputError(
            f"schedule {schedule!r} does not take {sorted(set(options) - set(valid))}; its options are {valid}"
        ) from None
