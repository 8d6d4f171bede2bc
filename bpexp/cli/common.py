"""Helpers shared by the command modules."""

from __future__ import annotations

import sys

import click

from bpexp.tracking.store import quiet_mlflow_logs  # noqa: F401 - the commands' import of it

TRACKING_URI_HELP = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<project>/mlruns/mlflow.db)"


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` in red on stderr and exit with ``code``."""
    from bpexp.redaction import redact

    click.secho(f"error: {redact(message)}", fg="red", err=True)
    sys.exit(code)
