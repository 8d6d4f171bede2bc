"""Convert a bpexp MLP to ONNX with the ``onnx`` package, and check it against onnxruntime.

The graph mirrors the NumPy forward pass operation by operation, so the two agree to
float rounding:

* standardization as ``Sub`` + ``Div`` (folding it into the first layer would
  change the rounding, and features with a tiny scale would amplify that);
* each dense layer as ``MatMul`` + ``Add`` (onnxruntime fuses them into a Gemm);
* hidden activations ``Relu``, ``LeakyRelu(alpha)``, ``Tanh``, ``Sigmoid``, GELU in
  its tanh approximation written out as ``0.5 z (1 + tanh(c (z + a z^3)))`` with
  ``Mul``/``Add``/``Tanh`` (the ``Gelu`` operator only exists from opset 20), identity
  as nothing;
* the head: ``Softmax``; ``Sigmoid`` (a single-unit binary head is widened to the
  two columns ``[1 - p, p]`` that :meth:`MLP.predict_proba` returns); identity,
  followed by ``Mul`` + ``Add`` when regression targets were standardized.

Outputs: ``probabilities`` (classifiers) plus ``label`` (the user's class labels,
through ``ArgMax`` + ``Gather``) for single-label classification; ``predictions``
for regression. The input is ``input`` of shape ``(N, n_features)`` in the model's
dtype (float32 unless trained in float64).

``onnx`` and ``onnxruntime`` are imported inside the functions: they are the
optional ``onnx`` extra.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpexp.export.errors import OnnxCheckError

#: Opset 17 has every operator used here with today's semantics (Softmax over one axis
#: since 13) and runs on onnxruntime 1.12 and later, including 1.31/1.32 used here.
ONNX_OPSET = 17
#: IR version 8 is the one that goes with opset 17; onnx 1.23 would otherwise stamp
#: its newest IR version, which older runtimes refuse to load.
ONNX_IR_VERSION = 8
#: Maximum absolute difference between onnxruntime's and NumPy's outputs.
ONNX_ATOL = 1e-5
INPUT_NAME = "input"

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise OnnxCheckError(
            "--onnx needs the onnx package: pip install 'bpexp[onnx]' (onnx and onnxruntime)"
        ) from None
    return onnx


class _Graph:
    """Accumulates nodes and constants with unique names."""

    def __init__(self, onnx, dtype: np.dtype):
        self.onnx, self.dtype = onnx, dtype
        self.nodes, self.initializers = [], []
        self._count = 0

    def name(self, base: str) -> str:
        self._count += 1
        return f"{base}_{self._count}"

    def const(self, base: str, value) -> str:
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            arr = arr.astype(self.dtype)
        name = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: list[str], base: str | None = None, out: str | None = None, **attrs) -> str:
        out = out or self.name(base or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _activation(g: _Graph, act, z: str) -> str:
    name = act.name
    if name == "identity":
        return z
    if name == "relu":
        return g.op("Relu", [z])
    if name == "leaky_relu":
        return g.op("LeakyRelu", [z], alpha=float(act.alpha))
    if name == "tanh":
        return g.op("Tanh", [z])
    if name == "sigmoid":
        return g.op("Sigmoid", [z])
    if name == "gelu":
        # 0.5 z (1 + tanh((c + a c z^2) z)): the operations of bpexp.nn.activations.GELU, in its order.
        t = g.op("Mul", [g.op("Mul", [z, z]), g.const("gelu_ac", _GELU_A * _GELU_C)])
        t = g.op("Mul", [g.op("Add", [t, g.const("gelu_c", _GELU_C)]), z])
        t = g.op("Add", [g.op("Tanh", [t]), g.const("one", 1.0)])
        return g.op("Mul", [g.op("Mul", [t, z]), g.const("half", 0.5)])
    raise OnnxCheckError(f"activation {name!r} has no ONNX conversion")


def to_onnx(model, *, feature_names: list[str] | None = None, producer_note: str = ""):
    """Build the ONNX graph of ``model`` (an :class:`~bpexp.nn.model.MLP`).

    Parameters
    ----------
    model : MLP
        A trained model (classes known for classifiers, standardization fitted).
    feature_names : list of str, optional
        Stored in the model's metadata (``feature_names``) for whoever feeds it.
    producer_note : str
        Free text stored as the graph's doc string (e.g. the source run).

    Returns
    -------
    onnx.ModelProto
    """
    onnx = require_onnx()
    from onnx import TensorProto, helper

    dtype = model.dtype
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    g = _Graph(onnx, dtype)
    a = INPUT_NAME
    if model.preprocessing is not None:
        if not model.preprocessing.fitted:
            raise OnnxCheckError("the model's standardization is not fitted; train the model before exporting it")
        a = g.op("Sub", [a, g.const("standardize_mean", model.preprocessing.mean)], "centered")
        a = g.op("Div", [a, g.const("standardize_scale", model.preprocessing.scale)], "standardized")
    n_layers = len(model.weights)
    for i, (W, b) in enumerate(model.weights):
        z = g.op("Add", [g.op("MatMul", [a, g.const(f"W{i}", W)], f"matmul{i}"), g.const(f"b{i}", b)], f"z{i}")
        a = _activation(g, model.activations[i], z) if i < n_layers - 1 else z

    outputs = []
    head = model.head.output
    n_out = model.n_outputs
    if model.is_classifier:
        if head == "softmax":
            proba = g.op("Softmax", [a], out="probabilities", axis=1)
            n_cols = n_out
        elif model.task == "classification" and n_out == 1:  # binary sigmoid head: [P(class 0), P(class 1)]
            p1 = g.op("Sigmoid", [a], "p1")
            proba = g.op("Concat", [g.op("Sub", [g.const("one", 1.0), p1], "p0"), p1], out="probabilities", axis=1)
            n_cols = 2
        else:  # multilabel: one independent probability per label
            proba = g.op("Sigmoid", [a], out="probabilities")
            n_cols = n_out
        outputs.append(helper.make_tensor_value_info(proba, elem, ["N", n_cols]))
        if model.task == "classification":
            idx = g.op("ArgMax", [proba], "class_index", axis=1, keepdims=0)
            classes = _class_constant(model.classes_)
            label = g.op("Gather", [g.const("classes", classes), idx], out="label", axis=0)
            outputs.append(helper.make_tensor_value_info(label, _label_elem(classes), ["N"]))
    else:
        if head != "identity":
            raise OnnxCheckError(f"regression head {model.head.name!r} has no ONNX conversion")
        scaler = getattr(model, "target_scaler", None)
        if scaler is not None and scaler.fitted:  # back to the targets' units, as MLP.decode_values does
            a = g.op("Mul", [a, g.const("target_scale", scaler.scale)], "scaled")
            a = g.op("Add", [a, g.const("target_mean", scaler.mean)], out="predictions")
        else:
            a = g.op("Identity", [a], out="predictions")
        outputs.append(helper.make_tensor_value_info(a, elem, ["N", n_out]))

    graph = helper.make_graph(
        g.nodes, "bpexp_mlp",
        [helper.make_tensor_value_info(INPUT_NAME, elem, ["N", model.n_inputs])],
        outputs, initializer=g.initializers, doc_string=producer_note,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="bpexp", ir_version=ONNX_IR_VERSION)
    meta = {"task": model.task, "n_features": str(model.n_inputs)}
    if model.classes_ is not None:
        meta["classes"] = json.dumps(model.classes_.tolist())
    if feature_names:
        meta["feature_names"] = json.dumps(list(feature_names))
    helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _class_constant(classes: np.ndarray) -> np.ndarray:
    """Class labels as a tensor ONNX can hold: int64, float64 or strings."""
    if classes.dtype.kind in "biu":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f":
        return classes.astype(np.float64)
    return np.array([str(c) for c in classes.tolist()], dtype=object)  # onnx stores strings from object arrays


def _label_elem(classes: np.ndarray) -> int:
    from onnx import TensorProto

    return {"i": TensorProto.INT64, "f": TensorProto.DOUBLE}.get(classes.dtype.kind, TensorProto.STRING)


def reference_outputs(model, X: np.ndarray) -> np.ndarray:
    """What the ONNX graph's first output must reproduce: probabilities or predicted values (2-D)."""
    if model.is_classifier:
        return model.predict_proba(X)
    out = model.predict(X)
    return out.reshape(len(out), -1)


@dataclass
class OnnxCheck:
    """Result of :func:`check_onnx`.

    Attributes
    ----------
    max_abs_diff : float
        Largest absolute difference between onnxruntime's and NumPy's outputs.
    max_scaled_diff : float
        Largest ``|diff| / max(1, |numpy value|)``: the quantity held to ``atol``.
    n_rows : int
    labels_agree : float or None
        Fraction of rows whose ``label`` output equals :meth:`MLP.predict` (classification).
    """

    max_abs_diff: float
    max_scaled_diff: float
    n_rows: int
    labels_agree: float | None = None


def check_onnx(path: str | Path, model, X, *, atol: float = ONNX_ATOL) -> OnnxCheck:
    """Run ``path`` in onnxruntime on ``X`` and compare with the NumPy model.

    Probabilities (and any output of magnitude up to 1) must agree to ``atol``
    absolutely. Larger regression values are compared relative to their size:
    float32 cannot resolve 300 to better than 3e-5, so no float32 graph could meet
    an absolute 1e-5 there, whatever its quality.

    Raises
    ------
    OnnxCheckError
        onnxruntime is missing or fails, the shapes differ, or the difference exceeds ``atol``.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise OnnxCheckError("checking the ONNX model needs onnxruntime: pip install 'bpexp[onnx]'") from None
    X = model.check_X(X, "the input example")
    expected = reference_outputs(model, X).astype(np.float64)
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {INPUT_NAME: X})
    except Exception as exc:  # noqa: BLE001 - any runtime failure means the graph is unusable
        raise OnnxCheckError(f"onnxruntime cannot run the exported graph {path}: {exc}") from None
    if got[0].shape != expected.shape:
        raise OnnxCheckError(f"ONNX output has shape {got[0].shape}, the NumPy model gives {expected.shape}")
    diff = np.abs(got[0].astype(np.float64) - expected)
    scaled = diff / np.maximum(1.0, np.abs(expected))
    check = OnnxCheck(float(diff.max()), float(scaled.max()), len(X))
    if not check.max_scaled_diff <= atol:  # written this way round so NaN fails too
        raise OnnxCheckError(
            f"the ONNX model does not reproduce the NumPy model: max abs difference {check.max_abs_diff:.3g} "
            f"(scaled {check.max_scaled_diff:.3g}) > {atol:g} on {len(X)} example rows"
        )
    if model.task == "classification" and len(got) > 1:
        check.labels_agree = float(np.mean(got[1] == _class_constant(model.predict(X))))
    return check
