"""Errors raised while exporting, registering or loading a model.

They subclass :class:`~bpexp.errors.BpexpError` so the CLI and the widgets can
show ``str(error)`` as a readable message instead of a traceback.
"""

from __future__ import annotations

from bpexp.errors import BpexpError


class ExportError(BpexpError):
    """An export, a registration or a run lookup cannot be done; the message says why."""


class RunNotFoundError(ExportError):
    """No run with the given id, or no run matching the selection (metric, experiment, study)."""


class NoModelError(ExportError):
    """The run logged neither an MLflow model nor a native ``bpexp_model/`` folder."""


class OnnxCheckError(ExportError):
    """The ONNX graph does not reproduce the NumPy model within tolerance, or onnx is missing."""
