"""MLflow I/O: store resolution, runs, buffered metric logging, plots and models as artifacts.

Importing this package does not import MLflow; its functions do, when called.
"""

from bpexp.tracking.run import MlflowLogger, TrackedRun
from bpexp.tracking.store import (
    TrackingUnavailableError,
    connect,
    get_or_create_experiment,
    project_dir,
    resolve_tracking_uri,
)
from bpexp.tracking.writer import TrackingWriteError, get_writer

__all__ = [
    "MlflowLogger", "TrackedRun", "TrackingUnavailableError", "TrackingWriteError", "connect",
    "get_or_create_experiment", "get_writer", "project_dir", "resolve_tracking_uri",
]
