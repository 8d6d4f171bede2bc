"""RunBrowser: the runs table, overlaid learning curves of the selected runs, their differences, deploy."""

from __future__ import annotations

import html
import re

import ipywidgets as W

from bpexp.widgets.deploy import DeployController, DeployPanel
from bpexp.widgets.runs import RunsController
from bpexp.widgets.table import TableView, png_image


class RunBrowser(W.VBox):
    """Compare the runs of an experiment or a sweep and deploy one of them.

    One table of runs (name, state, key params, final and best metrics; sort by any
    column, filter by text or by a param's value, ★ marks the best run, Refresh pulls new
    runs). Selecting runs overlays their learning curves (train/val loss and the validation
    metric per epoch, one colour per run) and lists the params that differ between them.
    The Deploy panel registers or exports the chosen run.

    Parameters
    ----------
    experiment : str, optional
        MLflow experiment name.
    study : str, optional
        Optuna study name of a sweep (its trial runs). Default: all runs of the store.
    tracking_uri : str, optional
        Default ``$MLFLOW_TRACKING_URI``, else the project's ``mlruns/mlflow.db``.
    metric : str, optional
        Decides the best run and the default sort (default: test_accuracy, test_r2, ...).
    rows : int
        Visible rows of the table.
    export_dir : str
        Default export folder.

    Attributes
    ----------
    controller : RunsController
    table : TableView
    deploy : DeployPanel
    curves : ipywidgets.Image
        PNG of the overlaid curves of the selected runs (empty when none).
    diff : ipywidgets.HTML
        Side-by-side table of the params that differ, with the best validation values.

    Examples
    --------
    >>> browser = RunBrowser(study="digits-sweep")          # doctest: +SKIP
    >>> browser.select(browser.controller.best_id)           # doctest: +SKIP
    >>> browser                                              # doctest: +SKIP
    """

    def __init__(self, experiment: str | None = None, study: str | None = None, tracking_uri: str | None = None,
                 metric: str | None = None, rows: int = 12, export_dir: str = "outputs/model"):
        self.controller = RunsController(experiment=experiment, study=study, tracking_uri=tracking_uri,
                                         metric=metric)
        self.table = TableView(self.controller, rows=rows, noun="runs")
        self.curves = png_image()
        self.curves_note = W.HTML("<i>Select runs (Ctrl/Shift-click) to compare their learning curves.</i>")
        self.diff = W.HTML()
        name = _model_name(study or experiment or "bpexp")
        self.deploy = DeployPanel(DeployController(self.controller.tracking_uri), name=name, folder=export_dir)
        self.table.on_select(self._selection_changed)
        self.table.on_change(self.deploy.clear_result)  # "Exported…" is about rows no longer shown
        title = f"study <b>{html.escape(study)}</b>" if study else (
            f"experiment <b>{html.escape(experiment)}</b>" if experiment else "all experiments")
        super().__init__([
            W.HTML(f"<h4 style='margin:4px 0'>Runs of {title}</h4>"),
            self.table,
            self.curves_note,
            self.curves,
            self.diff,
            self.deploy,
        ])
        self.add_class("bpexp-run-browser")
        self._selection_changed(())

    @property
    def selected(self) -> tuple[str, ...]:
        """Run ids selected in the table."""
        return self.table.selected

    def select(self, *run_ids: str) -> None:
        """Select these runs (as clicking them would)."""
        flat = [i for r in run_ids for i in ([r] if isinstance(r, str) else r)]
        self.table.selected = flat

    def refresh(self) -> None:
        """Reload runs from the store (the Refresh button)."""
        self.table.refresh()

    def _selection_changed(self, run_ids) -> None:
        run_ids = list(run_ids)
        c = self.controller
        self.deploy.clear_result()  # the last Register/Export message was about the previous choice
        if run_ids:
            from bpexp.plots import figure_png

            figure = c.curve_figure(run_ids)
            self.curves.value = figure_png(figure)
            self.curves.layout.display = None
            self.curves_note.value = ""
            self.diff.value = _diff_html(c, run_ids)
        else:
            self.curves.value = b""
            self.curves.layout.display = "none"  # no broken-image icon while nothing is selected
            self.curves_note.value = "<i>Select runs (Ctrl/Shift-click) to compare their learning curves.</i>"
            self.diff.value = ""
        # deploy candidates: the selected runs, else the best run; the best one preselected
        candidates = run_ids or ([c.best_id] if c.best_id else [])
        best = c.best_id if c.best_id in candidates else (candidates[0] if candidates else None)
        self.deploy.set_runs([(_deploy_label(c, i), i) for i in candidates], default=best)

    def __repr__(self) -> str:
        what = f"study={self.controller.study!r}" if self.controller.study else \
            f"experiment={self.controller.experiment!r}"
        return f"RunBrowser({what}, runs={len(self.controller.runs)})"


def _model_name(source: str) -> str:
    """A registry-friendly default model name from the experiment or study name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", source).strip("-") or "bpexp-model"


def _deploy_label(c: RunsController, run_id: str) -> str:
    star = " ★ best" if run_id == c.best_id else ""
    return f"{c.label(run_id)} ({run_id[:8]}){star}"


def _diff_html(c: RunsController, run_ids: list[str]) -> str:
    """The selected runs side by side: params that differ, then best validation values."""
    from bpexp.widgets.runs import param_cell
    from bpexp.widgets.tabledata import format_value

    diff = c.param_diff(run_ids)
    rows = [(k, [format_value(param_cell(v)) for v in values]) for k, values in diff.rows] + c.best_values(run_ids)
    if len(run_ids) == 1:
        title = "Selected run"
    elif not diff.rows:
        title = "No params differ between the selected runs"
    else:
        title = f"Params that differ ({len(diff.rows)})"
    head = "".join(f"<th style='padding:2px 8px'>{html.escape(n)}</th>" for n in diff.runs)
    body = "".join(
        "<tr><td style='padding:2px 8px'><code>" + html.escape(k) + "</code></td>"
        + "".join(f"<td style='padding:2px 8px'>{html.escape(v)}</td>" for v in values) + "</tr>"
        for k, values in rows
    )
    return (f"<div class='bpexp-param-diff'><b>{title}</b><table style='border-collapse:collapse'>"
            f"<tr><th></th>{head}</tr>{body}</table></div>")
