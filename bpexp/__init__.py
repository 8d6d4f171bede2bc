"""bpexp: train, track, tune and ship multilayer perceptrons.

The core (:mod:`bpexp.nn`, :mod:`bpexp.train`) needs only NumPy; MLflow,
Optuna and widgets are imported lazily by the parts that use them, so
``import bpexp`` stays fast.
"""

from bpexp._version import __version__
from bpexp.data import Dataset, load_dataset, split
from bpexp.errors import BpexpError, InvalidInputError, ModelFormatError, TrainingDivergedError
from bpexp.metrics import head_metrics
from bpexp.nn import MLP, SGD, Adam, AdamW, RMSprop, gradcheck
from bpexp.nn.serialization import load_model_folder
from bpexp.train import Callback, EarlyStopping, History, LambdaCallback, ProgressBar, fit


def run(config, **kwargs):
    """Run one tracked experiment (see :func:`bpexp.runner.run`); MLflow is imported on first use."""
    from bpexp.runner import run as _run

    return _run(config, **kwargs)


def sweep(config, **kwargs):
    """Run an Optuna sweep (see :func:`bpexp.tuning.sweep`); Optuna is imported on first use."""
    from bpexp.tuning import sweep as _sweep

    return _sweep(config, **kwargs)


def load_model(path) -> MLP:
    """Load a model folder (``model.json`` + ``weights.npz``) written by ``model.save``."""
    return load_model_folder(path)


def evaluate(model: MLP, X, y) -> dict[str, float]:
    """The model's loss and task metrics on raw ``X`` and ``y``.

    Classification: ``loss``, ``accuracy``, ``f1`` (macro), ``log_loss``;
    regression: ``loss``, ``r2``, ``mse``, ``mae`` (metrics in the targets' units; the
    loss on standardized targets when the model standardizes).
    """
    Xp = model._preprocess(model.check_X(X))
    yp = model.encode_targets(y)
    loss, outputs = model._loss_and_outputs(Xp, yp)
    metrics = head_metrics(model.task, model.n_outputs, model.decode_values(yp), model.decode_values(outputs))
    return {"loss": loss, **metrics}


__all__ = [
    "MLP", "SGD", "Adam", "AdamW", "BpexpError", "Callback", "Dataset", "EarlyStopping", "History",
    "InvalidInputError", "LambdaCallback", "ModelFormatError", "ProgressBar", "RMSprop",
    "TrainingDivergedError", "__version__", "evaluate", "fit", "gradcheck", "load_dataset",
    "load_model", "run", "split", "sweep",
]
