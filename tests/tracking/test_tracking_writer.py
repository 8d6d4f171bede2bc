"""The background metric writer: batching, flushing, and no loss when its process dies."""

from __future__ import annotations

import os
import signal
import time

import pytest

from bpexp.tracking import connect, get_or_create_experiment
from bpexp.tracking.writer import (
    END,
    INLINE_INTERVAL,
    InlineWriter,
    MetricWriter,
    TrackingWriteError,
    metric_sink,
    param_records,
    tag_records,
)


def _new_run(uri):
    client = connect(uri)
    exp = get_or_create_experiment(client, "writer", uri)
    return client, client.create_run(exp).info.run_id


def test_flush_writes_every_metric(mlflow_sqlite_uri):
    client, run_id = _new_run(mlflow_sqlite_uri)
    writer = MetricWriter(mlflow_sqlite_uri)
    try:
        for step in range(1, 301):  # more than one log_batch call's worth (1000 metrics)
            writer.log(run_id, [("a", float(step), 1000 + step, step), ("b", -step, 1000 + step, step),
                                ("c", 0.5, 1000 + step, step), ("d", 1.0, 1000 + step, step)])
        writer.flush()
        assert [m.step for m in client.get_metric_history(run_id, "a")] == list(range(1, 301))
        assert [m.value for m in client.get_metric_history(run_id, "b")][-1] == -300
    finally:
        writer.close()


def test_metrics_survive_the_writer_process_being_killed(mlflow_sqlite_uri):
    client, run_id = _new_run(mlflow_sqlite_uri)
    writer = MetricWriter(mlflow_sqlite_uri)
    try:
        writer.log(run_id, [("x", 1.0, 1, 1)])
        os.kill(writer._proc.pid, signal.SIGKILL)
        writer._proc.join(10)
        writer.log(run_id, [("x", 2.0, 2, 2)])  # queued to a dead process
        writer.flush()  # the parent writes what the helper never acknowledged
        assert [m.value for m in client.get_metric_history(run_id, "x")] == [1.0, 2.0]
    finally:
        writer.close()


def test_sigterm_to_the_writer_writes_what_it_holds(mlflow_sqlite_uri):
    client, run_id = _new_run(mlflow_sqlite_uri)
    writer = MetricWriter(mlflow_sqlite_uri)
    try:
        writer.log(run_id, [("y", float(i), i, i) for i in range(1, 51)])
        writer.flush()
        writer.log(run_id, [("y", 51.0, 51, 51)])
        os.kill(writer._proc.pid, signal.SIGTERM)
        writer._proc.join(30)
        assert not writer._proc.is_alive()
        writer.flush()
        assert len(client.get_metric_history(run_id, "y")) == 51
    finally:
        writer.close()


def test_a_store_error_is_reported_at_flush(mlflow_sqlite_uri):
    writer = MetricWriter(mlflow_sqlite_uri)
    try:
        writer.log("no-such-run", [("z", 1.0, 1, 1)])
        with pytest.raises(TrackingWriteError, match="no-such-run"):
            writer.flush()
    finally:
        writer.close()


def test_checkpoint_does_not_wait_and_the_next_flush_confirms(mlflow_sqlite_uri):
    client, run_id = _new_run(mlflow_sqlite_uri)
    writer = MetricWriter(mlflow_sqlite_uri)
    try:
        writer.log(run_id, [("c", float(i), i, i) for i in range(1, 101)])
        writer.checkpoint()  # returns at once: a sweep's next trial does not wait
        writer.log(run_id, [("c", 101.0, 101, 101)])
        writer.flush()
        assert [m.step for m in client.get_metric_history(run_id, "c")] == list(range(1, 102))
    finally:
        writer.close()


def test_checkpointed_metrics_survive_the_writer_dying(mlflow_sqlite_uri):
    client, run_id = _new_run(mlflow_sqlite_uri)
    writer = MetricWriter(mlflow_sqlite_uri)
    try:
        os.kill(writer._proc.pid, signal.SIGSTOP)  # the helper cannot confirm anything
        writer.log(run_id, [("k", float(i), i, i) for i in range(1, 21)])
        writer.checkpoint()
        os.kill(writer._proc.pid, signal.SIGKILL)
        writer._proc.join(10)
        writer.flush()  # nothing was confirmed: the parent writes it all
        assert [m.step for m in client.get_metric_history(run_id, "k")] == list(range(1, 21))
    finally:
        writer.close()


def _trial_records(n_params: int = 150, n_tags: int = 120, n_metrics: int = 1500):
    """A sweep trial's records past every one of MLflow's per-call limits, ending the run."""
    return [*param_records({f"p{i}": str(i) for i in range(n_params)}),
            *[("m", float(i), i, i) for i in range(n_metrics)],
            *tag_records({f"t{i}": i for i in range(n_tags)}),
            (END, "FINISHED", "")]


def _holds_trial_records(client, run_id) -> None:
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.end_time is not None
    assert run.data.params == {f"p{i}": str(i) for i in range(150)}
    assert {f"t{i}": str(i) for i in range(120)}.items() <= run.data.tags.items()
    assert [m.step for m in client.get_metric_history(run_id, "m")] == list(range(1500))


@pytest.mark.parametrize("sink_class", [MetricWriter, InlineWriter])
def test_params_tags_and_the_end_travel_with_the_metrics(mlflow_sqlite_uri, sink_class):
    """A trial's params, summary tags and FINISHED end cost no round trip of their own: the sink writes them."""
    client, run_id = _new_run(mlflow_sqlite_uri)
    sink = sink_class(mlflow_sqlite_uri)
    try:
        sink.log(run_id, _trial_records())
        sink.checkpoint()
        sink.flush()
        _holds_trial_records(client, run_id)
    finally:
        sink.close()


def test_a_queued_end_survives_the_writer_dying(mlflow_sqlite_uri):
    client, run_id = _new_run(mlflow_sqlite_uri)
    writer = MetricWriter(mlflow_sqlite_uri)
    try:
        os.kill(writer._proc.pid, signal.SIGSTOP)  # the helper confirms nothing
        writer.log(run_id, _trial_records())
        writer.checkpoint()
        assert client.get_run(run_id).info.status == "RUNNING"  # not ended before its records are written
        os.kill(writer._proc.pid, signal.SIGKILL)
        writer._proc.join(10)
        writer.flush()  # the parent writes it all, the end last
        _holds_trial_records(client, run_id)
    finally:
        writer.close()


def _has_metric(uri: str, run_id: str, key: str) -> bool:
    """Whether one point of ``key`` is stored: a one-row read that holds the store's read lock for microseconds.

    (Polling with ``get_metric_history`` reads every stored point each time, seconds of read locks on a slow
    host, which the helper's writes then wait for.)
    """
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(uri[len("sqlite:///"):], timeout=30)) as con:
        return con.execute("SELECT 1 FROM metrics WHERE run_uuid = ? AND key = ? LIMIT 1", (run_id, key)).fetchone() \
            is not None


def test_sigterm_while_the_writer_is_writing_still_ends_it(mlflow_sqlite_uri):
    """A SIGTERM landing inside a store write must end the helper (it once got swallowed as a store error,
    and a sweep worker waiting for its helper at exit hung)."""
    client, run_id = _new_run(mlflow_sqlite_uri)
    writer = MetricWriter(mlflow_sqlite_uri)
    try:
        writer.log(run_id, [("w", float(i), i, i) for i in range(1, 20001)])  # seconds of writing
        writer.checkpoint()
        deadline = time.monotonic() + 60
        while not _has_metric(mlflow_sqlite_uri, run_id, "w"):  # wait until the helper is mid-write
            assert time.monotonic() < deadline, "the helper never started writing"
            time.sleep(0.05)
        os.kill(writer._proc.pid, signal.SIGTERM)
        writer._proc.join(60)
        assert not writer._proc.is_alive()
        writer.flush()  # whatever the helper did not confirm, the parent writes
        assert len(client.get_metric_history(run_id, "w")) == 20000
    finally:
        writer.close()


def test_inline_writer_writes_once_a_second_and_at_checkpoints(mlflow_sqlite_uri):
    """Sweep workers on every core write from the training process: batched, live at least once a second."""
    client, run_id = _new_run(mlflow_sqlite_uri)
    with metric_sink(mlflow_sqlite_uri, helper=False) as writer:
        assert isinstance(writer, InlineWriter)
        writer.log(run_id, [("i", 1.0, 1, 1)])
        assert client.get_metric_history(run_id, "i") == []  # held: less than a second since the last write
        time.sleep(INLINE_INTERVAL)
        writer.log(run_id, [("i", 2.0, 2, 2)])
        assert [m.value for m in client.get_metric_history(run_id, "i")] == [1.0, 2.0]
        writer.log(run_id, [("i", 3.0, 3, 3)])
        writer.checkpoint()  # a run's end
        assert [m.value for m in client.get_metric_history(run_id, "i")] == [1.0, 2.0, 3.0]
        writer.log(run_id, [("i", 4.0, 4, 4)])
    assert [m.value for m in client.get_metric_history(run_id, "i")] == [1.0, 2.0, 3.0, 4.0]  # closing wrote it


def test_a_sink_block_closes_its_helper_and_writes_what_it_holds(mlflow_sqlite_uri):
    """Whoever opens the sink closes it: leaving the block writes the last metrics and stops the helper."""
    client, run_id = _new_run(mlflow_sqlite_uri)
    with metric_sink(mlflow_sqlite_uri) as writer:
        assert isinstance(writer, MetricWriter)
        writer.log(run_id, [("h", 1.0, 1, 1)])
        writer.checkpoint()  # a sweep trial's end: nobody waits
    assert not writer._proc.is_alive()
    assert [m.value for m in client.get_metric_history(run_id, "h")] == [1.0]


def test_an_error_leaving_the_block_is_not_hidden_by_a_failed_close(mlflow_sqlite_uri, capfd):
    _new_run(mlflow_sqlite_uri)
    with pytest.raises(ValueError, match="the run's own error"):
        with metric_sink(mlflow_sqlite_uri, helper=False) as writer:
            writer.log("0123456789abcdef0123456789abcdef", [("i", 1.0, 1, 1)])  # no such run: closing fails
            raise ValueError("the run's own error")
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "could not write every metric" in err and "0123456789abcdef" in err


def test_after_abandon_the_sink_takes_the_next_runs_metrics(mlflow_sqlite_uri):
    """A store failure abandons what was queued; the job's later runs still write (the store may be back)."""
    client, run_id = _new_run(mlflow_sqlite_uri)
    writer = MetricWriter(mlflow_sqlite_uri)
    try:
        writer.log(run_id, [("a", 1.0, 1, 1)])
        first = writer._proc
        writer.abandon()
        assert not first.is_alive()
        writer.log(run_id, [("a", 2.0, 2, 2)])
        writer.flush()
        assert [m.value for m in client.get_metric_history(run_id, "a")] == [2.0]  # 1.0 was dropped, as asked
    finally:
        writer.close()


def test_inline_writer_reports_a_rejected_write(mlflow_sqlite_uri):
    client, _ = _new_run(mlflow_sqlite_uri)
    writer = InlineWriter(mlflow_sqlite_uri)
    writer.log("0123456789abcdef0123456789abcdef", [("i", 1.0, 1, 1)])
    with pytest.raises(TrackingWriteError, match="0123456789abcdef0123456789abcdef"):
        writer.flush()


# ------------------------------------------------------------------ the pyfunc model, logged by the sink
def _trained_model():
    import numpy as np

    import bpexp
    from bpexp.tracking.model import input_example

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 3, 60)
    model = bpexp.MLP([4, 8, 3], seed=0)
    bpexp.fit(model, X, y, epochs=2)
    return model, X, input_example(model, X, ["a", "b", "c", "d"])


def _predicts_like(uri, tracking_uri, model, X):
    import mlflow
    import numpy as np
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri)
    served = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame(X[:5], columns=["a", "b", "c", "d"]))
    return np.array_equal(np.asarray(served["prediction"] if "prediction" in served else served).ravel(),
                          model.predict(X[:5]).ravel())


def _model_folders():
    import glob
    import tempfile

    return set(glob.glob(os.path.join(tempfile.gettempdir(), "bpexp-model-*")))


@pytest.mark.parametrize("sink_class", [MetricWriter, InlineWriter])
def test_the_sink_logs_the_model_to_the_run(mlflow_sqlite_uri, sink_class):
    client, run_id = _new_run(mlflow_sqlite_uri)
    model, X, example = _trained_model()
    before = _model_folders()
    sink = sink_class(mlflow_sqlite_uri)
    try:
        token = sink.start_model(run_id, model, example)
        uri = sink.model_uri(token)
    finally:
        sink.close()
    assert uri.startswith("models:/m-")
    assert client.get_logged_model(uri.removeprefix("models:/")).source_run_id == run_id
    assert _predicts_like(uri, mlflow_sqlite_uri, model, X)
    assert _model_folders() == before  # the saved folder handed over is gone


def test_a_model_the_dead_helper_never_logged_is_logged_from_this_process(mlflow_sqlite_uri):
    client, run_id = _new_run(mlflow_sqlite_uri)
    model, X, example = _trained_model()
    sink = MetricWriter(mlflow_sqlite_uri)
    try:
        sink._proc.kill()  # before it could read the job
        sink._proc.join(10)
        uri = sink.model_uri(sink.start_model(run_id, model, example))
    finally:
        sink.close()
    assert client.get_logged_model(uri.removeprefix("models:/")).source_run_id == run_id
    assert _predicts_like(uri, mlflow_sqlite_uri, model, X)


@pytest.mark.parametrize("sink_class", [MetricWriter, InlineWriter])
def test_a_refused_model_is_one_line_naming_the_run(mlflow_sqlite_uri, sink_class):
    _new_run(mlflow_sqlite_uri)
    model, _, example = _trained_model()
    sink = sink_class(mlflow_sqlite_uri)
    try:
        with pytest.raises(TrackingWriteError) as raised:
            sink.model_uri(sink.start_model("0123456789abcdef0123456789abcdef", model, example))
    finally:
        sink.close()
    message = str(raised.value)
    assert "\n" not in message and "0123456789abcdef0123456789abcdef" in message


def test_closing_removes_the_folder_of_a_model_nobody_waited_for(mlflow_sqlite_uri):
    """Ctrl-C while the plots are drawn: the run ends without asking for its model; no folder is left behind."""
    _, run_id = _new_run(mlflow_sqlite_uri)
    model, _, example = _trained_model()
    before = _model_folders()
    sink = MetricWriter(mlflow_sqlite_uri)
    sink.start_model(run_id, model, example)
    assert len(_model_folders() - before) == 1
    sink.close()
    assert _model_folders() == before
    assert not sink._proc.is_alive()
