"""A real table end to end: the penguins run records its feature schema, exports, predicts and serves raw rows.

Raw rows are what a user has: strings in ``island``/``sex``, ``NA`` cells, the target
column still in the file. Every path (in process, ``mlflow.pyfunc``, ``bpexp predict``,
a real ``bpexp serve``) must answer them with the same predictions, and a bad value in them
is named by row and column alike.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from export_helpers import EXPERIMENTS, run_cli
from test_export_serve import assert_one_line_answer, assert_same_row_as_the_cli, cli_problem, post, serve_model

import bpexp
from bpexp.export.inputs import SERVED_ROW_NOTE

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
@pytest.mark.parametrize("program", ["bpexp", "mlflow"])
def test_served_model_answers_raw_rows_exactly(penguins_export, raw, tmp_path, program):
    """``bpexp serve`` and plain ``mlflow models serve`` alike (MLflow casts before the model sees the rows)."""
    model = bpexp.load_model(penguins_export.path)
    features = raw.drop(columns=["species"])
    expected = model.predict(features).tolist()
    split = json.loads(features.to_json(orient="split", index=False))  # NA -> null, as a client sends it
    inputs = {c: [None if v != v else v for v in features[c].tolist()] for c in features.columns}
    with serve_model(penguins_export.path, tmp_path / "serve.log", program) as url:
        for body, kind in (({"dataframe_split": split}, "application/json"), ({"inputs": inputs}, "application/json"),
                           (features.to_csv(index=False), "text/csv")):
            status, answer = post(url, body, kind)
            assert status == 200, answer
            assert [p["prediction"] for p in answer["predictions"]] == expected, kind
        status, answer = post(url, {"dataframe_split": split, "params": {"proba": True}})
        assert status == 200
        np.testing.assert_allclose(pd.DataFrame(answer["predictions"]).to_numpy(), model.predict_proba(features),
                                   atol=1e-6)


@pytest.mark.services
@pytest.mark.slow
def test_bpexp_serve_names_the_row_of_a_bad_value_as_bpexp_predict_does(penguins_export, raw, tmp_path):
    """Strings and NA cells: a bad request is one line naming row, column and value, the row as the CLI's."""
    features = raw.drop(columns=["species"])
    split = json.loads(features.to_json(orient="split", index=False))
    cols = split["columns"]

    def changed(row: int, column: str, value):
        body = json.loads(json.dumps(split))
        body["data"][row][cols.index(column)] = value
        rows = features.astype(object)
        rows.iloc[row, cols.index(column)] = value
        return body, rows.to_csv(index=False)

    cases = []
    body, csv_text = changed(1, "bill_depth_mm", "tall")  # MLflow's schema check refuses it first
    cases.append(({"dataframe_split": body}, "application/json", csv_text,
                  ["request row 3, column 'bill_depth_mm': 'tall' is not a number", SERVED_ROW_NOTE]))
    cases.append((csv_text, "text/csv", csv_text, ["CSV body row 3, column 'bill_depth_mm': 'tall'"]))
    body, csv_text = changed(2, "year", None)  # no gaps in training: nothing to fill it with
    cases.append(({"dataframe_split": body}, "application/json", csv_text,
                  ["request row 4, column 'year': a missing value", SERVED_ROW_NOTE]))
    cases.append((csv_text, "text/csv", csv_text, ["CSV body row 4, column 'year': a missing value"]))
    missing = {"columns": cols[:-1], "data": [r[:-1] for r in split["data"]]}
    cases.append(({"dataframe_split": missing}, "application/json", None, ["missing column(s) ['year']"]))
    with serve_model(penguins_export.path, tmp_path / "serve.log") as url:
        for body, kind, csv_text, fragments in cases:
            status, answer = post(url, body, kind)
            message = assert_one_line_answer(status, answer, fragments)
            if csv_text is not None:
                assert_same_row_as_the_cli(message, cli_problem(penguins_export.path, csv_text, tmp_path))
        status, answer = post(url, {"dataframe_split": split})  # still serving
        assert status == 200 and len(answer["predictions"]) == len(features)


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
