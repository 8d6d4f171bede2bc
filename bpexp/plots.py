"""Figures people would rather look at than read: learning curves, confusion matrix, decision boundary.

Built on ``matplotlib.figure.Figure`` directly (not pyplot), so they work
headless, in threads and in notebooks, and leave no global figure state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def main_metric(keys) -> str | None:
    """The validation metric to plot beside the loss: accuracy for classifiers, R² for regressors."""
    for name in ("accuracy", "r2"):
        if f"val_{name}" in keys or f"train_{name}" in keys:
            return name
    return None


def learning_curves(curves: Mapping[str, Sequence[float]], title: str | None = None, figure=None):
    """Train/validation loss and the main metric against epoch.

    Parameters
    ----------
    curves : mapping
        ``{"train_loss": [...], "val_loss": [...], "val_accuracy": [...], "epoch": [...]}``,
        e.g. ``history.history``.
    figure : matplotlib Figure, optional
        Redraw into this figure (live views) instead of creating one.
    """
    fig = figure or _figure(9, 3.6)
    fig.clear()
    metric = main_metric(curves)
    axes = fig.subplots(1, 2 if metric else 1, squeeze=False)[0]
    _plot_pair(axes[0], curves, "loss", "loss")
    if metric:
        _plot_pair(axes[1], curves, metric, metric.replace("r2", "R²"))
    if title:
        fig.suptitle(title)
    return fig


def _plot_pair(ax, curves, name, label):
    for prefix, style in (("train", "-"), ("val", "--")):
        values = curves.get(f"{prefix}_{name}")
        if values:
            epochs = curves.get("epoch") or range(1, len(values) + 1)
            ax.plot(list(epochs)[: len(values)], values, style, label=f"{prefix}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()


def overlay_curves(runs: Mapping[str, Mapping[str, Sequence[float]]], keys: Sequence[str | Sequence[str]],
                   figure=None, title: str | None = None):
    """Curves of several runs on shared axes: one colour per run, legend by run name.

    Parameters
    ----------
    runs : mapping
        ``{run name: {"val_loss": [...], "val_loss__steps": [...], ...}}``; a
        ``KEY__steps`` list gives the x values (epochs) of ``KEY``, else 1, 2, ...
    keys : sequence
        One panel per entry. An entry that is a tuple such as
        ``("train_loss", "val_loss")`` puts those keys in one panel, told apart by
        line style (solid, dashed, dotted) while the colour stays the run's.
    figure : matplotlib Figure, optional
        Redraw into this figure instead of creating one.
    """
    panels = [(k,) if isinstance(k, str) else tuple(k) for k in keys] or [()]
    fig = figure or _figure(4.4 * len(panels), 3.6)
    fig.clear()
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        for i, (name, curves) in enumerate(runs.items()):
            for key, style in zip(panel, ("-", "--", ":")):
                values = curves.get(key)
                if values:
                    steps = curves.get(f"{key}__steps") or range(1, len(values) + 1)
                    # one legend entry per run: the line style legend is in the panel title
                    label = name if key == panel[0] or not curves.get(panel[0]) else None
                    ax.plot(list(steps), values, style, color=f"C{i % 10}", label=label)
        ax.set_title(_panel_title(panel))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if runs and axes[0].lines:
        axes[0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def _panel_title(panel: tuple[str, ...]) -> str:
    if len(panel) == 1:
        return panel[0]
    styles = ("solid", "dashed", "dotted")
    return ", ".join(f"{key} ({style})" for key, style in zip(panel, styles))


def figure_png(figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for ``ipywidgets.Image`` and other non-inline displays)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def confusion_matrix_figure(matrix: np.ndarray, labels: Sequence, title: str = "confusion matrix (test)"):
    """A heatmap of counts with true classes as rows."""
    side = 0.45 * len(labels)
    fig = _figure(max(4.0, 1.6 + side), max(3.6, 1.2 + side))
    ax = fig.subplots()
    im = ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, [str(v) for v in labels], rotation=45 if len(labels) > 6 else 0)
    ax.set_yticks(ticks, [str(v) for v in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize="small",
                color="white" if count > threshold else "black")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def decision_boundary(model, X: np.ndarray, y: np.ndarray, title: str = "decision boundary", resolution: int = 200):
    """Predicted class over the plane of a two-feature classifier, with the points on top."""
    if X.shape[1] != 2:
        raise ValueError(f"a decision boundary needs 2 features, got {X.shape[1]}")
    pad = 0.1 * (X.max(axis=0) - X.min(axis=0)) + 1e-9
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    classes = model.classes_
    index = {c: i for i, c in enumerate(classes.tolist())}
    zz = np.searchsorted(classes, model.predict(grid)).reshape(gx.shape)
    fig = _figure(5, 4.4)
    ax = fig.subplots()
    ax.contourf(gx, gy, zz, levels=np.arange(len(classes) + 1) - 0.5, cmap="coolwarm", alpha=0.35)
    ax.scatter(X[:, 0], X[:, 1], c=[index[v] for v in y.tolist()], cmap="coolwarm", s=12, edgecolors="k",
               linewidths=0.3, vmin=0, vmax=max(len(classes) - 1, 1))
    ax.set_title(title)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    return fig
