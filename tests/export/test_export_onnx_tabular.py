"""ONNX export of table models: the preprocessing is in the graph, fed raw strings and NaN.

Every comparison is onnxruntime against the NumPy model on the same raw rows
(strings, booleans, integers, None, NaN), on the encoded features as well as on the
outputs, so a difference in the graph's imputation or one-hot shows up at the column.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from export_helpers import EXPERIMENTS, run_cli

import bpexp
from bpexp.data.tabular import fit_encoder, infer_roles

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from bpexp.export.errors import OnnxCheckError  # noqa: E402
from bpexp.export.onnx import check_onnx, check_rows, onnx_inputs, to_onnx  # noqa: E402
from bpexp.export.onnx.check import _expose_features  # noqa: E402

PENGUINS_CSV = EXPERIMENTS / "data" / "penguins.csv"


def _fit(frame: pd.DataFrame, target: str, *, categorical=(), dtype="float32", epochs=15, task=None, **enc_kw):
    roles = infer_roles(frame, target=target, categorical=categorical)
    X = frame.drop(columns=[target])
    enc = fit_encoder(X, roles, **enc_kw)
    y = frame[target].to_numpy()
    n_out = 1 if task == "regression" else len(np.unique(y))
    model = bpexp.MLP([enc.n_features_out, 16, n_out], encoder=enc, seed=0, dtype=dtype,
                      task=task or "classification")
    bpexp.fit(model, X, y, optimizer="adam", lr=0.01, epochs=epochs, seed=0)
    return model


def _session(model, tmp_path, features=False):
    """The exported graph in onnxruntime; with ``features`` its encoded matrix as an extra last output."""
    path = tmp_path / "m.onnx"
    onnx.save(to_onnx(model, feature_names=model.encoder.input_names), str(path))
    proto = onnx.load(str(path))
    if features:
        _expose_features(proto)
    return path, ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def penguins():
    frame = pd.read_csv(PENGUINS_CSV)
    gaps = [c for c in frame.columns if frame[c].dtype.kind == "f" and frame[c].isna().any()]
    return frame, _fit(frame.iloc[::2], "species", allow_missing=gaps)  # as the runner: gaps anywhere allowed


def _mixed(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Every kind of column: float with gaps, integer numbers, booleans, integer categories with a rare value,
    strings with gaps and a rare value, strings without gaps or rare values."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.1] = np.nan
    grade = rng.choice([1, 2, 3, 7], size=n, p=[0.4, 0.3, 0.29, 0.01])
    color = rng.choice(["red", "green", "blue", "teal"], size=n, p=[0.4, 0.3, 0.28, 0.02]).astype(object)
    color[rng.random(n) < 0.1] = None
    flag = rng.random(n) < 0.5
    city = rng.choice(["Oslo", "Zürich"], size=n)  # UTF-8 strings in and out of onnxruntime
    y = ((np.nan_to_num(x) > 0) ^ flag ^ (city == "Oslo")).astype(int) + (grade == 3)
    return pd.DataFrame({"x": x, "count": rng.integers(0, 50, size=n), "flag": flag, "grade": grade,
                         "color": color, "city": city, "y": y})


def test_penguins_graph_takes_raw_strings_and_nan(penguins, tmp_path):
    frame, model = penguins
    path, session = _session(model, tmp_path)
    types = {i.name: i.type for i in session.get_inputs()}
    assert types == {"island": "tensor(string)", "sex": "tensor(string)", "year": "tensor(double)",
                     **{c: "tensor(double)" for c in ["bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                                                      "body_mass_g"]}}
    raw = frame.iloc[1::2]  # the rows not trained on, the target column still there (ignored)
    assert raw["sex"].isna().any() and raw["bill_length_mm"].isna().any()
    feeds = onnx_inputs(model, raw)
    assert feeds["sex"].shape == (len(raw), 1) and "" in feeds["sex"][:, 0].tolist()
    proba, label = session.run(None, feeds)
    assert np.abs(proba - model.predict_proba(raw)).max() <= 1e-5
    assert label.tolist() == model.predict(raw).tolist()
    check = check_onnx(path, model, raw.head(5))
    assert check.n_edge_rows > 0 and check.n_rows == 5 + check.n_edge_rows and check.labels_agree == 1.0
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    described = {d["name"]: d for d in json.loads(meta["inputs"])}
    assert described["sex"]["missing"] == "" and described["island"]["categories"] == ["Biscoe", "Dream",
                                                                                        "Torgersen"]
    assert json.loads(meta["encoded_feature_names"]) == model.encoder.feature_names_out


def test_graph_ops_use_the_ml_domain(penguins, tmp_path):
    path, _ = _session(penguins[1], tmp_path)
    proto = onnx.load(str(path))
    ops = {(n.domain, n.op_type) for n in proto.graph.node}
    assert {("ai.onnx.ml", "LabelEncoder"), ("", "IsNaN"), ("", "Where"), ("", "Concat")} <= ops
    assert {o.domain: o.version for o in proto.opset_import} == {"": 17, "ai.onnx.ml": 3}


def test_bool_integer_other_and_missing_buckets_match_numpy(tmp_path):
    frame = _mixed()
    model = _fit(frame, "y", categorical=["grade"])
    cols = {c.name: c for c in model.encoder.columns}
    assert cols["flag"].value_type == "boolean" and cols["grade"].value_type == "integer"
    assert cols["grade"].has_other and not cols["grade"].has_missing  # 7 is rare: the other bucket
    assert cols["color"].has_other and cols["color"].has_missing
    assert not cols["city"].has_other and not cols["city"].has_missing
    raw = pd.DataFrame({
        "x": [0.5, np.nan, -1.0, 2.0, np.nan, 0.0],
        "count": [3, 10, 0, 49, 7, 1],
        "flag": pd.array([True, False, True, False, True, None], dtype=object),
        "grade": pd.array([1, 7, 99, None, 3, 2], dtype=object),  # rare, unseen, missing (no missing bucket)
        "color": ["red", "teal", "purple", None, "blue", "green"],  # rare, unseen, missing (has the bucket)
        "city": ["Oslo", "Atlantis", None, "Zürich", "Zürich", "Oslo"],  # unseen and missing: no bucket at all
    })
    _, session = _session(model, tmp_path, features=True)
    feeds = onnx_inputs(model, raw)
    assert feeds["flag"][:, 0].tolist() == ["True", "False", "True", "False", "True", ""]
    typed = {"flag": np.array([True, False]), "grade": np.array([7, 2]), "color": np.array(["teal", "red"])}
    assert {k: v[:, 0].tolist() for k, v in onnx_inputs(model, {**raw.head(2), **typed}).items()
            if k in typed} == {"flag": ["True", "False"], "grade": ["7", "2"], "color": ["teal", "red"]}
    assert feeds["grade"][:, 0].tolist() == ["1", "7", "99", "", "3", "2"]
    proba, label, features = session.run(None, feeds)
    expected = model.check_X(raw)
    assert np.array_equal(features, expected)  # bit for bit: imputation and scaling in float64 as NumPy does
    names = model.encoder.feature_names_out
    block = {n: features[:, names.index(n)] for n in names}
    assert block["city=Oslo"][1] == block["city=Zürich"][1] == 0  # unseen without other bucket: all zeros
    assert block["color=other"].tolist()[:4] == [0, 1, 1, 0] and block["color=missing"][3] == 1
    assert block["grade=other"].tolist()[:4] == [0, 1, 1, 1]  # missing without a missing bucket: other
    assert block["x=missing"].tolist()[:2] == [0, 1]
    assert np.abs(proba - model.predict_proba(raw)).max() <= 1e-5
    assert label.tolist() == model.predict(raw).tolist()


def test_check_rows_add_unseen_and_missing_values(tmp_path):
    model = _fit(_mixed(), "y", categorical=["grade"])
    example = _mixed(5, seed=1).drop(columns=["y"])
    rows, n_edge = check_rows(model.encoder, example)
    assert len(rows["color"]) == 5 + n_edge
    edge = {c: list(v[5:]) for c, v in rows.items()}
    assert None in edge["color"] and None in edge["city"] and np.isnan(edge["x"]).any()
    assert any(isinstance(v, str) and "unseen" in v for v in edge["city"])
    assert not np.isnan(edge["count"]).any()  # count had no gaps: NumPy would refuse a missing count
    path, _ = _session(model, tmp_path)
    assert check_onnx(path, model, example).n_edge_rows == n_edge


def test_float64_table_model_exports_a_double_graph(tmp_path):
    frame = _mixed()
    model = _fit(frame, "y", dtype="float64")
    path, session = _session(model, tmp_path)
    assert session.get_outputs()[0].type == "tensor(double)"
    raw = frame.drop(columns=["y"]).head(40)
    proba, _ = session.run(None, onnx_inputs(model, raw))
    assert np.abs(proba - model.predict_proba(raw)).max() < 1e-12
    check_onnx(path, model, raw)


def test_regression_table_model(tmp_path):
    frame = pd.read_csv(PENGUINS_CSV).dropna(subset=["body_mass_g"])
    model = _fit(frame, "body_mass_g", task="regression", epochs=10)
    path, session = _session(model, tmp_path)
    (values,) = session.run(None, onnx_inputs(model, frame.head(30)))
    expected = model.predict(frame.head(30))
    assert np.abs(values[:, 0] - expected).max() / max(1.0, np.abs(expected).max()) <= 1e-5
    check_onnx(path, model, frame.head(5))


def test_a_column_whose_categories_were_all_rare_is_all_other(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"code": [f"c{i}" for i in range(60)], "x": rng.normal(size=60), "y": [0, 1] * 30})
    model = _fit(frame, "y", epochs=2)
    assert model.encoder.columns[0].categories == [] and model.encoder.columns[0].has_other
    _, session = _session(model, tmp_path, features=True)
    raw = pd.DataFrame({"code": ["c1", "new", None], "x": [0.0, 1.0, 2.0]})
    *_, features = session.run(None, onnx_inputs(model, raw))
    assert features[:, 0].tolist() == [1, 1, 1] and np.array_equal(features, model.check_X(raw))


def test_onnx_inputs_from_a_dict_and_an_absent_optional_column(penguins):
    model = penguins[1]
    rows = {"island": ["Dream", "Biscoe"], "bill_length_mm": [40.0, None], "bill_depth_mm": [18.0, 17.0],
            "flipper_length_mm": [190, 200], "body_mass_g": [3800.0, 4000.0], "year": [2008, 2009]}
    feeds = onnx_inputs(model, rows)  # "sex" may be missing: absent means missing in every row
    assert feeds["sex"][:, 0].tolist() == ["", ""]
    assert feeds["bill_length_mm"].dtype == np.float64 and np.isnan(feeds["bill_length_mm"][1, 0])
    assert feeds["flipper_length_mm"][:, 0].tolist() == [190.0, 200.0]
    as_category = {**rows, "island": pd.Series(["Dream", None], dtype="category")}
    assert onnx_inputs(model, as_category)["island"][:, 0].tolist() == ["Dream", ""]
    with pytest.raises(bpexp.errors.InvalidInputError, match="missing column.*'year'"):
        onnx_inputs(model, {k: v for k, v in rows.items() if k != "year"})


def test_missing_marker_is_the_same_in_feeds_and_graph():
    from bpexp.export.onnx import feeds, tabular

    assert feeds.MISSING_STRING == tabular.MISSING_STRING == ""


def test_column_names_of_graph_internals_are_kept_apart(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"features": rng.normal(size=80), "input": rng.choice(["a", "b"], size=80),
                          "matmul0_3": rng.normal(size=80), "Größe (cm)": rng.normal(size=80),
                          "y": rng.integers(0, 2, size=80)})
    model = _fit(frame, "y", epochs=3)
    path, session = _session(model, tmp_path)
    assert sorted(i.name for i in session.get_inputs()) == ["Größe (cm)", "features", "input", "matmul0_3"]
    check_onnx(path, model, frame.head(5))


def test_an_empty_string_category_cannot_be_expressed(tmp_path):
    frame = pd.DataFrame({"size": ["", "S", "M"] * 30, "x": np.arange(90.0), "y": [0, 1] * 45})
    model = _fit(frame, "y", epochs=1)
    assert "" in model.encoder.columns[0].categories
    with pytest.raises(OnnxCheckError, match=r"input column 'size' has the empty string as a training category"):
        to_onnx(model)


def test_a_column_named_like_an_output_cannot_be_expressed():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"label": rng.choice(["a", "b"], size=60), "x": rng.normal(size=60), "y": [0, 1] * 30})
    with pytest.raises(OnnxCheckError, match=r"input column 'label' has the name of an output of the ONNX graph"):
        to_onnx(_fit(frame, "y", epochs=1))


def test_check_names_the_column_whose_encoding_differs(penguins, tmp_path):
    import copy

    frame, model = penguins
    path, _ = _session(model, tmp_path)
    tampered = copy.deepcopy(model)
    col = next(c for c in tampered.encoder.columns if c.name == "flipper_length_mm")
    col.mean += 1.0  # the NumPy model now standardizes this column differently from the saved graph
    with pytest.raises(OnnxCheckError, match=r"preprocessing of input column 'flipper_length_mm' differs"):
        check_onnx(path, tampered, frame.head(5))


def test_export_run_writes_a_table_graph_that_answers_raw_rows(store, tmp_path):
    from bpexp.export import export_run

    result = export_run(store.penguins.run_id, tmp_path / "penguins", tracking_uri=store.uri, onnx=True)
    assert result.onnx_check.n_edge_rows > 0 and result.onnx_check.max_abs_diff <= 1e-5
    model = bpexp.load_model(result.path)
    raw = pd.read_csv(PENGUINS_CSV).iloc[::7]  # with NA cells and the species column
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    proba, label = session.run(None, onnx_inputs(model, raw))
    assert np.abs(proba - model.predict_proba(raw)).max() <= 1e-5
    assert label.tolist() == model.predict(raw).tolist()
    card = result.readme_path.read_text()
    assert "onnx_inputs" in card and '"input"' not in card


def test_cli_onnx_fails_before_writing_and_names_the_column(mlflow_sqlite_uri, tmp_path):
    rng = np.random.default_rng(0)
    csv = tmp_path / "labelled.csv"
    pd.DataFrame({"label": rng.choice(["a", "b"], size=60), "x": rng.normal(size=60),
                  "y": rng.integers(0, 2, size=60)}).to_csv(csv, index=False)
    cfg = tmp_path / "labelled.yaml"
    cfg.write_text(f"dataset:\n  name: {csv}\n  target: y\nmodel:\n  hidden: [4]\ntraining:\n  epochs: 2\n"
                   "tracking:\n  experiment: labelled\n")
    result = bpexp.run(str(cfg), tracking_uri=mlflow_sqlite_uri, progress=False, log_plots=False)
    out = tmp_path / "export"
    done = run_cli("export", result.run_id, "--out", str(out), "--onnx", "--tracking-uri", mlflow_sqlite_uri,
                   cwd=tmp_path)
    assert done.returncode != 0
    assert "input column 'label' has the name of an output of the ONNX graph" in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".export.export-*"))  # nothing written, no staging left
