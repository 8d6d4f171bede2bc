"""A real ``mlflow models serve`` of an export: every request format answers exactly the in-process predictions.

One server for the module (it takes ~10 s to start): the iris export, whose class
labels are strings. Bad requests get a 4xx whose message names the problem, and
the server keeps serving afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import services

pytestmark = [pytest.mark.services, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def server(iris_export, tmp_path_factory):
    """``http://127.0.0.1:PORT`` of ``mlflow models serve -m <iris export> --env-manager local``."""
    with serve_model(iris_export.path, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


@contextlib.contextmanager
def serve_model(model_path: Path, log: Path):
    """Start ``mlflow models serve`` on a free 127.0.0.1 port, yield its URL, stop it."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    # `mlflow models serve` execs uvicorn from PATH: the venv's bin must come first.
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", MLFLOW_DISABLE_TELEMETRY="true")
    for attempt in range(3):
        port = services.free_port()
        cmd = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", str(model_path), "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
        with open(log, "ab") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    cwd=log.parent, start_new_session=True)
        try:
            services.wait_for_http(f"http://127.0.0.1:{port}/ping", proc=proc, log_path=log,
                                   name="mlflow models serve", timeout=90)
        except services.ServiceStartError:
            services.stop_process_group(proc)
            if attempt < 2 and "address already in use" in services.log_tail(log, 20).lower():
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


def test_bad_requests_get_4xx_naming_the_problem(server, data):
    split = data["frame"].to_dict(orient="split")
    cases = []

    missing = {"columns": split["columns"][:-1], "data": [r[:-1] for r in split["data"]]}
    cases.append(({"dataframe_split": missing}, "application/json", ["missing inputs", "petal_width_cm"]))

    nan = json.loads(json.dumps(split))
    nan["data"][2][1] = None
    cases.append(({"dataframe_split": nan}, "application/json",
                  ["row 2, column 'sepal_width_cm': a missing value (empty or NaN)"]))

    text = json.loads(json.dumps(split))
    text["data"][1][0] = "abc"
    cases.append(({"dataframe_split": text}, "application/json", ["sepal_length_cm", "abc"]))

    bad_csv = data["frame"].astype(object)
    bad_csv.iloc[3, 2] = "abc"
    cases.append((bad_csv.to_csv(index=False), "text/csv", ["could not convert string to float: 'abc'"]))

    nan_csv = data["frame"].copy()
    nan_csv.iloc[4, 3] = np.nan
    cases.append((nan_csv.to_csv(index=False), "text/csv", ["row 4, column 'petal_width_cm': a missing value"]))

    rows = [r[:-1] for r in split["data"]]  # `inputs` as bare rows: no names to match
    cases.append(({"inputs": rows}, "application/json", ["missing inputs"]))

    cases.append(({"dataframe_split": split, "params": {"proba": "yes"}}, "application/json", ["proba"]))

    for body, content_type, fragments in cases:
        status, answer = post(server, body, content_type)
        assert 400 <= status < 500, (status, answer)
        assert answer.get("error_code") in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"), answer
        for fragment in fragments:
            assert fragment in answer["message"], (fragment, answer["message"][-500:])
        assert "Traceback" not in answer["message"]
        assert_still_serving(server, data)


def test_extra_columns_are_dropped_by_mlflow_before_the_model(server, data):
    """MLflow's schema enforcement ignores unknown named columns (with a warning in the server log).

    The model never sees them, so it cannot refuse them; ``bpexp predict`` does refuse them.
    """
    frame = data["frame"].assign(species="setosa")
    status, body = post(server, {"dataframe_split": frame.to_dict(orient="split")})
    assert status == 200 and [p["prediction"] for p in body["predictions"]] == data["labels"]
