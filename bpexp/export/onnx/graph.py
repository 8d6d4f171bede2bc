"""The shared pieces of every bpexp ONNX graph: opsets, tolerance, and a small node builder."""

from __future__ import annotations

import numpy as np

from bpexp.export.errors import OnnxCheckError

#: Opset 17 has every operator used here with today's semantics (Softmax over one axis
#: since 13) and runs on onnxruntime 1.12 and later, including 1.31/1.32 used here.
ONNX_OPSET = 17
#: The ``ai.onnx.ml`` opset released with opset 17 (onnx 1.12); table models use its
#: ``LabelEncoder`` (string keys since version 2). Plain array models do not import it.
ONNX_ML_OPSET = 3
ML_DOMAIN = "ai.onnx.ml"
#: IR version 8 is the one that goes with opset 17; onnx 1.23 would otherwise stamp
#: its newest IR version, which older runtimes refuse to load.
ONNX_IR_VERSION = 8
#: Maximum absolute difference between onnxruntime's and NumPy's outputs.
ONNX_ATOL = 1e-5
INPUT_NAME = "input"
#: The encoded feature matrix of a table model: an internal tensor, made an output only by the check.
FEATURES_NAME = "features"
#: Names the graph gives its outputs; no input column may take them.
OUTPUT_NAMES = ("probabilities", "label", "predictions")


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise OnnxCheckError(
            "--onnx needs the onnx package: pip install 'bpexp[onnx]' (onnx and onnxruntime)"
        ) from None
    return onnx


def elem_type(dtype: np.dtype) -> int:
    """The ONNX element type of a model dtype (float32 or float64)."""
    from onnx import TensorProto

    return TensorProto.DOUBLE if np.dtype(dtype) == np.float64 else TensorProto.FLOAT


class Graph:
    """Accumulates nodes and constants with unique names.

    ``reserved`` names (the graph's inputs) are never generated for a node output
    or a constant: a table column called ``matmul0_5`` must not collide with a node.
    """

    def __init__(self, onnx, dtype: np.dtype, reserved=()):
        self.onnx, self.dtype = onnx, dtype
        self.nodes, self.initializers = [], []
        self._count = 0
        self._reserved = set(reserved)

    def name(self, base: str) -> str:
        self._count += 1
        name = f"{base}_{self._count}"
        while name in self._reserved:
            self._count += 1
            name = f"{base}_{self._count}"
        return name

    def const(self, base: str, value, dtype=None) -> str:
        """A constant; floats in the model's dtype unless ``dtype`` says otherwise."""
        arr = np.asarray(value)
        if dtype is not None:
            arr = arr.astype(dtype)
        elif arr.dtype.kind == "f":
            arr = arr.astype(self.dtype)
        name = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: list[str], base: str | None = None, out: str | None = None,
           domain: str | None = None, **attrs) -> str:
        out = out or self.name(base or op_type.lower())
        extra = {"domain": domain} if domain else {}
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out], **extra, **attrs))
        return out
