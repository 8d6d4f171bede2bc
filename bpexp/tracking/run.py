"""One MLflow run as bpexp uses it: params, tags, dataset, buffered metrics, artifacts, status."""

from __future__ import annotations

import json
import numbers
import time
import warnings
from typing import Any

from bpexp.tracking.liveness import Heartbeat, identity_tags
from bpexp.tracking.model import INTEGER_HINT
from bpexp.tracking.tags import ERROR_TAG, MODEL_URI_TAG
from bpexp.tracking.writer import END, MetricSink, param_records, tag_records
from bpexp.train.callbacks import Callback

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value


class MlflowLogger(Callback):
    """Callback sending every epoch's logs to MLflow with ``step=epoch``.

    Metrics go to the run's sink (see :mod:`bpexp.tracking.writer`) and are
    flushed when training ends, however it ends; a run that does not wait for
    its metrics (a sweep trial) leaves them to its end, which follows at once.
    """

    def __init__(self, run: TrackedRun):
        self.run = run

    def on_epoch_end(self, epoch, logs):
        self.run.queue_metrics(logs, step=epoch)

    def on_train_end(self, history):
        self.run.settle(history.status in ("completed", "stopped"))


class TrackedRun:
    """An MLflow run created by bpexp; end it with :meth:`end` (FINISHED/FAILED/KILLED).

    Parameters
    ----------
    client : MlflowClient
    tracking_uri : str
    experiment_id : str
    sink : MetricWriter or InlineWriter
        Where every metric of the run goes, per-epoch and final ones alike
        (:func:`bpexp.tracking.writer.open_sink`); it belongs to whoever opened
        the run, who closes it.
    run_name : str, optional
    tags : dict, optional
    parent_run_id : str, optional
        Makes this a child run (``mlflow.parentRunId``), as trials of a sweep are.
    wait_for_metrics : bool, default True
        Whether ending the run well waits until its queued metrics are written.
        Sweep trials do not: the sink writes their metrics, summary tags and
        FINISHED status while the next trial trains, and the worker flushes it
        before it exits. A run that fails or is interrupted always waits.
    """

    def __init__(self, client, tracking_uri: str, experiment_id: str, sink: MetricSink,
                 run_name: str | None = None, tags: dict[str, str] | None = None,
                 parent_run_id: str | None = None, wait_for_metrics: bool = True):
        self.client, self.tracking_uri, self.experiment_id = client, tracking_uri, experiment_id
        self.wait_for_metrics = wait_for_metrics
        tags = {**(tags or {}), **identity_tags()}  # who runs it, so a dead run can be told from a live one
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(experiment_id, run_name=run_name, tags=tags)
        self.run_id = run.info.run_id
        self.run_name = run.info.run_name
        self.artifact_uri = run.info.artifact_uri
        self._sink = sink
        self._heartbeat = Heartbeat(client, self.run_id)

    # -------------------------------------------------------------- params, tags, inputs
    def log_params(self, params: dict[str, Any]) -> None:
        """Queue ``params`` on the run's sink: written with its next metrics (at the latest when it ends)."""
        self._sink.log(self.run_id, param_records({k: _param_value(v) for k, v in params.items()}))

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_dataset(self, dataset, context: str = "training") -> None:
        """Record ``dataset`` as a run input (name, digest, schema) via MLflow's datasets API."""
        log_dataset_input(self.client, self.run_id, dataset, context)

    # -------------------------------------------------------------- metrics
    def queue_metrics(self, values: dict[str, Any], step: int = 0) -> None:
        """Hand numeric ``values`` (the ``epoch`` key excluded) to the run's sink."""
        ts = int(time.time() * 1000)
        metrics = [(k, float(v), ts, step) for k, v in values.items()
                   if k != "epoch" and isinstance(v, numbers.Real) and not isinstance(v, bool)]
        if metrics:
            self._sink.log(self.run_id, metrics)
        self._heartbeat.beat()

    def flush(self) -> None:
        """Block until every queued metric is in the store."""
        self._sink.flush()

    def abandon_metrics(self) -> None:
        """The store failed for good: drop the queued metrics rather than retry each of them at exit."""
        self._sink.abandon()

    def settle(self, success: bool) -> None:
        """Flush the queued metrics, unless training succeeded in a run that does not wait for them.

        That run's :meth:`end` follows within milliseconds and hands the sink its metrics,
        summary, tags and end together: an in-process sink then writes a trial in one
        ``log_batch`` call instead of two (each costs ~10-20 ms of fixed ORM work).
        """
        if not (success and not self.wait_for_metrics):
            self._sink.flush()

    def log_summary(self, metrics: dict[str, float], tags: dict[str, Any], step: int = 0) -> None:
        """Final metrics and tags, through the same sink as the per-epoch metrics (written by the run's end)."""
        self._sink.log(self.run_id, tag_records(tags))
        self.queue_metrics(metrics, step=step)

    def callback(self) -> MlflowLogger:
        return MlflowLogger(self)

    # -------------------------------------------------------------- artifacts
    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure, artifact_file: str) -> None:
        import matplotlib.pyplot as plt

        try:
            self.client.log_figure(self.run_id, figure, artifact_file)
        finally:
            plt.close(figure)

    def log_model(self, model, example) -> str:
        """Log ``model`` as the run's pyfunc model and return its ``models:/m-...`` URI."""
        return self.finish_model(self.start_model(model, example))

    def start_model(self, model, example) -> int:
        """Start logging ``model`` as the run's pyfunc model; :meth:`finish_model` waits for it.

        The run's sink logs it (from its helper process when it has one), so the
        caller can do other work, such as the plots, meanwhile.
        """
        return self._sink.start_model(self.run_id, model, example)

    def finish_model(self, token: int) -> str:
        """Wait for the model :meth:`start_model` handed over; record and return its URI."""
        uri = self._sink.model_uri(token)
        self.set_tags({MODEL_URI_TAG: uri})
        return uri

    def log_model_folder(self, model, example=None, artifact_path: str = "bpexp_model") -> None:
        """Log just the native model folder (cheap enough for every sweep trial).

        ``example`` (a DataFrame of raw rows with the feature names) is written next to
        it as ``input_example.json``, so an export of this run later needs no data.
        """
        import tempfile
        from pathlib import Path

        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        with tempfile.TemporaryDirectory() as tmp:
            model.save(tmp)
            if example is not None:
                (Path(tmp) / "input_example.json").write_text(_split_json(example), encoding="utf-8")
            if self.artifact_uri.startswith("file:"):
                # A local artifact store: copy straight there (the client would look the run up first).
                get_artifact_repository(self.artifact_uri).log_artifacts(tmp, artifact_path)
            else:  # e.g. mlflow-artifacts:/ behind a tracking server, resolved through the client
                self.client.log_artifacts(self.run_id, tmp, artifact_path)

    # -------------------------------------------------------------- end
    def end(self, status: str = "FINISHED", error: str | None = None, flush: bool = True) -> None:
        """Flush metrics (unless ``flush=False``: the store failed), record ``error`` (tag ``bpexp.error``
        and the run note), set the status.

        A run that ends FINISHED without waiting for its metrics (a sweep trial) queues
        its end on the sink too, after everything else it queued: the store marks it
        FINISHED once those are written, and the next trial need not wait.
        """
        if status == "FINISHED" and not error and flush and not self.wait_for_metrics:
            self._sink.log(self.run_id, [(END, status, "")])
            self._sink.checkpoint()
            return
        try:
            if flush:
                self.settle(status == "FINISHED")
        finally:
            if error:
                from bpexp.redaction import redact

                error = redact(error)  # messages may quote a tracking or storage URI with its password
                self.set_tags({ERROR_TAG: error[:5000], "mlflow.note.content": f"**{status}**: {error}"})
            self.client.set_terminated(self.run_id, status=status)


def log_dataset_input(client, run_id: str, dataset, context: str = "training") -> None:
    """Record a bpexp :class:`~bpexp.data.Dataset` as an input of ``run_id`` (name, digest, schema)."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    with warnings.catch_warnings():
        # A local path matches two of MLflow's source types; it warns and picks one. Either is right.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        warnings.filterwarnings("ignore", message=INTEGER_HINT)
        source = dataset.source if dataset.source not in ("builtin", "DataFrame") else None
        if dataset.is_table:  # a DataFrame: MLflow records its column names and types
            frame = dataset.X.assign(**{dataset.target_name: dataset.y})
            ds = mlflow.data.from_pandas(frame, targets=dataset.target_name, name=dataset.name, source=source,
                                         digest=dataset.digest()[:16])
            schema = table_schema(frame)
            if schema is not None:
                ds.schema = schema  # the value MLflow would compute (a cached property: this is its cache)
        else:
            ds = mlflow.data.from_numpy(dataset.X, targets=dataset.y, name=dataset.name, source=source,
                                        digest=dataset.digest()[:16])
        entity = ds._to_mlflow_entity()  # where MLflow infers the schema it was not given
    client.log_inputs(run_id, datasets=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])])


#: A table's schema is inferred from about this many evenly spaced rows (see :func:`table_schema`).
SCHEMA_SAMPLE_ROWS = 2_000


def table_schema(frame):
    """MLflow's schema of ``frame`` (a bpexp table and its labels), or None to let MLflow infer it from every row.

    MLflow infers a DataFrame's schema value by value in Python, to tell whether a column
    has a missing value (*measured*: 15 s of a 22 s ``bpexp train`` of a 10^6 x 23 Parquet
    table). Here MLflow's own inference runs on evenly spaced rows, where each column's type
    follows from its dtype (floats, ``category``, the labels), and whether a column may be
    missing comes from the whole column, vectorized. A sample with an empty column is left to
    MLflow (its type could not be told from the sample).
    """
    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, Schema

    from bpexp.data.tabular import columns_with_gaps

    step = len(frame) // SCHEMA_SAMPLE_ROWS
    if step < 2:
        return None
    sample = frame.iloc[::step]
    if sample.isna().all().any():
        return None
    gaps = set(columns_with_gaps(frame))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=INTEGER_HINT)
        inferred = infer_signature(sample).inputs
    return Schema([ColSpec(c.type, c.name, required=c.name not in gaps) for c in inferred.inputs])


def _split_json(frame) -> str:
    """``frame`` as pandas' "split" orient JSON (``pd.read_json(path, orient="split")`` reads it), NaN as null.

    Written for every sweep trial: ``json.dumps`` of the rows takes ~0.6 ms where
    ``DataFrame.to_json`` takes ~7 ms for 5 x 64 (measured), and keeps every digit.
    """
    rows = [[None if isinstance(v, float) and v != v else v for v in row]
            for row in frame.to_numpy(dtype=object).tolist()]
    return json.dumps({"columns": [str(c) for c in frame.columns], "data": rows}, default=_json_scalar)


def _json_scalar(value: Any):
    """A cell ``json`` cannot write itself: pandas' NA/NaT as null, a NumPy scalar as its Python value."""
    import pandas as pd

    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else str(value)


def _param_value(value: Any) -> str:
    text = "None" if value is None else str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."

