"""LiveCurves: a progress bar and learning curves that update in a notebook while a model trains.

``bpexp.run(..., live=True)`` adds one; ``bpexp.fit(..., callbacks=[LiveCurves()])`` works
the same. Redraws are throttled (at most one every ``every`` seconds, and never more than a
fifth of the wall time goes to drawing), the plot is one image updated in place (no
flicker, no stream of outputs), and when training ends the widget is replaced by the
final figure itself, so a saved notebook keeps the plot without any widget state.
"""

from __future__ import annotations

import html
import time

from bpexp.train.callbacks import Callback


def _in_notebook() -> bool:
    """Whether an IPython kernel can display widgets (not a plain Python script or terminal)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveCurves(Callback):
    """Live learning curves (train/val loss and the main validation metric) with a progress bar.

    Parameters
    ----------
    title : str, optional
        Figure title (``bpexp.run`` passes the run name).
    every : float, default 0.5
        Minimum seconds between redraws; the first epoch and the end always draw.
    display : bool, optional
        Show the widget; default: only inside a notebook kernel. Outside one the
        callback still records the curves and renders the figure (for tests and scripts)
        but prints nothing.
    clock : callable
        Time source (tests pass a fake one).

    Attributes
    ----------
    curves : dict
        ``{"train_loss": [...], "val_loss": [...], ..., "epoch": [...]}`` so far.
    figure : matplotlib Figure
        Redrawn in place.
    draws : int
        How many times the figure was rendered.
    progress, label, image : ipywidgets
        The live view.
    """

    def __init__(self, title: str | None = None, every: float = 0.5, display: bool | None = None,
                 clock=time.monotonic):
        self.title, self.every, self.clock = title, float(every), clock
        self.display = _in_notebook() if display is None else display
        self.draws = 0
        self.curves: dict[str, list] = {}
        self.figure = None
        self._handle = None

    # ------------------------------------------------------------------ callback hooks
    def on_train_begin(self, trainer) -> None:
        super().on_train_begin(trainer)
        import ipywidgets as W

        from bpexp.plots import _figure
        from bpexp.widgets.table import png_image

        self.curves, self.draws, self._draw_seconds = {}, 0, 0.0
        self._last_draw = None
        self._start = self.clock()
        self.figure = _figure(9, 3.4)
        self.progress = W.IntProgress(value=0, min=0, max=max(int(trainer.epochs), 1), bar_style="info",
                                      layout=W.Layout(width="360px"))
        self.label = W.HTML(f"epoch 0/{trainer.epochs}")
        self.image = png_image()
        self.box = W.VBox([W.HBox([self.progress, self.label]), self.image])
        if self.display:
            from IPython.display import display

            self._handle = display(self.box, display_id=True)

    def on_epoch_end(self, epoch, logs) -> None:
        for key, value in logs.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.curves.setdefault(key, []).append(value)
        if "epoch" not in logs:
            self.curves.setdefault("epoch", []).append(epoch)
        now = self.clock()
        # budget: wait at least `every` s, and 4x the last draw's cost, so drawing stays <= ~20% of the time
        wait = max(self.every, 4 * self._draw_seconds)
        if self._last_draw is None or now - self._last_draw >= wait:
            self._update(epoch, logs, now)

    def on_train_end(self, history) -> None:
        if self.figure is None:  # on_train_begin never ran
            return
        epochs = len(self.curves.get("epoch", []))
        status = getattr(history, "status", "completed")
        self.progress.value = min(epochs, self.progress.max)
        self.progress.bar_style = {"completed": "success", "stopped": "success"}.get(status, "danger")
        self.label.value = html.escape(self._summary(epochs, status, getattr(history, "stop_reason", None)))
        self._redraw(final=True)
        if self._handle is not None:
            from IPython.display import Image

            # the saved notebook keeps this static PNG (whatever the matplotlib backend);
            # the widget, whose state a saved notebook does not keep, goes away
            self._handle.update(Image(data=bytes(self.image.value), format="png"))
            self.box.close()

    # ------------------------------------------------------------------ drawing
    def _update(self, epoch: int, logs: dict, now: float) -> None:
        self.progress.value = min(epoch, self.progress.max)
        shown = {k: logs[k] for k in ("train_loss", "val_loss", "val_accuracy", "val_r2") if k in logs}
        text = "  ".join(f"{k}={v:.4g}" for k, v in shown.items())
        self.label.value = html.escape(f"epoch {epoch}/{self.progress.max}  {text}")
        self._redraw()
        self._last_draw = now

    def _redraw(self, final: bool = False) -> None:
        from bpexp.plots import figure_png, learning_curves

        t0 = time.perf_counter()
        title = self.title or "training"
        if final:
            title = f"{title} ({len(self.curves.get('epoch', []))} epochs)"
        learning_curves(self.curves, title=title, figure=self.figure)
        self.image.value = figure_png(self.figure)
        self.draws += 1
        self._draw_seconds = time.perf_counter() - t0

    def _summary(self, epochs: int, status: str, reason: str | None) -> str:
        seconds = self.clock() - self._start
        text = f"{status}: {epochs}/{self.progress.max} epochs in {seconds:.1f} s"
        return f"{text} ({reason})" if reason else text
