"""StudyView: an Optuna study's plots and its trials table, linked to the trials' MLflow runs."""

from __future__ import annotations

import html

import ipywidgets as W

from bpexp.errors import BpexpError
from bpexp.redaction import redact
from bpexp.widgets.table import TableView, png_image
from bpexp.widgets.trials import PLOTS, StudyController


class StudyView(W.VBox):
    """Tabs with the study plots (optimization history, param importances, intermediate
    values, parallel coordinates) and a trials table: selecting trials overlays the learning
    curves of their runs.

    Parameters
    ----------
    study : optuna.Study or sweep result
    tracking_uri : str, optional
        Store of the trial runs (default: the sweep result's, else the usual resolution).

    Attributes
    ----------
    controller : StudyController
    tabs : ipywidgets.Tab
        One tab per plot, then "trials". Plots are drawn when their tab is first shown.
    images : dict of str to ipywidgets.Image
    trials : TableView
    curves : ipywidgets.Image
    """

    def __init__(self, study, tracking_uri: str | None = None, rows: int = 10):
        self.controller = c = StudyController(study, tracking_uri=tracking_uri)
        self.images = {name: png_image() for name in PLOTS}
        self.notes = {name: W.HTML() for name in PLOTS}
        self._drawn: set[str] = set()
        self.trials = TableView(c, rows=rows, noun="trials")
        self.curves = png_image(display="none")
        self.curves_note = W.HTML("<i>Select trials to see the learning curves of their runs.</i>")
        pages = [W.VBox([self.notes[n], self.images[n]]) for n in PLOTS]
        pages.append(W.VBox([self.trials, self.curves_note, self.curves]))
        self.tabs = W.Tab(children=pages, titles=[*PLOTS, "trials"])
        self.tabs.observe(lambda ch: self._show(ch["new"]), "selected_index")
        self.trials.on_select(self._trials_selected)
        self.trials.refresh_button.on_click(lambda _: self._redraw_plots())
        super().__init__([self._summary_widget(), self.tabs])
        self.add_class("bpexp-study-view")
        self._show(0)

    def _summary_widget(self) -> W.HTML:
        self.summary = W.HTML()
        self._update_summary()
        return self.summary

    def _update_summary(self) -> None:
        c = self.controller
        states: dict[str, int] = {}
        for t in c.trials:
            states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
        counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        best = ""
        if c.best_id is not None:
            t = c.by_number[c.best_id]
            params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
            best = f" · best: trial {t.number}, value {t.value:.4g} ({html.escape(params)})"
        self.summary.value = (f"<b>Study {html.escape(c.name)}</b>: {len(c.trials)} trials"
                              f"{' (' + counts + ')' if counts else ''}{best}")

    def _show(self, index: int | None) -> None:
        """Draw the plot of tab ``index`` the first time it is shown (plots cost ~0.2-1 s each)."""
        names = list(PLOTS)
        if index is None or index >= len(names) or names[index] in self._drawn:
            return
        name = names[index]
        try:
            self.images[name].value = self.controller.plot_png(name)
            self.images[name].layout.display = None
            self.notes[name].value = ""
        except BpexpError as exc:
            self.images[name].layout.display = "none"
            self.notes[name].value = f"<i>{html.escape(str(exc))}</i>"
        self._drawn.add(name)

    def _redraw_plots(self) -> None:
        """After a refresh (the trials tab's button): new trials change every plot."""
        self._drawn.clear()
        self._update_summary()
        self._show(self.tabs.selected_index)

    def _trials_selected(self, trial_ids) -> None:
        from bpexp.plots import figure_png

        c = self.controller
        if not trial_ids:
            self.curves.layout.display = "none"
            self.curves_note.value = "<i>Select trials to see the learning curves of their runs.</i>"
            return
        run_ids, missing = c.run_ids(trial_ids)
        note = f"no MLflow run found in {redact(c.tracking_uri)} for: {', '.join(missing)}" if missing else ""
        if run_ids:
            self.curves.value = figure_png(c.runs.curve_figure(run_ids))
            self.curves.layout.display = None
        else:
            self.curves.layout.display = "none"
        self.curves_note.value = f"<i>{html.escape(note)}</i>"

    def __repr__(self) -> str:
        return f"StudyView(study={self.controller.name!r}, trials={len(self.controller.trials)})"
