"""Registering a run's model in the MLflow model registry and pointing an alias at it.

Aliases (``models:/NAME@champion``) replace the deprecated stages. The
registry needs a database-backed store: sqlite (the embedded default) and
tracking servers have one.

A run that holds only the native folder (a sweep trial) gets its pyfunc model
logged first, the way every tracked run logs one, so the registered version
points at a loadable MLflow model in the store rather than at a local folder.
"""

from __future__ import annotations

import re

from bpexp.errors import InvalidInputError
from bpexp.export.errors import ExportError
from bpexp.tracking.tags import SOURCE_RUN_TAG

_ALIAS = re.compile(r"^[A-Za-z0-9_-]+$")


def _check_names(name: str, alias: str) -> tuple[str, str]:
    name, alias = (name or "").strip(), (alias or "").strip()
    if not name:
        raise InvalidInputError("the registered model name is empty; give one, e.g. --register digits-classifier")
    if "/" in name or "@" in name or ":" in name:
        raise InvalidInputError(f"registered model name {name!r} may not contain '/', '@' or ':'")
    if not _ALIAS.match(alias):
        raise InvalidInputError(f"alias {alias!r} must be letters, digits, '_' or '-' (e.g. champion)")
    if alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise InvalidInputError(f"alias {alias!r} is reserved by MLflow (latest, v1, v2, ...); pick another")
    return name, alias


def register_model_version(client, tracking_uri: str, run, name: str, *, alias: str = "champion",
                           run_model=None) -> tuple[str, str]:
    """Register ``run``'s model as a new version of ``name``; set ``alias``. Returns ``(uri, version)``."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from bpexp.export.source import MODEL_URI_TAG, load_run_model, logged_model_uri
    from bpexp.tracking.model import using_store

    name, alias = _check_names(name, alias)
    model_uri = logged_model_uri(run)
    if model_uri is None:
        from bpexp.tracking.model import log_pyfunc_model

        rm = run_model or load_run_model(client, tracking_uri, run)  # NoModelError if there is nothing
        model_uri = log_pyfunc_model(tracking_uri, run.info.run_id, rm.model, rm.example)
        client.set_tag(run.info.run_id, MODEL_URI_TAG, model_uri)
    registry = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    # The registry resolves a models:/m-... source through MLflow's global store, whatever the client's URI.
    try:
        with using_store(tracking_uri):
            try:
                registry.create_registered_model(name, description="bpexp model, registered by bpexp export")
            except MlflowException as exc:
                if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                    raise
            model_id = model_uri.split("/", 1)[1] if model_uri.startswith("models:/m-") else None
            version = registry.create_model_version(name, source=model_uri, run_id=run.info.run_id,
                                                    model_id=model_id, tags={SOURCE_RUN_TAG: run.info.run_id})
            registry.set_registered_model_alias(name, alias, version.version)
    except MlflowException as exc:
        raise ExportError(f"cannot register the model of run {run.info.run_id} as {name!r} in "
                          f"{tracking_uri}: {exc.message}") from None
    return f"models:/{name}@{alias}", str(version.version)


def register_model(run_id: str, name: str, *, alias: str = "champion", tracking_uri: str | None = None) -> str:
    """Register run ``run_id``'s model under ``name`` and point ``alias`` at the new version.

    Parameters
    ----------
    run_id : str
    name : str
        Registered model name (created on first use; each call adds a version).
    alias : str, default "champion"
    tracking_uri : str, optional
        Default: ``$MLFLOW_TRACKING_URI``, else the project's ``mlruns/`` store.

    Returns
    -------
    str
        ``"models:/NAME@alias"``, loadable with :func:`bpexp.load_model` or
        ``mlflow.pyfunc.load_model``.

    Raises
    ------
    RunNotFoundError, NoModelError, ExportError, InvalidInputError
    """
    from bpexp.export.source import get_run
    from bpexp.tracking import connect, resolve_tracking_uri

    _check_names(name, alias)
    uri = resolve_tracking_uri(tracking_uri)
    client = connect(uri)
    run = get_run(client, run_id, uri)
    return register_model_version(client, uri, run, name, alias=alias)[0]
