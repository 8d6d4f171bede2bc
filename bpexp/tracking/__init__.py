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
from bpexp.tracking.writer import MetricSink, TrackingWriteError, metric_sink, open_sink

__all__ = [
    "MlflowLogger", "TrackedRun", "TrackingUnavailableError", "TrackingWriteError", "connect",
    "MetricSink", "get_or_create_experiment", "metric_sink", "open_sink", "project_dir", "resolve_tracking_uri",
]
