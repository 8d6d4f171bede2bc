"""LiveCurves: throttled redraws, progress, the final figure; in a script and in a real kernel."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import bpexp
from bpexp.widgets.live import LiveCurves


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeTrainer:
    def __init__(self, epochs):
        self.epochs = epochs


class FakeHistory:
    status, stop_reason = "completed", None


def test_redraws_are_throttled_and_the_end_always_draws():
    clock = FakeClock()
    live = LiveCurves(title="t", every=0.5, display=False, clock=clock)
    live.on_train_begin(FakeTrainer(100))
    for epoch in range(1, 101):
        clock.now += 0.01  # 100 epochs in 1 s
        live.on_epoch_end(epoch, {"epoch": epoch, "train_loss": 1 / epoch, "val_loss": 1.1 / epoch,
                                  "val_accuracy": 1 - 1 / epoch, "lr": 0.01})
    during = live.draws
    live.on_train_end(FakeHistory())
    # first epoch, then at most one draw per 0.5 s (and per 4x a draw's cost), then the end
    assert 1 <= during <= 3 and live.draws == during + 1
    assert live.curves["val_loss"][-1] == pytest.approx(0.011) and len(live.curves["epoch"]) == 100
    assert live.progress.value == 100 and live.progress.bar_style == "success"
    assert live.label.value.startswith("completed: 100/100 epochs")
    assert bytes(live.image.value).startswith(b"\x89PNG")
    assert live.figure.axes[0].get_title() == "" and "100 epochs" in live.figure.get_suptitle()


def test_with_fit_and_early_stopping():
    ds = bpexp.load_dataset("moons", n_samples=200, noise=0.2, seed=0)
    parts = bpexp.split(ds, val_size=0.25, test_size=0.0, seed=0)
    model = bpexp.MLP([2, 8, 2], task="classification", seed=0)
    live = LiveCurves(every=0.0)  # outside a notebook: records and draws, shows nothing
    assert live.display is False
    history = bpexp.fit(model, parts.X_train, parts.y_train, validation_data=(parts.X_val, parts.y_val),
                        optimizer="adam", lr=0.01, epochs=40, callbacks=[bpexp.EarlyStopping(patience=2,
                                                                                            min_delta=0.5), live])
    assert len(history) < 40
    assert live.curves["train_loss"] == history["train_loss"]
    assert "early stopping" in live.label.value
    assert [ax.get_ylabel() for ax in live.figure.axes] == ["loss", "accuracy"]


def test_a_failed_fit_turns_the_bar_red():
    live = LiveCurves(display=False)
    model = bpexp.MLP([2, 4, 1], task="regression", seed=0)
    X = np.ones((8, 2), dtype=np.float32)
    with pytest.raises(bpexp.TrainingDivergedError):
        bpexp.fit(model, X, np.full(8, 1e30), optimizer="sgd", lr=1e3, epochs=5, callbacks=[live])
    assert live.progress.bar_style == "danger" and live.label.value.startswith("failed")


NOTEBOOK_CELL = """
import numpy as np, bpexp
from bpexp.widgets import LiveCurves
ds = bpexp.load_dataset("moons", n_samples=200, noise=0.2, seed=0)
parts = bpexp.split(ds, val_size=0.25, test_size=0.0, seed=0)
model = bpexp.MLP([2, 8, 2], task="classification", seed=0)
history = bpexp.fit(model, parts.X_train, parts.y_train, validation_data=(parts.X_val, parts.y_val),
                    optimizer="adam", lr=0.01, epochs=30, callbacks=[LiveCurves(title="moons", every=0.05)])
print(len(history))
"""


@pytest.mark.slow
def test_in_a_kernel_the_saved_notebook_keeps_only_the_final_plot(tmp_path):
    """Executed in a real ipykernel (as Jupyter would): one display, updated in place, ending as a PNG."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(NOTEBOOK_CELL))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    # "python3" is jupyter_client's native kernel: this interpreter (the venv with bpexp)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    displays = [o for o in outputs if o.output_type == "display_data"]
    assert len(displays) == 1, outputs  # no output spam: one display updated in place
    assert "image/png" in displays[0].data
    assert "application/vnd.jupyter.widget-view+json" not in displays[0].data  # the widget is gone
    streams = "".join(o.text for o in outputs if o.output_type == "stream")
    assert streams.strip() == "30"


def test_run_live_adds_live_curves_and_prints_nothing_outside_a_notebook(mlflow_sqlite_uri, capsys):
    from widget_stores import CONFIG

    result = bpexp.run(CONFIG, tracking_uri=mlflow_sqlite_uri, live=True, progress=False, log_plots=False,
                       log_model=None, training__epochs=3)
    assert len(result.history) == 3
    assert capsys.readouterr().out == ""
