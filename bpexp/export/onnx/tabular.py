"""The preprocessing of a table model as ONNX nodes: one graph input per raw column.

What callers send (each input has shape ``(N, 1)``):

* a **numeric** column: ``double`` (float64), ``NaN`` where the value is missing.
  float64 whatever the model's dtype, because the NumPy encoder imputes and
  standardizes in float64 before rounding to the model's dtype: the graph does the
  same and agrees with it bit for bit;
* a **categorical** column: ``string``, the value's category key as
  :func:`bpexp.nn.tabular.category_key` writes it -- strings as they are, booleans as
  ``"True"``/``"False"``, integers in decimal (``"3"``) -- and the **empty string**
  ``""`` where the value is missing. onnxruntime turns the objects of an object array
  into strings with ``str()``, so raw ``True`` or ``3`` work as they are, but ``None``
  becomes ``"None"`` and NaN ``"nan"``, both read as categories never seen: send ``""``.

:func:`bpexp.export.onnx.onnx_inputs` builds these arrays from a DataFrame of raw rows.

In the graph, per column and in the encoder's output order:

* numeric: ``Where(IsNaN(x), median, x)`` (only where missing values are allowed),
  ``Sub`` mean, ``Div`` scale, ``Cast`` to the model's dtype, and the ``name=missing``
  indicator as ``Cast(IsNaN(x))``;
* categorical: ``ai.onnx.ml.LabelEncoder`` maps each training category (and ``""``
  when the column has a missing bucket) to its output offset, anything else to the
  ``other`` bucket's offset when there is one and to -1 otherwise; ``Equal`` with
  ``[0, 1, ..., width-1]`` and ``Cast`` make the one-hot block (-1 matches nothing:
  all zeros, as the NumPy encoder gives an unseen category without an ``other`` bucket).

The blocks are concatenated into the feature matrix the dense layers take. The
graph does not validate its input as :meth:`TabularEncoder.transform` does: ``inf``
or a missing value in a numeric column that had none in training flows through as
``inf``/``NaN`` instead of being refused.
"""

from __future__ import annotations

import json

import numpy as np

from bpexp.export.errors import OnnxCheckError
from bpexp.export.onnx.graph import FEATURES_NAME, ML_DOMAIN, OUTPUT_NAMES, Graph, elem_type

#: What a categorical input holds where the value is missing.
MISSING_STRING = ""
_VALUE_TYPES = ("string", "boolean", "integer")


def check_expressible(encoder) -> None:
    """Refuse, naming the part, what the graph cannot express; called before anything is built."""
    from bpexp.nn.tabular import CategoricalColumn, NumericColumn

    for col in encoder.columns:
        where = f"input column {col.name!r}"
        if not col.name:
            raise OnnxCheckError("an input column with an empty name cannot be an ONNX graph input; rename it")
        if col.name in OUTPUT_NAMES:
            raise OnnxCheckError(f"{where} has the name of an output of the ONNX graph ({', '.join(OUTPUT_NAMES)}); "
                                 "ONNX inputs and outputs share one namespace: rename the column to export ONNX")
        if isinstance(col, CategoricalColumn):
            if MISSING_STRING in col.categories:
                raise OnnxCheckError(
                    f"{where} has the empty string as a training category, and the ONNX graph uses the empty "
                    f"string to mean a missing value; map it to a real name (or to missing) before training")
            if col.value_type not in _VALUE_TYPES:
                raise OnnxCheckError(f"{where}: categorical values of type {col.value_type!r} have no ONNX input "
                                     f"type (supported: {', '.join(_VALUE_TYPES)})")
        elif not isinstance(col, NumericColumn):
            raise OnnxCheckError(f"{where}: a {type(col).__name__} has no ONNX conversion")


def encoder_graph(g: Graph, encoder) -> tuple[list, str]:
    """Graph inputs (one per column) and the name of the encoded feature matrix."""
    from onnx import TensorProto, helper

    from bpexp.nn.tabular import CategoricalColumn

    check_expressible(encoder)
    inputs, blocks = [], []
    for col in encoder.columns:
        if isinstance(col, CategoricalColumn):
            inputs.append(helper.make_tensor_value_info(col.name, TensorProto.STRING, ["N", 1]))
            blocks.append(_categorical(g, col))
        else:
            inputs.append(helper.make_tensor_value_info(col.name, TensorProto.DOUBLE, ["N", 1]))
            blocks.extend(_numeric(g, col))
    out = FEATURES_NAME if FEATURES_NAME not in encoder.input_names else g.name(FEATURES_NAME)
    return inputs, g.op("Concat", blocks, out=out, axis=1)


def _numeric(g: Graph, col) -> list[str]:
    """Impute, standardize (in float64, as the NumPy encoder), cast; plus the missing indicator."""
    from onnx import TensorProto

    x = col.name
    if col.allow_missing:
        nan = g.op("IsNaN", [x], f"{x}_isnan")
        x = g.op("Where", [nan, g.const("median", [[col.median]], np.float64), x], "imputed")
    x = g.op("Sub", [x, g.const("mean", [[col.mean]], np.float64)], "centered")
    x = g.op("Div", [x, g.const("scale", [[col.scale]], np.float64)], "standardized")
    if g.dtype != np.float64:
        x = g.op("Cast", [x], "cast", to=TensorProto.FLOAT)
    if not col.allow_missing:
        return [x]
    return [x, g.op("Cast", [nan], "missing_indicator", to=elem_type(g.dtype))]


def _categorical(g: Graph, col) -> str:
    """Category key -> offset in the column's block (LabelEncoder), then one-hot by comparison."""
    n_known = len(col.categories)
    keys = list(col.categories) + ([MISSING_STRING] if col.has_missing else [])
    other = n_known + col.has_missing if col.has_other else -1  # -1: compares equal to nothing (all zeros)
    values = list(range(len(keys)))
    if not keys:  # every training category was rare: all values go to other, missing ones too (as in NumPy)
        keys, values = [MISSING_STRING], [other]  # (an attribute cannot be an empty list)
    codes = g.op("LabelEncoder", [col.name], "category_code", domain=ML_DOMAIN,
                 keys_strings=keys, values_int64s=values, default_int64=other)
    hot = g.op("Equal", [codes, g.const("offsets", np.arange(col.width, dtype=np.int64))], "one_hot")
    return g.op("Cast", [hot], "one_hot_cast", to=elem_type(g.dtype))


def input_metadata(encoder) -> dict[str, str]:
    """Model metadata describing the inputs, for whoever feeds the graph without bpexp."""
    from bpexp.nn.tabular import CategoricalColumn

    described = []
    for col in encoder.columns:
        if isinstance(col, CategoricalColumn):
            described.append({"name": col.name, "kind": "categorical", "type": "string", "shape": ["N", 1],
                              "value_type": col.value_type, "missing": MISSING_STRING,
                              "categories": list(col.categories), "other_bucket": col.has_other})
        else:
            described.append({"name": col.name, "kind": "numeric", "type": "double", "shape": ["N", 1],
                              "missing": "NaN" if col.allow_missing else None})
    return {"inputs": json.dumps(described), "encoded_feature_names": json.dumps(encoder.feature_names_out)}
