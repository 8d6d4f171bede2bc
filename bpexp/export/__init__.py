"""Shipping a trained model: pick the best run, export it, register it, load it, predict with it.

The functions notebooks and widgets call:

* :func:`pick_best_run` -- the best run by a metric in an experiment or a sweep study, with the reason;
* :func:`export_run` -- a run's model as a directory: MLflow pyfunc model + native
  folder + model card (+ ONNX), see :class:`ExportResult`;
* :func:`register_model` -- a new registry version with an alias (``models:/NAME@champion``);
* :func:`load_model` -- an :class:`~bpexp.nn.model.MLP` from a folder, an export or a URI;
* :func:`predict_csv` -- predictions for a CSV file.

Errors are :class:`~bpexp.errors.BpexpError` subclasses with readable messages.
Importing this package imports neither MLflow nor onnx; the functions do when called.
"""

from bpexp.export.build import ExportResult, export_run
from bpexp.export.errors import ExportError, NoModelError, OnnxCheckError, RunNotFoundError
from bpexp.export.loading import load_model, load_with_features
from bpexp.export.predict import predict_csv, prediction_frame
from bpexp.export.registry import register_model
from bpexp.export.selection import pick_best_run

__all__ = [
    "ExportError", "ExportResult", "NoModelError", "OnnxCheckError", "RunNotFoundError", "export_run",
    "load_model", "load_with_features", "pick_best_run", "predict_csv", "prediction_frame", "register_model",
]
