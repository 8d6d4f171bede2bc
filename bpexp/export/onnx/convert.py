"""``to_onnx``: a bpexp MLP as an ONNX graph, operation by operation.

The graph mirrors the NumPy forward pass, so the two agree to float rounding:

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

A model trained on a table (``model.encoder``) takes one input per raw column and
encodes it in the graph first: see :mod:`bpexp.export.onnx.tabular`.
"""

from __future__ import annotations

import json
import math

import numpy as np

from bpexp.export.errors import OnnxCheckError
from bpexp.export.onnx.graph import (
    INPUT_NAME,
    ML_DOMAIN,
    ONNX_IR_VERSION,
    ONNX_ML_OPSET,
    ONNX_OPSET,
    Graph,
    elem_type,
    require_onnx,
)

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


def _activation(g: Graph, act, z: str) -> str:
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

    Outputs: ``probabilities`` (classifiers) plus ``label`` (the user's class labels,
    through ``ArgMax`` + ``Gather``) for single-label classification; ``predictions``
    for regression. A plain model's input is ``input`` of shape ``(N, n_features)`` in
    the model's dtype (float32 unless trained in float64); a table model's inputs are
    its raw columns (see :func:`bpexp.export.onnx.onnx_inputs`).

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

    Raises
    ------
    OnnxCheckError
        A part of the model has no ONNX form (the message names it), or onnx is missing.
    """
    onnx = require_onnx()
    from onnx import helper

    elem = elem_type(model.dtype)
    encoder = getattr(model, "encoder", None)
    if encoder is not None:
        from bpexp.export.onnx.tabular import encoder_graph, input_metadata

        g = Graph(onnx, model.dtype, reserved=encoder.input_names)
        inputs, a = encoder_graph(g, encoder)
    else:
        g = Graph(onnx, model.dtype)
        inputs, a = [helper.make_tensor_value_info(INPUT_NAME, elem, ["N", model.n_inputs])], INPUT_NAME
        a = _standardize(g, model, a)
    outputs = _layers_and_head(g, model, a, elem)

    graph = helper.make_graph(g.nodes, "bpexp_mlp", inputs, outputs, initializer=g.initializers,
                              doc_string=producer_note)
    opsets = [helper.make_opsetid("", ONNX_OPSET)]
    if encoder is not None:
        opsets.append(helper.make_opsetid(ML_DOMAIN, ONNX_ML_OPSET))
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="bpexp", ir_version=ONNX_IR_VERSION)
    meta = {"task": model.task, "n_features": str(model.n_inputs)}
    if model.classes_ is not None:
        meta["classes"] = json.dumps(model.classes_.tolist())
    if feature_names:
        meta["feature_names"] = json.dumps(list(feature_names))
    if encoder is not None:
        meta |= input_metadata(encoder)
    helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _standardize(g: Graph, model, a: str) -> str:
    if model.preprocessing is None:
        return a
    if not model.preprocessing.fitted:
        raise OnnxCheckError("the model's standardization is not fitted; train the model before exporting it")
    a = g.op("Sub", [a, g.const("standardize_mean", model.preprocessing.mean)], "centered")
    return g.op("Div", [a, g.const("standardize_scale", model.preprocessing.scale)], "standardized")


def _layers_and_head(g: Graph, model, a: str, elem: int) -> list:
    """The dense layers and the output head from the feature tensor ``a``; returns the output value infos."""
    n_layers = len(model.weights)
    for i, (W, b) in enumerate(model.weights):
        z = g.op("Add", [g.op("MatMul", [a, g.const(f"W{i}", W)], f"matmul{i}"), g.const(f"b{i}", b)], f"z{i}")
        a = _activation(g, model.activations[i], z) if i < n_layers - 1 else z
    if model.is_classifier:
        return _classifier_head(g, model, a, elem)
    return [_regression_head(g, model, a, elem)]


def _classifier_head(g: Graph, model, a: str, elem: int) -> list:
    from onnx import helper

    head, n_out = model.head.output, model.n_outputs
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
    outputs = [helper.make_tensor_value_info(proba, elem, ["N", n_cols])]
    if model.task == "classification":
        idx = g.op("ArgMax", [proba], "class_index", axis=1, keepdims=0)
        classes = class_constant(model.classes_)
        label = g.op("Gather", [g.const("classes", classes), idx], out="label", axis=0)
        outputs.append(helper.make_tensor_value_info(label, _label_elem(classes), ["N"]))
    return outputs


def _regression_head(g: Graph, model, a: str, elem: int):
    from onnx import helper

    if model.head.output != "identity":
        raise OnnxCheckError(f"regression head {model.head.name!r} has no ONNX conversion")
    scaler = getattr(model, "target_scaler", None)
    if scaler is not None and scaler.fitted:  # back to the targets' units, as MLP.decode_values does
        a = g.op("Mul", [a, g.const("target_scale", scaler.scale)], "scaled")
        a = g.op("Add", [a, g.const("target_mean", scaler.mean)], out="predictions")
    else:
        a = g.op("Identity", [a], out="predictions")
    return helper.make_tensor_value_info(a, elem, ["N", model.n_outputs])


def class_constant(classes: np.ndarray) -> np.ndarray:
    """Class labels as a tensor ONNX can hold: int64, float64 or strings."""
    if classes.dtype.kind in "biu":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f":
        return classes.astype(np.float64)
    return np.array([str(c) for c in classes.tolist()], dtype=object)  # onnx stores strings from object arrays


def _label_elem(classes: np.ndarray) -> int:
    from onnx import TensorProto

    return {"i": TensorProto.INT64, "f": TensorProto.DOUBLE}.get(classes.dtype.kind, TensorProto.STRING)
