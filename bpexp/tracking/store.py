"""Which MLflow store to use, and getting experiments from it.

The embedded default is ``sqlite:///<project>/mlruns/mlflow.db`` with artifacts
under ``<project>/mlruns/artifacts``. MLflow 3 refuses a plain ``./mlruns``
file store and would otherwise pick ``sqlite:///mlflow.db`` in whatever the
current directory is, so bpexp always passes a URI explicitly.
``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` select any other store, such as a
tracking server ``http://127.0.0.1:5000``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

from bpexp.errors import BpexpError

STORE_DIR = "mlruns"
DB_NAME = "mlflow.db"


class TrackingUnavailableError(BpexpError):
    """The tracking store cannot be reached or used; the message names its URI."""


def project_dir(config_path: str | Path | None = None) -> Path:
    """The project folder, whose ``mlruns/`` is the default store.

    For a config: the folder holding its ``experiments/``. Otherwise the current
    directory or its nearest parent holding ``experiments/`` or ``mlruns/mlflow.db``,
    so that notebooks in ``notebooks/`` and commands run from a subfolder use the
    project's store; failing that, the current directory.
    """
    if config_path is not None:
        parent = Path(config_path).resolve().parent
        if parent.name == "experiments":
            return parent.parent
    start = Path.cwd().resolve()
    for d in (start, *start.parents):
        if (d / "experiments").is_dir() or (d / STORE_DIR / DB_NAME).is_file():
            return d
    return start


def default_tracking_uri(project: Path) -> str:
    return f"sqlite:///{(project / STORE_DIR / DB_NAME).resolve()}"


def resolve_tracking_uri(uri: str | None = None, project: Path | None = None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else the project's embedded sqlite store."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return default_tracking_uri(project or project_dir())


def artifact_root(tracking_uri: str) -> str | None:
    """Where new experiments keep artifacts for a local sqlite store (None: the server decides)."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite":
        return None
    db_path = Path(tracking_uri[len("sqlite:///") :])
    return (db_path.parent / "artifacts").resolve().as_uri()


def connect(tracking_uri: str):
    """An ``MlflowClient`` for ``tracking_uri`` after checking the store answers.

    Creates the folder of a local sqlite store on first use. For http(s)
    stores a quick health request replaces MLflow's minutes of retries with an
    immediate, clear error.

    Raises
    ------
    TrackingUnavailableError
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow prints "View run at <tracking URI>/..." for http stores, password included; bpexp prints
    # its own, masked, "see it" line instead.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("", "file"):
        raise TrackingUnavailableError(
            f"tracking URI {tracking_uri!r} is a plain file store, which MLflow 3 refuses; use "
            f"sqlite:///path/to/mlflow.db or a tracking server URL"
        )
    if parsed.scheme == "sqlite":
        _create_sqlite_store(tracking_uri)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    if time.monotonic() - _checked.get(tracking_uri, -CHECK_VALID_SECONDS) < CHECK_VALID_SECONDS:
        return client  # it answered a moment ago (the trials of a sweep connect once each)
    if parsed.scheme in ("http", "https"):
        _check_server(tracking_uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any failure here means the store is unusable
        raise TrackingUnavailableError(f"cannot use the MLflow tracking store {tracking_uri}: {exc}") from None
    if tracking_uri not in _checked:
        _end_dead_runs(client)
    _checked[tracking_uri] = time.monotonic()
    return client


def _end_dead_runs(client) -> None:
    """Once per process and store: runs left RUNNING by a killed process end KILLED (see bpexp.tracking.liveness)."""
    import sys

    from bpexp.tracking.liveness import end_dead_runs

    try:
        ended = end_dead_runs(client)
    except Exception as exc:  # noqa: BLE001 - housekeeping; the command goes on
        print(f"bpexp: could not check for runs left RUNNING by dead processes: {exc}", file=sys.stderr)
        return
    for run_id in ended:
        print(f"bpexp: run {run_id} was left RUNNING by a process that is gone; marked it KILLED", file=sys.stderr)


#: When each tracking URI last answered :func:`connect`'s check.
_checked: dict[str, float] = {}
CHECK_VALID_SECONDS = 30.0


def _create_sqlite_store(tracking_uri: str) -> None:
    """Create a new sqlite store with its default artifact root under ``mlruns/artifacts``.

    Left to ``MlflowClient``, a new store puts the Default experiment's artifacts
    in ``./mlruns/0`` relative to whatever the current directory is. The database
    is put in write-ahead-log mode first (a persistent SQLite setting): commits
    get ~30 % cheaper, and readers (the UI, ``bpexp runs``) no longer block the
    trainers, metric writers and sweep workers that write at the same time.
    """
    db_path = Path(tracking_uri[len("sqlite:///") :])
    if db_path.exists():
        return
    db_path.parent.mkdir(parents=True, exist_ok=True)
    for key in [k for k in _experiment_ids if k[0] == tracking_uri]:  # a new database: forget its old ids
        del _experiment_ids[key]
    import sqlite3

    with contextlib.closing(sqlite3.connect(db_path)) as con:
        con.execute("PRAGMA journal_mode=WAL")
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(tracking_uri, artifact_root(tracking_uri))


def _check_server(tracking_uri: str) -> None:
    import requests

    url = tracking_uri.rstrip("/") + "/health"
    try:
        response = requests.get(url, timeout=10)
    except requests.RequestException as exc:
        raise TrackingUnavailableError(
            f"cannot reach the MLflow tracking server at {tracking_uri}: {type(exc).__name__}: "
            f"{_short(exc)}. Is it running (mlflow server / bpexp ui)?"
        ) from None
    if response.status_code != 200:
        raise TrackingUnavailableError(
            f"the MLflow tracking server at {tracking_uri} answered {response.status_code} to {url}"
        )


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."


def get_or_create_experiment(client, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created (with a local artifact root if sqlite) if missing.

    Remembered for ``CHECK_VALID_SECONDS`` per store: the trials of a sweep all ask.
    """
    key = (tracking_uri, name)
    cached = _experiment_ids.get(key)
    if cached is not None and time.monotonic() - cached[0] < CHECK_VALID_SECONDS:
        return cached[1]
    experiment_id = _get_or_create_experiment(client, name, tracking_uri)
    _experiment_ids[key] = (time.monotonic(), experiment_id)
    return experiment_id


_experiment_ids: dict[tuple[str, str], tuple[float, str]] = {}


#: MLflow 3's UI opens an experiment in its GenAI view unless this tag says it trains models.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def ui_link(server_url: str, experiment_id: str, run_id: str | None = None) -> str:
    """A link into the MLflow UI that opens in its "Model training" view.

    MLflow 3.17's UI keeps one GenAI / Model training switch per browser (GenAI at first) and
    follows it over the experiment's kind tag; the ``workflowType`` query parameter wins over both
    (checked in headless chromium by ``tests/tracking/test_tracking_cli.py::test_ui_serves_the_projects_runs``).
    """
    page = f"#/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
    return f"{server_url.rstrip('/')}/{page}?workflowType=machine_learning"


def _get_or_create_experiment(client, name: str, tracking_uri: str) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        if EXPERIMENT_KIND_TAG not in exp.tags:  # experiments of older bpexp versions; a kind set by hand stays
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    root = artifact_root(tracking_uri)
    location = f"{root}/{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}" if root else None
    try:
        return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except MlflowException:  # another process created it first
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def quiet_mlflow_logs() -> None:
    """MLflow and alembic announce every table migration at INFO; keep the terminal for bpexp."""
    import logging

    for name in ("alembic", "mlflow.store.db.utils", "mlflow.pyfunc", "mlflow.models"):
        logging.getLogger(name).setLevel(logging.WARNING)
