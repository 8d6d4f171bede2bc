"""``bpexp serve``'s app in process: MLflow's real scoring app, wrapped, driven over ASGI (no server needed).

Valid requests must be answered byte for byte as MLflow's unwrapped app answers
them; only 4xx JSON answers of ``/invocations`` change. A pyfunc model that is not
bpexp's gets MLflow's own messages, cut to one line, and its stack traces go to the log.
"""

from __future__ import annotations

import json
import logging
import textwrap
import warnings

import pandas as pd
import pytest

with warnings.catch_warnings():  # starlette's note that its test client will move from httpx to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from bpexp.export.serve_app import MODEL_ENV, create_app
from bpexp.export.serve_errors import clean_message

OTHER_MODEL = '''
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class Sum(PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        scale = (params or {}).get("scale", 1.0)
        return pd.DataFrame({"total": (model_input["a"] + model_input["b"]) * scale})


set_model(Sum())
'''


def clients(path, monkeypatch):
    """(wrapped bpexp serve app, MLflow's own app) for the model directory ``path``."""
    from mlflow.pyfunc import scoring_server

    monkeypatch.setenv(MODEL_ENV, str(path))
    plain = scoring_server.init(scoring_server.load_model_with_mlflow_config(str(path)))
    return TestClient(create_app()), TestClient(plain)


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    """A pyfunc model from code that is not bpexp's: two double columns summed, a ``scale`` param."""
    import mlflow
    from mlflow.models import infer_signature

    root = tmp_path_factory.mktemp("other")
    code = root / "sum_model.py"
    code.write_text(textwrap.dedent(OTHER_MODEL))
    example = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    signature = infer_signature(example, pd.DataFrame({"total": [4.0, 6.0]}), params={"scale": 1.0})
    mlflow.pyfunc.save_model(path=str(root / "model"), python_model=str(code), signature=signature,
                            input_example=example)
    return root / "model"


def post(client, body, content_type="application/json"):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post("/invocations", content=data, headers={"Content-Type": content_type})


def test_valid_requests_and_other_routes_are_mlflow_s_own_answers(iris_export, monkeypatch):
    wrapped, plain = clients(iris_export.path, monkeypatch)
    example = (iris_export.path / "serving_input_example.json").read_text()
    frame = pd.DataFrame(json.loads(example)["dataframe_split"]["data"],
                         columns=json.loads(example)["dataframe_split"]["columns"])
    for body, kind in ((example, "application/json"), (frame.to_csv(index=False), "text/csv"),
                       (json.dumps({**json.loads(example), "params": {"proba": True}}), "application/json")):
        got, want = post(wrapped, body, kind), post(plain, body, kind)
        assert got.status_code == want.status_code == 200
        assert got.content == want.content
    for route in ("/ping", "/health", "/version"):
        assert wrapped.get(route).content == plain.get(route).content
    # An unsupported content type is MLflow's plain-text 415, untouched.
    got, want = post(wrapped, example, "text/plain"), post(plain, example, "text/plain")
    assert got.status_code == want.status_code == 415 and got.content == want.content


def test_another_pyfunc_model_gets_mlflow_s_messages_on_one_line_and_traces_in_the_log(other_model, monkeypatch,
                                                                                        caplog):
    wrapped, plain = clients(other_model, monkeypatch)
    assert post(wrapped, {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}}).json() == \
        {"predictions": [{"total": 3.0}]}

    bad_csv = "a,b\n1,2\n1,abc\n"
    raw = post(plain, bad_csv, "text/csv").json()
    assert raw.get("stack_trace"), "MLflow's own answer carries a stack trace"  # what the wrapper removes
    with caplog.at_level(logging.WARNING, logger="bpexp.export.serve_app"):
        answer = post(wrapped, bad_csv, "text/csv")
    body = answer.json()
    assert answer.status_code == 400 and "stack_trace" not in body
    assert "\n" not in body["message"] and "could not convert string to float: 'abc'" in body["message"]
    assert any("Traceback" in r.getMessage() for r in caplog.records if r.name == "bpexp.export.serve_app")

    missing = {"dataframe_split": {"columns": ["a"], "data": [[1.0]] * 40}}
    assert "Failed to predict data" in post(plain, missing).json()["message"]  # MLflow embeds the DataFrame
    body = post(wrapped, missing).json()
    assert body["message"] == "Model is missing inputs ['b']."

    body = post(wrapped, '{"dataframe_split": [1, 2', "application/json").json()
    assert "valid JSON formatted string" in body["message"] and "Input:" not in body["message"]
    assert "\n" not in body["message"]

    body = post(wrapped, {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]},
                          "params": {"scale": "big"}}).json()
    assert body["message"] == "params: 'scale' must be a double (default 1.0), got 'big'"


def test_clean_message_cuts_mlflow_s_embedded_data_and_notices():
    from mlflow.pyfunc.scoring_server import SCORING_PROTOCOL_CHANGE_INFO

    frame = pd.DataFrame({"x": range(50)})
    nested = (f"Failed to predict data '{frame}'. \nError: Failed to enforce schema of data '{frame}' with schema "
              f"'['x': double (required)]'. Error: Model is missing inputs ['y'].")
    assert clean_message(nested) == "Model is missing inputs ['y']."
    notice = f"The input must be a JSON dictionary with one of ... Received: []. {SCORING_PROTOCOL_CHANGE_INFO}"
    assert clean_message(notice) == "The input must be a JSON dictionary with one of ... Received: []."
    assert len(clean_message("word " * 1000)) == 500
    assert clean_message("") == "the request was refused"
