"""One-line error bodies for a served model: what ``bpexp serve`` answers a bad request with.

MLflow's scoring server refuses a bad request with a message that can embed the
whole parsed DataFrame (twice, with the schema, when its schema enforcement
fails), the request body (bad JSON), a ``stack_trace`` field (a CSV body pandas
cannot parse), and rows counted from 0. :func:`normalise_error` turns such an
answer into one line: it reads the request's rows again as sent, without any
schema cast, and checks them with bpexp's own input validation, which names the
row, the column and the value; rows are numbered as ``bpexp predict`` numbers a
CSV file's (header = row 1), for JSON bodies with a note saying so. When bpexp's
checks find nothing (bad JSON, an unknown request format, a model that is not
bpexp's), MLflow's own message is kept, cut to its point and to one line.

Only the error path runs this code: valid requests go through MLflow untouched.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bpexp.errors import InvalidInputError

REQUEST_FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")  # MLflow's JSON keys
MAX_MESSAGE = 500  # characters; a longer message is cut (MLflow's can hold a whole DataFrame)


@dataclass
class ServedModel:
    """What the error normaliser needs to know about the model being served."""

    model: object | None  # the bpexp MLP; None for a pyfunc model that is not bpexp's
    feature_names: list[str] | None  # the signature's input columns
    params_schema: object | None  # mlflow.types.ParamSchema

    @classmethod
    def from_pyfunc(cls, pyfunc) -> ServedModel:
        """From a loaded ``mlflow.pyfunc.PyFuncModel``."""
        try:
            model = getattr(pyfunc.unwrap_python_model(), "model", None)
        except Exception:  # noqa: BLE001 - not a python_model flavor: no bpexp checks, MLflow's messages
            model = None
        if model is not None and not hasattr(model, "check_X"):
            model = None
        schema = pyfunc.metadata.get_input_schema()
        names = schema.input_names() if schema is not None and schema.has_input_names() else None
        return cls(model, [str(n) for n in names] if names else None, pyfunc.metadata.get_params_schema())


def normalise_error(answer: dict, body: bytes, content_type: str | None,
                    served: ServedModel) -> tuple[dict, bool]:
    """The error body to send instead of MLflow's ``answer`` to the request ``body``.

    Returns
    -------
    (dict, bool)
        The body: MLflow's fields without ``stack_trace``, its ``message`` one
        line, bpexp's own finding in the request's rows or params where it has
        one, else MLflow's message without the data it embeds; and whether the
        message is bpexp's finding.
    """
    out = {k: v for k, v in answer.items() if k != "stack_trace"}
    found = bpexp_problem(body, content_type or "", served)
    out["message"] = found or clean_message(str(answer.get("message", "")))
    return out, found is not None


def bpexp_problem(body: bytes, content_type: str, served: ServedModel) -> str | None:
    """What bpexp's checks find wrong with the request (its rows, then its params), or None."""
    mime = content_type.split(";", 1)[0].strip().lower()
    params = None
    if mime == "text/csv":
        if served.model is None:
            return None
        try:
            frame = _csv_rows(body)
        except InvalidInputError as exc:
            return _one_line(str(exc))
        problem = _rows_problem(served, frame, "CSV body", frame.index.to_numpy())
    elif mime == "application/json":
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None  # MLflow's message says where the JSON breaks
        frame = json_rows(doc)
        problem = _rows_problem(served, frame, "request", None) if frame is not None else None
        params = doc.get("params") if isinstance(doc, dict) else None
    else:
        return None
    if problem is None and params is not None and served.params_schema is not None:
        problem = params_problem(params, served.params_schema)
    return problem


def _rows_problem(served: ServedModel, frame, what: str, row_numbers) -> str | None:
    from bpexp.export.inputs import served_rows_problem

    if served.model is None or frame is None:
        return None
    return served_rows_problem(served.model, frame, served.feature_names, what=what, row_numbers=row_numbers)


def _csv_rows(body: bytes):
    """A CSV body read as ``bpexp predict`` reads a file: the index is each row's line number (header = 1)."""
    from bpexp.data.files import read_table

    with tempfile.TemporaryDirectory(prefix="bpexp-serve-") as tmp:
        path = Path(tmp) / "body.csv"
        path.write_bytes(body)
        return read_table(path, what="CSV body")


def json_rows(doc):
    """The rows of a JSON request in any of MLflow's formats, as sent (no schema cast); None if unreadable.

    ``dataframe_split`` (columns + data), ``dataframe_records`` (a list of
    objects), and ``inputs``/``instances`` as columns (an object of lists), as
    records or as bare rows (a list of lists: no column names).
    """
    import pandas as pd

    if not isinstance(doc, dict):
        return None
    keys = [k for k in REQUEST_FORMATS if k in doc]
    if len(keys) != 1:
        return None
    data = doc[keys[0]]
    try:
        if keys[0] == "dataframe_split":
            if not isinstance(data, dict) or not isinstance(data.get("data"), list):
                return None
            return pd.DataFrame(data["data"], columns=data.get("columns"))
        if isinstance(data, dict):
            return pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in data.items()})
        if isinstance(data, list):
            return pd.DataFrame(data)
    except (ValueError, TypeError):  # ragged rows, columns of different lengths: MLflow's message stands
        return None
    return None


def params_problem(params, schema) -> str | None:
    """The first request param that does not fit the signature's param schema, as one line; None if all do."""
    from mlflow.exceptions import MlflowException
    from mlflow.types.schema import ParamSpec

    if not isinstance(params, dict):
        return f"params must be a JSON object of parameter values, got {type(params).__name__} {params!r}"[:300]
    for spec in schema.params:
        if spec.name not in params:
            continue
        value = params[spec.name]
        try:
            ParamSpec.validate_param_spec(value, spec)
        except MlflowException:
            kind = getattr(spec.dtype, "name", str(spec.dtype))
            shape = f" of shape {list(spec.shape)}" if spec.shape else ""
            return _one_line(f"params: {spec.name!r} must be a {kind}{shape} (default {spec.default!r}), "
                             f"got {value!r}")
    return None


def clean_message(message: str) -> str:
    """MLflow's message cut to its point: no embedded DataFrame, schema, request body or protocol notice."""
    text = message
    prefix, marker = "Failed to predict data '", "'. \nError: "
    if text.startswith(prefix) and marker in text:
        text = text[text.index(marker) + len(marker):]
    prefix, middle, marker = "Failed to enforce schema of data '", "' with schema '", "'. Error: "
    if text.startswith(prefix) and middle in text:
        at = text.find(marker, text.index(middle))
        if at >= 0:
            text = text[at + len(marker):]
    text = text.split("\nInput:", 1)[0]  # a body that is not JSON is echoed after this
    try:
        from mlflow.pyfunc.scoring_server import SCORING_PROTOCOL_CHANGE_INFO

        text = text.replace(SCORING_PROTOCOL_CHANGE_INFO, "")
    except ImportError:
        pass
    return _one_line(text) or "the request was refused"


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."
