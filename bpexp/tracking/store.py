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
    elif parsed.scheme in ("http", "https"):
        from bpexp.tracking.failures import bounded_http_retries, print_retries

        bounded_http_retries()  # seconds of retries, not MLflow's 4.5 minutes
        print_retries()
    from mlflow import MlflowClient

    try:
        client = MlflowClient(tracking_uri)  # a sqlite store is opened (and its schema checked) here
        if time.monotonic() - _checked.get(tracking_uri, -CHECK_VALID_SECONDS) < CHECK_VALID_SECONDS:
            return client  # it answered a moment ago (the trials of a sweep connect once each)
        if parsed.scheme in ("http", "https"):
            _check_server(tracking_uri)
        client.search_experiments(max_results=1)
    except TrackingUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here means the store is unusable
        if parsed.scheme == "sqlite" and _repaired_half_created(tracking_uri):
            return connect(tracking_uri)
        from bpexp.tracking.failures import short, store_problem

        problem = store_problem(exc, tracking_uri) or f"cannot use the MLflow store {tracking_uri}: {short(exc)}"
        raise TrackingUnavailableError(problem) from None
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

    The tables are created in a side file that is linked into place only once
    complete: a full disk (or a crash) mid-creation leaves no half-migrated store
    that every later command would reject ("table secrets already exists").
    """
    db_path = Path(tracking_uri[len("sqlite:///") :])
    if db_path.exists():
        return
    for key in [k for k in _experiment_ids if k[0] == tracking_uri]:  # a new database: forget its old ids
        del _experiment_ids[key]
    side = db_path.with_name(f"{db_path.name}.creating-{os.getpid()}")
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        _create_tables(side, artifact_root(tracking_uri))
        try:
            os.link(side, db_path)  # never over a store another process created meanwhile
        except FileExistsError:
            pass
    except Exception as exc:  # noqa: BLE001 - one line, and nothing half-made left behind
        from bpexp.tracking.failures import short, store_problem

        raise TrackingUnavailableError(f"{store_problem(exc, tracking_uri) or short(exc)}; no store was created "
                                       f"at {db_path}") from None
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{side}{suffix}")


def _create_tables(path: Path, default_artifact_root: str | None) -> None:
    import sqlite3

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute("PRAGMA journal_mode=WAL")
    store = SqlAlchemyStore(f"sqlite:///{path}", default_artifact_root)
    store.engine.dispose()  # the last connection closes: the write-ahead log is folded into the file


def _repaired_half_created(tracking_uri: str) -> bool:
    """A store MLflow cannot open because its tables were left half-created: moved aside (True) if it holds no runs.

    Raises
    ------
    TrackingUnavailableError
        It holds runs: the message gives the command that migrates it.
    """
    import sqlite3
    import sys

    from mlflow.store.db.utils import _get_latest_schema_revision

    db_path = Path(tracking_uri[len("sqlite:///") :])
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            row = con.execute("SELECT version_num FROM alembic_version").fetchone() \
                if "alembic_version" in tables else None
            runs = con.execute("SELECT count(*) FROM runs").fetchone()[0] if "runs" in tables else 0
    except sqlite3.Error:
        return False  # not readable at all: the caller reports the original error
    head = _get_latest_schema_revision()
    version = row[0] if row else None
    if version == head and {"experiments", "runs", "metrics"} <= tables:
        return False
    if runs:
        raise TrackingUnavailableError(
            f"the MLflow store {db_path} holds {runs} runs but its schema is at revision {version}, not MLflow's "
            f"{head} (a migration was cut short, or another MLflow version made it): back it up, then run "
            f"mlflow db upgrade sqlite:///{db_path}")
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engine = SqlAlchemyStore._engine_map.pop(tracking_uri, None)  # MLflow's cached engine holds the old file open
    if engine is not None:
        engine.dispose()
    aside = db_path.with_name(f"{db_path.name}.half-created-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(db_path, aside)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{db_path}{suffix}", f"{aside}{suffix}")
    print(f"bpexp: the MLflow store {db_path} was left half-created (schema revision {version}, no runs); moved it "
          f"to {aside} and created a new one", file=sys.stderr)
    _checked.pop(tracking_uri, None)
    return True


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
    db_log = logging.getLogger("mlflow.store.db.utils")
    if not any(isinstance(f, _ReraisedError) for f in db_log.filters):
        db_log.addFilter(_ReraisedError())


class _ReraisedError:
    """Drop MLflow's "SQLAlchemy database error" record: it logs the full traceback of an error it then
    re-raises, so a full disk printed one traceback per failed write; bpexp reports the raised one in one line."""

    def filter(self, record) -> bool:
        return not record.getMessage().startswith("SQLAlchemy database error")
