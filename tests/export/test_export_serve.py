"""A real ``bpexp serve`` of an export: every request format answers exactly the in-process predictions.

One server for the module (the iris export, whose class labels are strings), started
by the real CLI. Bad requests get a 4xx whose message is one line naming the problem,
with the row numbered as ``bpexp predict`` numbers it in a CSV file of the same rows,
and no ``stack_trace``; the server keeps serving afterwards. ``mlflow models serve``
of the same export still answers valid requests (its error bodies are MLflow's own).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import services
from export_helpers import BPEXP, run_cli

from bpexp.export.inputs import SERVED_ROW_NOTE

pytestmark = [pytest.mark.services, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def server(iris_export, tmp_path_factory):
    """``http://127.0.0.1:PORT`` of ``bpexp serve <iris export>``."""
    with serve_model(iris_export.path, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


@contextlib.contextmanager
def serve_model(model_path, log: Path, program: str = "bpexp", args: tuple[str, ...] = (),
                env_extra: dict[str, str] | None = None):
    """Start ``bpexp serve`` (or ``mlflow models serve``) on a free 127.0.0.1 port, yield its URL, stop it."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env.update(env_extra or {})
    # `mlflow models serve` execs uvicorn from PATH: the venv's bin must come first (bpexp serve needs no PATH).
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", MLFLOW_DISABLE_TELEMETRY="true")
    for attempt in range(3):
        port = services.free_port()
        if program == "bpexp":
            cmd = [BPEXP, "serve", str(model_path), "--port", str(port), *args]
        else:
            cmd = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", str(model_path), "--env-manager", "local",
                   "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
        with open(log, "ab") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    cwd=log.parent, start_new_session=True)
        try:
            services.wait_for_http(f"http://127.0.0.1:{port}/ping", proc=proc, log_path=log,
                                   name=f"{program} serve", timeout=90)
        except services.ServiceStartError:
            services.stop_process_group(proc)
            log_text = services.log_tail(log, 20).lower()
            if attempt < 2 and ("address already in use" in log_text or "already in use" in log_text):
                continue
            raise
        break
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        services.stop_process_group(proc)


def post(url: str, body, content_type: str = "application/json") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    request = urllib.request.Request(url + "/invocations", data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310 - local server
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def data(iris_rows, iris_export):
    import mlflow

    names, rows, _ = iris_rows
    frame = pd.DataFrame(rows[::7], columns=names)  # a spread of rows from all three classes
    pyfunc = mlflow.pyfunc.load_model(str(iris_export.path))
    return {
        "names": names, "frame": frame,
        "labels": pyfunc.predict(frame)["prediction"].tolist(),
        "proba": pyfunc.predict(frame, params={"proba": True}),
    }


def assert_still_serving(server, data):
    with contextlib.closing(urllib.request.urlopen(server + "/ping", timeout=10)) as resp:  # noqa: S310
        assert resp.status == 200
    status, body = post(server, {"dataframe_split": data["frame"].to_dict(orient="split")})
    assert status == 200 and [p["prediction"] for p in body["predictions"]] == data["labels"]


def test_in_process_predictions_are_the_trained_model(store, data):
    X = data["frame"].to_numpy()
    assert data["labels"] == store.iris.model.predict(X).tolist()
    assert np.array_equal(data["proba"].to_numpy(), store.iris.model.predict_proba(X))


def test_dataframe_split(server, data):
    status, body = post(server, {"dataframe_split": data["frame"].to_dict(orient="split")})
    assert status == 200
    assert [p["prediction"] for p in body["predictions"]] == data["labels"]
    assert {"setosa", "versicolor", "virginica"} >= set(data["labels"])


def test_dataframe_split_with_probabilities_is_exact(server, data):
    status, body = post(server, {"dataframe_split": data["frame"].to_dict(orient="split"), "params": {"proba": True}})
    assert status == 200
    got = pd.DataFrame(body["predictions"])[list(data["proba"].columns)].to_numpy()
    assert np.array_equal(got, data["proba"].to_numpy().astype(np.float64))  # bit for bit, through JSON


def test_inputs_by_column(server, data):
    columns = {c: data["frame"][c].tolist() for c in data["names"]}
    status, body = post(server, {"inputs": columns})
    assert status == 200 and [p["prediction"] for p in body["predictions"]] == data["labels"]


def test_csv(server, data):
    status, body = post(server, data["frame"].to_csv(index=False), "text/csv")
    assert status == 200 and [p["prediction"] for p in body["predictions"]] == data["labels"]


def test_serving_input_example_file(server, iris_export):
    status, body = post(server, (iris_export.path / "serving_input_example.json").read_bytes())
    assert status == 200 and len(body["predictions"]) == 5


ROW = re.compile(r"row (\d+), column '([^']+)'")


def cli_problem(export_path: Path, csv_text: str, tmp_path: Path) -> str:
    """``bpexp predict``'s error (stderr) for ``csv_text`` written to a file: the real CLI."""
    path = tmp_path / "rows.csv"
    path.write_text(csv_text)
    result = run_cli("predict", str(export_path), str(path), cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    return result.stderr


def assert_one_line_answer(status: int, answer: dict, fragments: list[str]) -> str:
    assert 400 <= status < 500, (status, answer)
    assert answer.get("error_code") in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"), answer
    assert "stack_trace" not in answer, answer
    message = answer["message"]
    assert "\n" not in message and len(message) < 500, message
    assert "Traceback" not in message and "Failed to predict data" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def assert_same_row_as_the_cli(message: str, cli_stderr: str) -> None:
    """The served message and ``bpexp predict`` name the same row (header = row 1) and column."""
    served, cli = ROW.search(message), ROW.search(cli_stderr)
    assert served and cli, (message, cli_stderr)
    assert served.groups() == cli.groups(), (message, cli_stderr)


def bad_requests(data) -> list[tuple]:
    """(what, body, content type, fragments, the same rows as a CSV file or None) for each bad request."""
    frame, split = data["frame"], data["frame"].to_dict(orient="split")
    split.pop("index", None)
    cases = []

    text = json.loads(json.dumps(split))
    text["data"][1][0] = "abc"
    as_csv = frame.astype(object)
    as_csv.iloc[1, 0] = "abc"
    wrong = ["row 3, column 'sepal_length_cm': 'abc' is not a number", SERVED_ROW_NOTE]
    cases.append(("wrong type, dataframe_split", {"dataframe_split": text}, "application/json", wrong, as_csv))
    records = [dict(zip(split["columns"], row)) for row in text["data"]]
    cases.append(("wrong type, dataframe_records", {"dataframe_records": records}, "application/json", wrong,
                  as_csv))
    columns = {c: [row[i] for row in text["data"]] for i, c in enumerate(split["columns"])}
    cases.append(("wrong type, inputs", {"inputs": columns}, "application/json", wrong, as_csv))

    nan = json.loads(json.dumps(split))
    nan["data"][2][1] = None
    as_csv = frame.copy()
    as_csv.iloc[2, 1] = np.nan
    cases.append(("missing value", {"dataframe_split": nan}, "application/json",
                  ["row 4, column 'sepal_width_cm': a missing value (empty or NaN)", SERVED_ROW_NOTE], as_csv))

    missing = {"columns": split["columns"][:-1], "data": [r[:-1] for r in split["data"]]}
    cases.append(("missing column", {"dataframe_split": missing}, "application/json",
                  ["missing column(s) ['petal_width_cm']"], frame.iloc[:, :-1]))

    bad_csv = frame.astype(object)
    bad_csv.iloc[3, 2] = "abc"
    cases.append(("bad CSV value", bad_csv.to_csv(index=False), "text/csv",
                  ["CSV body row 5, column 'petal_length_cm': 'abc' is not a number"], bad_csv))
    nan_csv = frame.copy()
    nan_csv.iloc[4, 3] = np.nan
    cases.append(("CSV missing value", nan_csv.to_csv(index=False), "text/csv",
                  ["CSV body row 6, column 'petal_width_cm': a missing value"], nan_csv))
    ragged = frame.to_csv(index=False) + "1,2,3,4,5\n"
    cases.append(("ragged CSV", ragged, "text/csv",
                  ["not a readable CSV file", f"Expected 4 fields in line {len(frame) + 2}, saw 5"], ragged))

    rows = [r[:-1] for r in split["data"]]  # `inputs` as bare rows: no names to match
    cases.append(("bare rows, one short", {"inputs": rows}, "application/json",
                  ["request has 3 columns, the model expects 4"], None))
    cases.append(("bad params", {"dataframe_split": split, "params": {"proba": "yes"}}, "application/json",
                  ["params: 'proba' must be a boolean", "'yes'"], None))
    cases.append(("bad JSON", '{"dataframe_split": {"columns": [', "application/json",
                  ["valid JSON formatted string"], None))
    cases.append(("no request format", {"rows": split["data"]}, "application/json",
                  ["exactly one of the input fields"], None))
    return cases


def test_bad_requests_get_one_line_4xx_naming_the_problem_and_row_as_the_cli_does(server, data, iris_export,
                                                                                   tmp_path):
    for what, body, content_type, fragments, same_rows in bad_requests(data):
        status, answer = post(server, body, content_type)
        message = assert_one_line_answer(status, answer, fragments)
        if same_rows is not None:
            csv_text = same_rows if isinstance(same_rows, str) else same_rows.to_csv(index=False)
            cli = cli_problem(iris_export.path, csv_text, tmp_path)
            if ROW.search(message):
                assert_same_row_as_the_cli(message, cli)
            else:  # no row to name (a missing column, a file pandas cannot split): the same problem
                assert fragments[-1].split(": ")[-1] in cli, (what, cli)
        assert "Input:" not in message and "IMPORTANT" not in message, (what, message)
        assert_still_serving(server, data)


def test_mlflow_models_serve_still_answers_valid_requests(iris_export, data, tmp_path):
    """The same export under plain ``mlflow models serve``: valid requests as ever; bpexp's own messages
    from inside the model (a missing value) number rows as bpexp serve does; MLflow's own are MLflow's."""
    with serve_model(iris_export.path, tmp_path / "serve.log", program="mlflow") as url:
        status, body = post(url, {"dataframe_split": data["frame"].to_dict(orient="split")})
        assert status == 200 and [p["prediction"] for p in body["predictions"]] == data["labels"]
        status, body = post(url, data["frame"].to_csv(index=False), "text/csv")
        assert status == 200 and [p["prediction"] for p in body["predictions"]] == data["labels"]
        split = json.loads(json.dumps(data["frame"].to_dict(orient="split")))
        split["data"][2][1] = None
        status, answer = post(url, {"dataframe_split": split})
        assert status == 400
        assert "request row 4, column 'sepal_width_cm': a missing value (empty or NaN)" in answer["message"]
        assert SERVED_ROW_NOTE in answer["message"]


def test_extra_columns_are_dropped_by_mlflow_before_the_model(server, data):
    """MLflow's schema enforcement ignores unknown named columns (with a warning in the server log).

    The model never sees them, so it cannot refuse them; ``bpexp predict`` does refuse them.
    """
    frame = data["frame"].assign(species="setosa")
    status, body = post(server, {"dataframe_split": frame.to_dict(orient="split")})
    assert status == 200 and [p["prediction"] for p in body["predictions"]] == data["labels"]


def test_bpexp_serve_downloads_a_registry_model_once_and_removes_it_when_stopped(store, data, tmp_path):
    from bpexp.export import register_model

    uri = register_model(store.iris.run_id, "iris-serve", tracking_uri=store.uri)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with serve_model(uri, tmp_path / "serve.log", args=("--tracking-uri", store.uri),
                     env_extra={"TMPDIR": str(tmp)}) as url:
        assert [p.name.split("-")[:2] for p in tmp.iterdir()] == [["bpexp", "serve"]]  # the downloaded copy
        assert_still_serving(url, data)
        status, answer = post(url, data["frame"].assign(sepal_width_cm=None).to_csv(index=False), "text/csv")
        assert_one_line_answer(status, answer, ["CSV body row 2, column 'sepal_width_cm': a missing value"])
    assert list(tmp.iterdir()) == []  # SIGTERM: the server stopped and the copy is gone
