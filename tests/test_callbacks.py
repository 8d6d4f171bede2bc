"""The callbacks protocol, stopping, early stopping and the History object."""

from __future__ import annotations

import numpy as np
import pytest

import bpexp
from bpexp.errors import InvalidInputError, TrainingDivergedError
from bpexp.train import Trainer
from bpexp.train.callbacks import Callback


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int)
    return X[:60], y[:60], X[60:], y[60:]


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, trainer):
        super().on_train_begin(trainer)
        self.events.append(("begin", trainer.epochs, len(trainer.history)))

    def on_epoch_end(self, epoch, logs):
        self.events.append(("epoch", epoch, sorted(logs)))

    def on_train_end(self, history):
        self.events.append(("end", history.status, len(history)))


def test_hooks_are_called_in_order_with_logs(data):
    X, y, Xv, yv = data
    rec = Recorder()
    model = bpexp.MLP([4, 5, 2], seed=0)
    history = bpexp.fit(model, X, y, validation_data=(Xv, yv), epochs=3, callbacks=[rec], seed=0)
    assert rec.events[0] == ("begin", 3, 0)
    assert [e[1] for e in rec.events[1:4]] == [1, 2, 3]
    assert all("val_loss" in e[2] and "train_loss" in e[2] for e in rec.events[1:4])
    assert rec.events[4] == ("end", "completed", 3)
    assert rec.trainer.model is model and rec.trainer.history is history


def test_logs_passed_to_callbacks_are_the_history_entries(data):
    X, y, Xv, yv = data
    seen = []
    model = bpexp.MLP([4, 5, 2], seed=0)
    history = bpexp.fit(model, X, y, validation_data=(Xv, yv), epochs=2, seed=0,
                        callbacks=[bpexp.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(dict(logs)))])
    assert seen == list(history)


def test_a_callback_can_stop_training(data):
    X, y, _, _ = data

    class StopAtTwo(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                self.trainer.stop("enough after two")

    rec = Recorder()
    history = bpexp.fit(bpexp.MLP([4, 5, 2], seed=0), X, y, epochs=10, callbacks=[StopAtTwo(), rec], seed=0)
    assert len(history) == 2
    assert history.status == "stopped" and history.stop_reason == "enough after two"
    assert rec.events[-1] == ("end", "stopped", 2)
    # Callbacks after the stopping one still see the epoch that triggered the stop.
    assert [e[1] for e in rec.events if e[0] == "epoch"] == [1, 2]


def test_on_train_end_runs_when_a_callback_raises(data):
    X, y, _, _ = data

    class Boom(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                raise RuntimeError("callback bug")

    rec = Recorder()
    with pytest.raises(RuntimeError, match="callback bug"):
        bpexp.fit(bpexp.MLP([4, 5, 2], seed=0), X, y, epochs=5, callbacks=[rec, Boom()], seed=0)
    assert rec.events[-1] == ("end", "failed", 2)
    assert isinstance(rec.trainer.error, RuntimeError)


def test_on_train_end_runs_when_training_diverges():
    rng = np.random.default_rng(1)
    X = 10 * rng.normal(size=(100, 3))
    y = 100 * X.sum(axis=1)
    rec = Recorder()
    model = bpexp.MLP([3, 16, 1], task="regression", seed=0)
    with pytest.raises(TrainingDivergedError), np.errstate(all="ignore"):
        bpexp.fit(model, X, y, lr=0.5, epochs=50, batch_size=10, callbacks=[rec], seed=0)
    assert rec.events[-1][:2] == ("end", "failed")
    assert isinstance(rec.trainer.error, TrainingDivergedError)


# ---------------------------------------------------------------------------- early stopping, unit level
def _drive(es, values, monitor="val_loss"):
    """Feed a sequence of monitored values to an EarlyStopping inside a real Trainer; return epochs run."""
    model = bpexp.MLP([2, 2], seed=0)
    history = bpexp.History()
    trainer = Trainer(model, len(values), None, None, history)
    es.on_train_begin(trainer)
    for epoch, v in enumerate(values, start=1):
        model.params[:] = epoch  # so the restored weights tell which epoch they came from
        logs = {"epoch": epoch, monitor: v}
        history.append(logs)
        es.on_epoch_end(epoch, logs)
        if trainer.stop_training:
            break
    history.status = "stopped" if trainer.stop_training else "completed"
    es.on_train_end(history)
    return len(history), history, model


def test_early_stopping_patience_counts_epochs_without_improvement():
    es = bpexp.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=False)
    n, history, _ = _drive(es, [1.0, 0.8, 0.9, 0.85, 0.81, 0.7, 0.75])
    # best at epoch 2; epochs 3, 4, 5 do not improve -> stop after epoch 5
    assert n == 5 and es.best_epoch == 2 and history.best_epoch == 2
    assert history.stop_reason == "early stopping: val_loss did not improve for 3 epochs (best 0.8 at epoch 2)"


def test_early_stopping_min_delta():
    es = bpexp.EarlyStopping(monitor="val_loss", patience=2, min_delta=0.1)
    n, history, _ = _drive(es, [1.0, 0.95, 0.91, 0.7, 0.65, 0.62])
    # 0.95 and 0.91 are within 0.1 of 1.0 -> no improvement: stop after epoch 3
    assert n == 3 and es.best_epoch == 1
    es = bpexp.EarlyStopping(monitor="val_loss", patience=2, min_delta=0.1)
    n, _, _ = _drive(es, [1.0, 0.85, 0.7, 0.65, 0.62, 0.61])
    # 0.85 < 0.9 and 0.7 < 0.75 improve; then 0.65 and 0.62 do not -> stop after epoch 5
    assert n == 5 and es.best_epoch == 3


def test_early_stopping_max_mode_auto_and_explicit():
    es = bpexp.EarlyStopping(monitor="val_accuracy", patience=2)
    assert es.mode == "max"
    n, _, _ = _drive(es, [0.5, 0.7, 0.6, 0.65, 0.9], monitor="val_accuracy")
    assert n == 4 and es.best_epoch == 2
    es = bpexp.EarlyStopping(monitor="val_r2", patience=1)
    assert es.mode == "max"
    es = bpexp.EarlyStopping(monitor="score", mode="max", patience=1)
    n, _, _ = _drive(es, [1, 2, 3, 2], monitor="score")
    assert n == 4 and es.best_epoch == 3
    assert bpexp.EarlyStopping(monitor="val_log_loss").mode == "min"


def test_early_stopping_restores_the_best_epoch_weights():
    es = bpexp.EarlyStopping(patience=2)
    _, history, model = _drive(es, [1.0, 0.5, 0.7, 0.8])
    assert history.best_epoch == 2 and (model.params == 2).all()


def test_early_stopping_without_restore_keeps_last_weights():
    es = bpexp.EarlyStopping(patience=2, restore_best_weights=False)
    _, _, model = _drive(es, [1.0, 0.5, 0.7, 0.8])
    assert (model.params == 4).all()


def test_early_stopping_restores_even_when_all_epochs_ran():
    es = bpexp.EarlyStopping(patience=10)
    n, history, model = _drive(es, [1.0, 0.5, 0.7, 0.8])
    assert n == 4 and history.status == "completed" and (model.params == 2).all()


def test_early_stopping_settings_are_checked():
    with pytest.raises(InvalidInputError, match="patience must be >= 1, got 0"):
        bpexp.EarlyStopping(patience=0)
    with pytest.raises(InvalidInputError, match="min_delta must be >= 0, got -1"):
        bpexp.EarlyStopping(min_delta=-1)
    with pytest.raises(InvalidInputError, match="mode must be 'min', 'max' or 'auto', got 'down'"):
        bpexp.EarlyStopping(mode="down")


# ---------------------------------------------------------------------------- early stopping, real training
def test_early_stopping_in_training_restores_best_weights(data):
    X, y, Xv, yv = data
    snapshots = {}
    model = bpexp.MLP([4, 64, 2], seed=0)
    capture = bpexp.LambdaCallback(on_epoch_end=lambda e, logs: snapshots.__setitem__(e, model.params.copy()))
    es = bpexp.EarlyStopping(monitor="val_loss", patience=3)
    # A large learning rate on a tiny set overfits quickly, so validation loss turns up.
    history = bpexp.fit(model, X, y, validation_data=(Xv, yv), optimizer="adam", lr=0.05, epochs=200,
                        batch_size=8, callbacks=[capture, es], seed=0)
    assert history.status == "stopped" and history.stop_reason.startswith("early stopping: val_loss")
    losses = history["val_loss"]
    best = int(np.argmin(losses)) + 1
    assert history.best_epoch == best and len(history) == best + 3
    assert np.array_equal(model.params, snapshots[best])
    assert not np.array_equal(model.params, snapshots[len(history)])
    assert bpexp.evaluate(model, Xv, yv)["loss"] == pytest.approx(losses[best - 1], rel=1e-6)


def test_early_stopping_on_a_missing_metric_names_it(data):
    X, y, _, _ = data
    rec = Recorder()
    with pytest.raises(InvalidInputError, match="early stopping monitors 'val_loss', which is not in the epoch logs"):
        bpexp.fit(bpexp.MLP([4, 2], seed=0), X, y, epochs=3, callbacks=[bpexp.EarlyStopping(), rec])
    assert rec.events[-1][:2] == ("end", "failed")


def test_early_stopping_on_a_training_metric(data):
    X, y, _, _ = data
    history = bpexp.fit(bpexp.MLP([4, 8, 2], seed=0), X, y, epochs=30, lr=1e-6,
                        callbacks=[bpexp.EarlyStopping(monitor="train_accuracy", patience=2, min_delta=0.5)])
    assert len(history) == 3 and history.best_epoch == 1


# ---------------------------------------------------------------------------- ProgressBar, LambdaCallback
def test_progress_bar_and_lambda_callback(data, capsys):
    X, y, Xv, yv = data
    calls = []
    cb = bpexp.LambdaCallback(on_train_begin=lambda t: calls.append("b"), on_epoch_end=lambda e, logs: calls.append(e),
                              on_train_end=lambda h: calls.append(h.status))
    bar = bpexp.ProgressBar(desc="unit-test")
    bpexp.fit(bpexp.MLP([4, 2], seed=0), X, y, validation_data=(Xv, yv), epochs=3, callbacks=[bar, cb], seed=0)
    assert calls == ["b", 1, 2, 3, "completed"]
    assert bar._bar.n == 3
    err = capsys.readouterr().err
    assert "unit-test" in err and "3/3" in err


# ---------------------------------------------------------------------------- History
def test_history_api(data):
    X, y, Xv, yv = data
    history = bpexp.fit(bpexp.MLP([4, 2], seed=0), X, y, validation_data=(Xv, yv), epochs=3, seed=0)
    assert len(history) == 3 and history[-1]["epoch"] == 3 and history[0]["epoch"] == 1
    assert history["val_loss"] == [e["val_loss"] for e in history]
    assert history.history["epoch"] == [1, 2, 3]
    assert history["no_such_key"] == []
    assert repr(history).startswith("History(epochs=3, status='completed', last={'train_loss'")
    assert history == history and history != bpexp.History()
