"""Helpers shared by the command modules."""

from __future__ import annotations

import sys

import click

TRACKING_URI_HELP = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<project>/mlruns/mlflow.db)"


def quiet_mlflow_logs() -> None:
    """MLflow and alembic announce every table migration at INFO; keep the terminal for bpexp."""
    import logging

    for name in ("alembic", "mlflow.store.db.utils", "mlflow.pyfunc", "mlflow.models"):
        logging.getLogger(name).setLevel(logging.WARNING)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` in red on stderr and exit with ``code``."""
    from bpexp.redaction import redact

    click.secho(f"error: {redact(message)}", fg="red", err=True)
    sys.exit(code)
