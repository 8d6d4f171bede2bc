"""A real table end to end: the penguins run records its feature schema, exports, predicts and serves raw rows.

Raw rows are what a user has: strings in ``island``/``sex``, ``NA`` cells, the target
column still in the file. Every path (in process, ``mlflow.pyfunc``, ``bpexp predict``,
a real ``mlflow models serve``) must answer them with the same predictions.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from export_helpers import EXPERIMENTS, run_cli
from test_export_serve import post, serve_model

import bpexp

PENGUINS_CSV = EXPERIMENTS / "data" / "penguins.csv"


@pytest.fixture(scope="module")
def raw():
    frame = pd.read_csv(PENGUINS_CSV)
    return frame.iloc[::9].reset_index(drop=True)  # all three species, rows with NA among them


def test_the_run_records_roles_and_the_feature_schema(store):
    from mlflow import MlflowClient

    client = MlflowClient(store.uri)
    run = client.get_run(store.penguins.run_id)
    assert run.data.params["features.categorical"] == "['island', 'sex']"
    assert run.data.params["features.n_inputs"] == "15"
    local = client.download_artifacts(run.info.run_id, "features.json")
    schema = {row["column"]: row for row in json.loads(open(local).read())}
    assert schema["sex"] == {**schema["sex"], "role": "categorical", "categories": 2}
    assert schema["sex"]["missing_fraction"] > 0
    assert run.inputs.dataset_inputs[0].dataset.name == "penguins"


def test_signature_has_string_and_optional_columns(penguins_export):
    from mlflow.models import Model

    inputs = {c.name: c for c in Model.load(str(penguins_export.path)).signature.inputs.inputs}
    assert inputs["island"].type.name == "string" and inputs["island"].required
    assert inputs["sex"].type.name == "string" and not inputs["sex"].required  # NA in training
    assert not inputs["bill_length_mm"].required and inputs["year"].required


def test_model_card_lists_the_feature_schema(penguins_export):
    card = (penguins_export.path / "README.md").read_text()
    assert "| `island` | categorical | 3 |" in card and "| `sex` | categorical | 2 |" in card
    assert "Columns accepted and ignored: `species`" in card


def test_pyfunc_and_native_load_answer_raw_rows_alike(penguins_export, raw):
    import mlflow

    model = bpexp.load_model(penguins_export.path)
    expected = model.predict(raw)
    assert set(expected) == {"Adelie", "Chinstrap", "Gentoo"}
    pyfunc = mlflow.pyfunc.load_model(str(penguins_export.path))
    assert pyfunc.predict(raw.drop(columns=["species"]))["prediction"].tolist() == expected.tolist()


def test_bpexp_predict_takes_the_raw_csv(penguins_export, tmp_path):
    out = tmp_path / "pred.csv"
    result = run_cli("predict", str(penguins_export.path), str(PENGUINS_CSV), "--proba", "--out", str(out),
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pred = pd.read_csv(out)
    model = bpexp.load_model(penguins_export.path)
    frame = pd.read_csv(PENGUINS_CSV)
    assert pred["prediction"].tolist() == model.predict(frame).tolist()
    np.testing.assert_allclose(pred[["Adelie", "Chinstrap", "Gentoo"]], model.predict_proba(frame), atol=1e-6)


def test_bpexp_predict_names_the_file_row_of_a_bad_value(penguins_export, tmp_path):
    lines = PENGUINS_CSV.read_text().splitlines()
    lines[2] = lines[2].replace(",186,", ",tall,")  # line 3 of the file: flipper_length_mm
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    result = run_cli("predict", str(penguins_export.path), str(bad), cwd=tmp_path)
    assert result.returncode != 0
    assert "row 3, column 'flipper_length_mm': 'tall' is not a number" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.services
@pytest.mark.slow
def test_mlflow_models_serve_answers_raw_rows_exactly(penguins_export, raw, tmp_path):
    model = bpexp.load_model(penguins_export.path)
    features = raw.drop(columns=["species"])
    expected = model.predict(features).tolist()
    split = json.loads(features.to_json(orient="split", index=False))  # NA -> null, as a client sends it
    inputs = {c: [None if v != v else v for v in features[c].tolist()] for c in features.columns}
    with serve_model(penguins_export.path, tmp_path / "serve.log") as url:
        for body, kind in (({"dataframe_split": split}, "application/json"), ({"inputs": inputs}, "application/json"),
                           (features.to_csv(index=False), "text/csv")):
            status, answer = post(url, body, kind)
            assert status == 200, answer
            assert [p["prediction"] for p in answer["predictions"]] == expected, kind
        status, answer = post(url, {"dataframe_split": split, "params": {"proba": True}})
        assert status == 200
        np.testing.assert_allclose(pd.DataFrame(answer["predictions"]).to_numpy(), model.predict_proba(features),
                                   atol=1e-6)
        wrong = {**split, "data": [[*split["data"][0][:2], "tall", *split["data"][0][3:]]]}
        status, answer = post(url, {"dataframe_split": wrong})
        # MLflow's own schema check answers before the model sees the row: it names the column and
        # the value, not the row (in process and in `bpexp predict` bpexp names both).
        assert status == 400
        assert "column bill_depth_mm" in answer["message"] and "'tall'" in answer["message"]
        status, answer = post(url, {"dataframe_split": split})  # still serving
        assert status == 200


def test_bad_table_is_refused_before_any_run_is_created(store, tmp_path):
    from mlflow import MlflowClient

    frame = pd.read_csv(PENGUINS_CSV)
    frame.loc[[3, 10], "species"] = None
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    config = {"dataset": {"name": str(tmp_path / "gaps.csv"), "target": "species"},
              "training": {"epochs": 2}, "tracking": {"experiment": "exp-bad-table"}}
    with pytest.raises(bpexp.InvalidInputError, match=r"missing in 2 row\(s\), first rows \[5, 12\]"):
        bpexp.run(config, tracking_uri=store.uri, progress=False)
    client = MlflowClient(store.uri)
    experiment = client.get_experiment_by_name("exp-bad-table")
    assert experiment is None or not client.search_runs([experiment.experiment_id])
