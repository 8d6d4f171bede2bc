"""The ONNX export under its first name: everything now lives in :mod:`bpexp.export.onnx`."""

from bpexp.export.onnx import (  # noqa: F401 - re-exported for existing imports
    FEATURES_NAME,
    INPUT_NAME,
    ONNX_ATOL,
    ONNX_IR_VERSION,
    ONNX_ML_OPSET,
    ONNX_OPSET,
    OnnxCheck,
    check_onnx,
    check_rows,
    onnx_inputs,
    reference_outputs,
    require_onnx,
    to_onnx,
)
from bpexp.export.onnx.convert import class_constant as _class_constant  # noqa: F401
