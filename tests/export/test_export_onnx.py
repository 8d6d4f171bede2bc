"""ONNX conversion: every activation and head, checked against onnxruntime (no MLflow involved)."""

from __future__ import annotations

import numpy as np
import pytest

import bpexp
from bpexp.data import load_dataset, split

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from bpexp.export.errors import OnnxCheckError  # noqa: E402
from bpexp.export.onnx import ONNX_OPSET, check_onnx, reference_outputs, to_onnx  # noqa: E402


def _trained(dataset: str, hidden=(12, 8), activation="relu", task=None, labels=None, dtype="float32",
             standardize=True, epochs=8, **model_kw):
    ds = load_dataset(dataset, seed=0)
    parts = split(ds, seed=0)
    task = task or ("regression" if ds.task == "regression" else "classification")
    n_out = model_kw.pop("n_out", ds.n_outputs)
    y = parts.y_train if labels is None else np.asarray(labels)[parts.y_train]
    model = bpexp.MLP([ds.n_features, *hidden, n_out], activation=activation, task=task, standardize=standardize,
                      seed=0, dtype=dtype, **model_kw)
    bpexp.fit(model, parts.X_train, y, optimizer="adam", lr=0.01, epochs=epochs, seed=0)
    return model, parts.X_test


def _run(model, X, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(to_onnx(model), str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return path, session.run(None, {"input": model.check_X(X)}), session


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "identity"])
def test_softmax_classifier_each_activation(activation, tmp_path):
    model, X = _trained("digits", activation=activation)
    path, (proba, label), _ = _run(model, X, tmp_path)
    assert np.abs(proba - model.predict_proba(X)).max() <= 1e-5
    assert (label == model.predict(X)).mean() == 1.0
    check = check_onnx(path, model, X)
    assert check.max_abs_diff <= 1e-5 and check.n_rows == len(X) and check.labels_agree == 1.0


def test_leaky_relu_alpha_is_kept(tmp_path):
    from bpexp.nn.activations import LeakyReLU

    model, X = _trained("wine", activation=[LeakyReLU(0.3), LeakyReLU(0.3)])
    path, (proba, _), _ = _run(model, X, tmp_path)
    node = next(n for n in onnx.load(str(path)).graph.node if n.op_type == "LeakyRelu")
    assert pytest.approx(node.attribute[0].f) == 0.3
    assert np.abs(proba - model.predict_proba(X)).max() <= 1e-5


def test_binary_sigmoid_head_gives_two_probability_columns(tmp_path):
    model, X = _trained("breast_cancer", activation="gelu")
    assert model.n_outputs == 1  # the single-unit sigmoid head
    _, (proba, label), _ = _run(model, X, tmp_path)
    assert proba.shape == (len(X), 2)
    assert np.abs(proba - model.predict_proba(X)).max() <= 1e-5
    assert (label == model.predict(X)).all()


def test_string_class_labels_come_out_of_the_label_output(tmp_path):
    names = np.array(["setosa", "versicolor", "virginica"])
    model, X = _trained("iris", activation="tanh", labels=names)
    path, (_, label), _ = _run(model, X, tmp_path)
    assert label.tolist() == model.predict(X).tolist()
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["classes"] == '["setosa", "versicolor", "virginica"]'


def test_regression_with_target_scaling_and_no_standardization(tmp_path):
    model, X = _trained("diabetes", activation="gelu")
    path, (values,), _ = _run(model, X, tmp_path)
    assert values.shape == (len(X), 1)
    expected = model.predict(X)
    assert np.abs(expected).max() > 50  # values in the targets' own units: the scaling is in the graph
    # float32 resolves ~300 to 3e-5 only, so large values are compared relative to their size.
    assert np.abs(values[:, 0] - expected).max() / np.abs(expected).max() <= 1e-5
    check_onnx(path, model, X)

    raw, X2 = _trained("diabetes", standardize=False, epochs=2)
    path2, (values2,), _ = _run(raw, X2, tmp_path)
    assert [n.op_type for n in onnx.load(str(path2)).graph.node][-1] == "Identity"
    check_onnx(path2, raw, X2)


def test_float64_models_export_double_graphs(tmp_path):
    model, X = _trained("moons", activation="gelu", dtype="float64")
    path, (proba, _), session = _run(model, X, tmp_path)
    assert session.get_inputs()[0].type == "tensor(double)"
    assert np.abs(proba - model.predict_proba(X)).max() < 1e-12


def test_multilabel_sigmoid_outputs(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    Y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] < 0.5], axis=1).astype(int)
    model = bpexp.MLP([5, 8, 3], task="multilabel", standardize=True, seed=0)
    bpexp.fit(model, X, Y, optimizer="adam", lr=0.01, epochs=5, seed=0)
    path, outputs, _ = _run(model, X[:20], tmp_path)
    assert len(outputs) == 1  # probabilities only: labels are per-column thresholds
    assert np.abs(outputs[0] - model.predict_proba(X[:20])).max() <= 1e-5
    check_onnx(path, model, X[:20])


def test_graph_uses_the_announced_opset_and_ops(tmp_path):
    model, X = _trained("digits", activation="relu")
    path, _, _ = _run(model, X, tmp_path)
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == ONNX_OPSET
    ops = [n.op_type for n in proto.graph.node]
    assert ops[:4] == ["Sub", "Div", "MatMul", "Add"] and "Softmax" in ops
    assert {o.name for o in proto.graph.output} == {"probabilities", "label"}


def test_check_fails_when_the_graph_differs_from_the_model(tmp_path):
    model, X = _trained("digits")
    path = tmp_path / "m.onnx"
    onnx.save(to_onnx(model), str(path))
    W, _ = model.weights[0]
    W += 0.01  # the NumPy model now computes something else than the saved graph
    with pytest.raises(OnnxCheckError, match=r"does not reproduce the NumPy model: max abs difference"):
        check_onnx(path, model, X)


def test_check_fails_on_an_unreadable_graph(tmp_path):
    model, X = _trained("digits", epochs=1)
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not a protobuf")
    with pytest.raises(OnnxCheckError, match="onnxruntime cannot run the exported graph"):
        check_onnx(path, model, X)


def test_reference_outputs_are_two_dimensional():
    model, X = _trained("diabetes", epochs=1)
    assert reference_outputs(model, X).shape == (len(X), 1)
