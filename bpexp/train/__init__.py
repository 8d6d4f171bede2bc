"""Training: the epoch loop, the callbacks protocol and the History it returns."""

from bpexp.train.callbacks import Callback, EarlyStopping, LambdaCallback, ProgressBar
from bpexp.train.history import History
from bpexp.train.loop import Trainer, fit

__all__ = ["Callback", "EarlyStopping", "History", "LambdaCallback", "ProgressBar", "Trainer", "fit"]
