"""The runs of an experiment or a sweep: table rows, the best run, learning curves, param differences.

Pure logic over an MLflow store (no widgets): :class:`~bpexp.widgets.browser.RunBrowser`
draws what :class:`RunsController` computes, and tests drive it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from bpexp.errors import InvalidInputError
from bpexp.tracking.tags import EPOCHS_RUN_TAG, PRUNED_AT_EPOCH_TAG, STUDY_TAG, TRIAL_NUMBER_TAG, TRIAL_STATE_TAG
from bpexp.widgets.tabledata import Column, Record, TableSource

#: Run states whose data can no longer change (their curves are cached).
TERMINAL = {"FINISHED", "FAILED", "KILLED"}
#: Metrics shown after the sort metric when runs have them (final and best values).
TABLE_METRICS = ("test_accuracy", "test_r2", "test_mae", "final_val_accuracy", "final_val_r2", "best_val_accuracy",
                 "best_val_r2", "best_val_loss", "best_epoch")
#: At most this many param columns (varying params first); filter by any param still.
MAX_PARAM_COLUMNS = 6
#: Params that name or file a run rather than shape it: never columns, filters or differences.
BOOKKEEPING = ("tracking.",)


def resolve_uri(tracking_uri: str | None = None) -> str:
    """``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the project's embedded sqlite store."""
    from bpexp.tracking.store import resolve_tracking_uri

    return resolve_tracking_uri(tracking_uri)


@dataclass
class ParamDiff:
    """Params that differ between runs: ``rows`` are ``(param, [value per run])``, ``""`` if missing."""

    runs: list[str]
    rows: list[tuple[str, list[str]]]


class RunsController(TableSource):
    """Runs of one experiment, of one sweep (``study``), or of the whole store.

    Parameters
    ----------
    experiment : str, optional
        An MLflow experiment name.
    study : str, optional
        An Optuna study name: the sweep's trial runs (tagged ``bpexp.study``).
    tracking_uri : str, optional
        Default ``$MLFLOW_TRACKING_URI``, else the project's ``mlruns/mlflow.db``.
    metric : str, optional
        The metric that decides the best run and the default sort (default: the
        first of test_accuracy, test_r2, final_val_accuracy, ... the runs have).
    client : MlflowClient, optional
        Reuse a client instead of connecting.

    Raises
    ------
    InvalidInputError
        Both ``experiment`` and ``study`` given, or an unknown experiment.
    TrackingUnavailableError
        The store cannot be reached.
    """

    def __init__(self, experiment: str | None = None, study: str | None = None, tracking_uri: str | None = None,
                 metric: str | None = None, client=None):
        if experiment is not None and study is not None:
            raise InvalidInputError("give either experiment=... or study=..., not both")
        if study is not None and "'" in study:
            raise InvalidInputError(f"study names with quotes are not supported: {study!r}")
        self.experiment, self.study, self.metric = experiment, study, metric
        self.tracking_uri = resolve_uri(tracking_uri)
        if client is None:
            from bpexp.tracking import connect

            client = connect(self.tracking_uri)
        self.client = client
        self._curves: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self.refresh()

    # ------------------------------------------------------------------ loading
    def refresh(self) -> None:
        """Reload the runs from the store (new runs appear, running ones update)."""
        from bpexp.tracking.queries import search_runs

        self.parent = None
        if self.study is not None:
            runs = search_runs(self.client, None, filter_string=f"tags.`{STUDY_TAG}` = '{self.study}'")
            # the sweep's parent run carries the study tag too; the table lists trials
            self.parent = next((r for r in runs if TRIAL_NUMBER_TAG not in r.data.tags), None)
            runs = [r for r in runs if TRIAL_NUMBER_TAG in r.data.tags]
        else:
            runs = search_runs(self.client, [self.experiment] if self.experiment else None)
        self.runs = runs
        self.by_id = {r.info.run_id: r for r in runs}
        self._curves = {k: v for k, v in self._curves.items()
                        if k[0] in self.by_id and self.by_id[k[0]].info.status in TERMINAL}
        self.labels = _unique_labels(runs)
        self._build()

    def _build(self) -> None:
        from bpexp.tracking.queries import KEY_PARAMS, default_sort_metric, higher_is_better

        runs = self.runs
        self.sort_metric = self.metric or self._objective_metric() or default_sort_metric(runs)
        self.best_id = self._best(self.sort_metric)
        present = {k for r in runs for k in r.data.params if not k.startswith(BOOKKEEPING)}
        varying = {k for k in present if len({r.data.params.get(k) for r in runs}) > 1}
        params = [p for p in KEY_PARAMS if p in varying] + sorted(varying - set(KEY_PARAMS))
        params += [p for p in KEY_PARAMS if p in present and p not in varying]
        params = params[:MAX_PARAM_COLUMNS]
        metric_names = {k for r in runs for k in r.data.metrics}
        metrics = [m for m in dict.fromkeys([self.sort_metric, *TABLE_METRICS]) if m in metric_names]
        columns = [Column("name", "run")]
        if self.study is not None:
            columns.append(Column("trial", "trial", higher_is_better=False))
        columns.append(Column("state", "state"))
        columns += [Column(f"param:{p}", KEY_PARAMS.get(p, p)) for p in params]
        columns += [Column(f"metric:{m}", metric_title(m), higher_is_better=m != "best_epoch" and higher_is_better(m))
                    for m in metrics]
        columns.append(Column("epochs", "epochs", higher_is_better=False))
        self.columns = columns
        self.default_sort = f"metric:{self.sort_metric}" if self.sort_metric else None
        self.records = [self._record(r, params, metrics) for r in runs]

    def _objective_metric(self) -> str | None:
        """A sweep's objective as its trials log it (``final_val_accuracy``): the best run then
        agrees with the study's best trial."""
        objective = self.parent.data.params.get("objective.metric") if self.parent is not None else None
        if objective is None:
            return None
        names = {k for r in self.runs for k in r.data.metrics}
        return next((m for m in (f"final_{objective}", objective) if m in names), None)

    def _record(self, run, params: list[str], metrics: list[str]) -> Record:
        tags = run.data.tags
        values = {"name": self.labels[run.info.run_id], "state": self.state(run.info.run_id),
                  "epochs": _number(tags.get(EPOCHS_RUN_TAG) or tags.get(PRUNED_AT_EPOCH_TAG))}
        if TRIAL_NUMBER_TAG in tags:
            values["trial"] = _number(tags[TRIAL_NUMBER_TAG])
        values.update({f"param:{p}": param_cell(run.data.params.get(p)) for p in params})
        values.update({f"metric:{m}": run.data.metrics.get(m) for m in metrics})
        shaping = {k: v for k, v in run.data.params.items() if not k.startswith(BOOKKEEPING)}
        return Record(run.info.run_id, values, shaping)

    def state(self, run_id: str) -> str:
        """The trial state for sweep trials (complete, pruned, fail), else the run status."""
        run = self.by_id[run_id]
        return run.data.tags.get(TRIAL_STATE_TAG, run.info.status).lower()

    def _best(self, metric: str | None) -> str | None:
        """The best finished run by ``metric`` (complete trials only in a sweep: a pruned
        trial's numbers are from an unfinished training)."""
        from bpexp.tracking.queries import higher_is_better

        if metric is None:
            return None
        done = [r for r in self.runs if r.info.status == "FINISHED" and metric in r.data.metrics
                and r.data.tags.get(TRIAL_STATE_TAG, "COMPLETE") == "COMPLETE"]
        if not done:
            return None
        pick = max if higher_is_better(metric) else min
        return pick(done, key=lambda r: r.data.metrics[metric]).info.run_id

    def best_run(self):
        """The best run (an MLflow ``Run``), or None when no finished run has the metric."""
        return self.by_id.get(self.best_id) if self.best_id else None

    def label(self, run_id: str) -> str:
        """The run's name (with a short id when two runs share a name)."""
        return self.labels.get(run_id, run_id[:8])

    # ------------------------------------------------------------------ curves and diffs
    def curve_panels(self, run_ids: list[str]) -> list[tuple[str, ...]]:
        """Panels to plot: train/val loss together, then the validation metric of the task."""
        metrics = {k for i in run_ids for k in self.by_id[i].data.metrics}
        metric = next((m for m in ("val_accuracy", "val_r2") if m in metrics), None)
        return [("train_loss", "val_loss"), *([(metric,)] if metric else [])]

    def curves(self, run_ids: list[str], keys: list[str] | None = None) -> dict[str, dict[str, list]]:
        """``{run label: {key: values, key__steps: epochs}}`` for :func:`bpexp.plots.overlay_curves`.

        Histories of finished runs are fetched once and cached; running ones are
        fetched again after :meth:`refresh`.
        """
        unknown = [i for i in run_ids if i not in self.by_id]
        if unknown:
            raise InvalidInputError(f"unknown run ids: {unknown}")
        keys = keys or [k for panel in self.curve_panels(run_ids) for k in panel]
        out = {}
        for run_id in run_ids:
            curves: dict[str, list] = {}
            for key in keys:
                if key not in self.by_id[run_id].data.metrics:
                    continue
                steps, values = self._history(run_id, key)
                curves[key], curves[f"{key}__steps"] = values, steps
            out[self.label(run_id)] = curves
        return out

    def _history(self, run_id: str, key: str) -> tuple[list[int], list[float]]:
        cached = self._curves.get((run_id, key))
        if cached is None:
            points = sorted(self.client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
            cached = ([m.step for m in points], [m.value for m in points])
            if self.by_id[run_id].info.status in TERMINAL:
                self._curves[(run_id, key)] = cached
        return cached

    def curve_figure(self, run_ids: list[str], figure=None):
        """Overlaid learning curves of the runs (one colour per run) as a matplotlib Figure."""
        from bpexp.plots import overlay_curves

        return overlay_curves(self.curves(run_ids), self.curve_panels(run_ids), figure=figure)

    def best_values(self, run_ids: list[str]) -> list[tuple[str, list[str]]]:
        """Rows ``(what, [per run])``: best validation loss/metric over epochs and the epoch it came at."""
        from bpexp.tracking.queries import higher_is_better
        from bpexp.widgets.tabledata import format_value

        rows = []
        keys = [k for panel in self.curve_panels(run_ids) for k in panel if k.startswith("val_")]
        for key in keys:
            best, when = [], []
            for run_id in run_ids:
                steps, values = self._history(run_id, key) if key in self.by_id[run_id].data.metrics else ([], [])
                if not values:
                    best.append("")
                    when.append("")
                    continue
                pick = max if higher_is_better(key) else min
                i = pick(range(len(values)), key=values.__getitem__)
                best.append(format_value(values[i]))
                when.append(str(steps[i]))
            rows += [(f"best {key}", best), (f"epoch of best {key}", when)]
        return rows

    def param_diff(self, run_ids: list[str]) -> ParamDiff:
        """The params whose values differ between the runs (missing counts as a value)."""
        from bpexp.tracking.queries import KEY_PARAMS

        params = [{k: v for k, v in self.by_id[i].data.params.items() if not k.startswith(BOOKKEEPING)}
                  for i in run_ids]
        keys = {k for p in params for k in p}
        differ = [k for k in keys if len({p.get(k) for p in params}) > 1]
        differ.sort(key=lambda k: (k not in KEY_PARAMS, list(KEY_PARAMS).index(k) if k in KEY_PARAMS else 0, k))
        return ParamDiff([self.label(i) for i in run_ids], [(k, [p.get(k, "") for p in params]) for k in differ])

    def __repr__(self) -> str:
        what = f"study={self.study!r}" if self.study else f"experiment={self.experiment!r}"
        return f"RunsController({what}, runs={len(self.runs)})"


def metric_title(metric: str) -> str:
    """A short column title: ``final_val_accuracy`` -> ``val_acc`` (the table has many columns)."""
    return metric.replace("final_val_", "val_").replace("accuracy", "acc")


def _unique_labels(runs) -> dict[str, str]:
    from collections import Counter

    names = [r.info.run_name or r.info.run_id[:8] for r in runs]
    dupes = {n for n, count in Counter(names).items() if count > 1}
    return {r.info.run_id: f"{n} ({r.info.run_id[:6]})" if n in dupes else n for r, n in zip(runs, names)}


def param_cell(text: str | None):
    """A numeric param as a number (the table shows 0.0028, not 0.0028100820517225756); others as text."""
    if text is None:
        return None
    try:
        return int(text) if text.lstrip("-").isdigit() else float(text)
    except ValueError:
        return text


def _number(text: str | None) -> int | float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else value
