"""An Optuna study as table data (trials linked to their MLflow runs) and as study plots.

Pure logic (no widgets): :class:`~bpexp.widgets.study.StudyView` draws it.
"""

from __future__ import annotations

import warnings

from bpexp.errors import InvalidInputError
from bpexp.widgets.tabledata import Column, Record, TableSource

#: The study plots, by tab title: ``optuna.visualization.matplotlib`` function names.
PLOTS = {
    "optimization history": "plot_optimization_history",
    "param importances": "plot_param_importances",
    "intermediate values": "plot_intermediate_values",
    "parallel coordinates": "plot_parallel_coordinate",
}


def as_study(study):
    """An ``optuna.Study`` from a study or from a sweep result (anything with ``.study``)."""
    inner = getattr(study, "study", None)
    study = inner if inner is not None else study
    if not hasattr(study, "get_trials") or not hasattr(study, "study_name"):
        raise InvalidInputError(f"expected an optuna Study or a sweep result, got {type(study).__name__}")
    return study


class StudyController(TableSource):
    """The trials of a study (number, state, value, params, epochs, run) and its plots.

    Parameters
    ----------
    study : optuna.Study or sweep result
        A sweep result (``bpexp.sweep(...)``) also gives the tracking URI.
    tracking_uri : str, optional
        The MLflow store holding the trial runs (default: the sweep result's or the one
        the study records in its ``mlflow_tracking_uri`` attribute, else
        ``$MLFLOW_TRACKING_URI`` or the project's store).
    """

    def __init__(self, study, tracking_uri: str | None = None):
        from bpexp.widgets.runs import resolve_uri

        self.study = as_study(study)
        # a bpexp sweep records its MLflow store on the study itself
        recorded = getattr(study, "tracking_uri", None) or self.study.user_attrs.get("mlflow_tracking_uri")
        from bpexp.redaction import MASK

        if recorded and MASK in recorded:  # stored with its password masked: $MLFLOW_TRACKING_URI has the real one
            recorded = None
        self.tracking_uri = resolve_uri(tracking_uri or recorded)
        self._runs = None
        self.refresh()

    @property
    def name(self) -> str:
        return self.study.study_name

    @property
    def runs(self):
        """The study's runs (:class:`~bpexp.widgets.runs.RunsController`), loaded on first use."""
        if self._runs is None:
            from bpexp.widgets.runs import RunsController

            self._runs = RunsController(study=self.name, tracking_uri=self.tracking_uri)
        return self._runs

    def refresh(self) -> None:
        """Reload the trials (and the runs, once loaded)."""
        from optuna.trial import TrialState

        self.trials = self.study.get_trials(deepcopy=False)
        self.by_number = {str(t.number): t for t in self.trials}
        if self._runs is not None:
            self._runs.refresh()
        try:
            maximize = self.study.direction.name == "MAXIMIZE"
        except RuntimeError:  # multi-objective: no single direction, no single best
            maximize, self.best_id = None, None
        else:
            complete = [t for t in self.trials if t.state == TrialState.COMPLETE and t.value is not None]
            best = (max if maximize else min)(complete, key=lambda t: t.value) if complete else None
            self.best_id = str(best.number) if best is not None else None
        params = sorted({k for t in self.trials for k in t.params})
        self.columns = [Column("trial", "trial", higher_is_better=False), Column("state", "state"),
                        Column("value", "value", higher_is_better=maximize),
                        *[Column(f"param:{p}", p) for p in params],
                        Column("epochs", "epochs", higher_is_better=False),
                        Column("seconds", "seconds", higher_is_better=False),
                        Column("run", "run id")]
        self.default_sort = "value" if maximize is not None else "trial"
        self.records = [self._record(t, params) for t in self.trials]

    @staticmethod
    def _record(trial, params: list[str]) -> Record:
        steps = trial.intermediate_values
        seconds = trial.duration.total_seconds() if trial.duration is not None else None
        values = {"trial": trial.number, "state": trial.state.name.lower(), "value": trial.value,
                  "epochs": max(steps) if steps else None, "seconds": seconds,
                  "run": (trial.user_attrs.get("mlflow_run_id") or "")[:8] or None}
        values.update({f"param:{p}": _cell(trial.params.get(p)) for p in params})
        return Record(str(trial.number), values, {p: str(_cell(v)) for p, v in trial.params.items()})

    def run_id(self, trial_id: str | int) -> str | None:
        """The MLflow run of a trial (its ``mlflow_run_id`` user attribute)."""
        trial = self.by_number.get(str(trial_id))
        if trial is None:
            raise InvalidInputError(f"study {self.name!r} has no trial {trial_id}")
        return trial.user_attrs.get("mlflow_run_id")

    def run_ids(self, trial_ids) -> tuple[list[str], list[str]]:
        """Run ids of the trials found in the store, and the trials without a run there."""
        found, missing = [], []
        for t in trial_ids:
            run_id = self.run_id(t)
            (found if run_id and run_id in self.runs.by_id else missing).append(run_id if run_id else str(t))
        return found, missing

    def curve_figure(self, trial_ids, figure=None):
        """Overlaid learning curves of the trials' runs (None if none of them has a run)."""
        run_ids, _ = self.run_ids(trial_ids)
        return self.runs.curve_figure(run_ids, figure=figure) if run_ids else None

    # ------------------------------------------------------------------ plots
    def plot_figure(self, name: str):
        """The study plot ``name`` (a key of :data:`PLOTS`) as a matplotlib Figure.

        Raises
        ------
        InvalidInputError
            Unknown plot, or a plot the study cannot have yet (e.g. importances
            need two complete trials); the message says why.
        """
        if name not in PLOTS:
            raise InvalidInputError(f"unknown plot {name!r}; plots: {list(PLOTS)}")
        import matplotlib
        import optuna.visualization.matplotlib as ovm
        from optuna.exceptions import ExperimentalWarning

        # optuna's plots switch the global matplotlib style to ggplot: keep it to these figures
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore", ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)  # matplotlib's "no artists for the legend" on empty plots
            try:
                axes = getattr(ovm, PLOTS[name])(self.study)
            except (ValueError, RuntimeError) as exc:  # optuna says why, e.g. too few trials
                raise InvalidInputError(f"cannot draw {name} for study {self.name!r} yet: {exc}") from None
        first = axes.flat[0] if hasattr(axes, "flat") else axes
        from bpexp.tuning.plot_layout import tidy_figure

        params = sorted({k for t in self.study.get_trials(deepcopy=False) for k in t.params})
        tidy_figure(first.figure, PLOTS[name].removeprefix("plot_"), params)
        return first.figure

    def plot_png(self, name: str) -> bytes:
        """The study plot as PNG bytes; its pyplot figure is closed (no duplicate inline output)."""
        import matplotlib.pyplot as plt

        from bpexp.plots import figure_png

        figure = self.plot_figure(name)
        try:
            no_data = not any(ax.has_data() for ax in figure.axes)
            if no_data:
                raise InvalidInputError(f"no data for {name} in study {self.name!r} yet (no finished trials?)")
            return figure_png(figure)
        finally:
            plt.close(figure)

    def __repr__(self) -> str:
        return f"StudyController(study={self.name!r}, trials={len(self.trials)})"


def _cell(value):
    """Trial params as cells: numbers stay numbers (sortable), everything else text."""
    return value if isinstance(value, (int, float, str)) or value is None else str(value)
