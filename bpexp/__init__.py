"""bpexp: train, track, tune and ship multilayer perceptrons.

The core (:mod:`bpexp.nn`, :mod:`bpexp.train`) needs only NumPy; MLflow,
Optuna and widgets are imported lazily by the parts that use them, so
``import bpexp`` stays fast.
"""

from bpexp._version import __version__
from bpexp.data import Dataset, load_dataset, split
from bpexp.errors import BpexpError, InvalidInputError, ModelFormatError, TrainingDivergedError
from bpexp.metrics import evaluate
from bpexp.nn import MLP, SGD, Adam, AdamW, RMSprop, gradcheck
from bpexp.nn.serialization import load_model_folder
from bpexp.train import Callback, EarlyStopping, History, LambdaCallback, ProgressBar, fit


def run(config, *, live: bool = False, **kwargs):
    """Run one tracked experiment (see :func:`bpexp.runner.run`); MLflow is imported on first use.

    ``live=True`` shows a live learning-curve plot in a notebook (:class:`bpexp.widgets.LiveCurves`,
    which has its own progress bar).
    """
    from bpexp.runner import run as _run

    if live:  # the runner sits below the widgets: the view is handed to it from here
        from bpexp.widgets.live import LiveCurves

        kwargs["live"] = LiveCurves
    return _run(config, **kwargs)


def sweep(config, **kwargs):
    """Run an Optuna sweep (see :func:`bpexp.tuning.sweep`); Optuna is imported on first use."""
    from bpexp.tuning import sweep as _sweep

    return _sweep(config, **kwargs)


def load_model(source, *, tracking_uri: str | None = None) -> MLP:
    """Load a trained model from a folder, an exported directory or an MLflow URI.

    Parameters
    ----------
    source : path or str
        A model folder (``model.json`` + ``weights.npz``, read with NumPy only:
        MLflow is not imported), an export made by ``bpexp export`` or any bpexp
        MLflow model directory, or a URI such as ``models:/NAME@champion``,
        ``models:/NAME/3`` or ``runs:/RUN_ID/model`` (downloaded with MLflow).
    tracking_uri : str, optional
        Store that ``models:/`` and ``runs:/`` URIs refer to (default:
        ``$MLFLOW_TRACKING_URI``, else the project's ``mlruns/`` store).

    Returns
    -------
    MLP
        The trained model, as training returned it; nothing is unpickled.

    Raises
    ------
    ModelFormatError
        Missing, damaged or tampered model files, or not a bpexp model.
    """
    from pathlib import Path

    if isinstance(source, (str, Path)) and (Path(source) / "model.json").is_file():
        return load_model_folder(source)  # the common case, and the one that must not import MLflow
    from bpexp.export.loading import load_model as _load

    return _load(source, tracking_uri=tracking_uri)


__all__ = [
    "MLP", "SGD", "Adam", "AdamW", "BpexpError", "Callback", "Dataset", "EarlyStopping", "History",
    "InvalidInputError", "LambdaCallback", "ModelFormatError", "ProgressBar", "RMSprop",
    "TrainingDivergedError", "__version__", "evaluate", "fit", "gradcheck", "load_dataset",
    "load_model", "run", "split", "sweep",
]
