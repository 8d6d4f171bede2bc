"""A bpexp MLP as an ONNX graph, checked against onnxruntime.

* :func:`to_onnx` builds the graph (:mod:`.convert`; a table model's preprocessing in
  :mod:`.tabular`);
* :func:`check_onnx` runs it in onnxruntime and compares with the NumPy model (:mod:`.check`);
* :func:`onnx_inputs` turns raw rows into the input feed (:mod:`.feeds`, NumPy only).

``onnx`` and ``onnxruntime`` are imported inside the functions: they are the
optional ``onnx`` extra.
"""

from bpexp.export.onnx.check import OnnxCheck, check_onnx, check_rows, reference_outputs
from bpexp.export.onnx.convert import to_onnx
from bpexp.export.onnx.feeds import onnx_inputs
from bpexp.export.onnx.graph import (
    FEATURES_NAME,
    INPUT_NAME,
    ONNX_ATOL,
    ONNX_IR_VERSION,
    ONNX_ML_OPSET,
    ONNX_OPSET,
    require_onnx,
)

__all__ = [
    "FEATURES_NAME", "INPUT_NAME", "ONNX_ATOL", "ONNX_IR_VERSION", "ONNX_ML_OPSET", "ONNX_OPSET", "OnnxCheck",
    "check_onnx", "check_rows", "onnx_inputs", "reference_outputs", "require_onnx", "to_onnx",
]
