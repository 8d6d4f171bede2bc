"""What a sweep returns to notebooks and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from bpexp.errors import BpexpError
from bpexp.redaction import redact
from bpexp.tracking.tags import ERROR_TAG
from bpexp.tuning.objective import RUN_ID_ATTR


class NoTrialCompleted(BpexpError):
    """A sweep call whose trials all failed (none completed or was pruned); ``.result`` has the rest."""

    def __init__(self, message: str, result: SweepResult):
        super().__init__(message)
        self.result = result


def no_completed_trial(result: SweepResult, client=None) -> str | None:
    """Why none of this call's trials completed (one line, with the first failed trial's error), or None."""
    added = [t for t in result.study.get_trials(deepcopy=False) if t.number >= result.first_new_trial]
    # Pruned trials trained and were judged, and a call the timeout or the count left empty did
    # nothing wrong: only a call whose every trial failed (or was left unfinished) is an error.
    if not added or any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in added):
        return None
    counts = ", ".join(f"{sum(t.state == s for t in added)} {s.name}" for s in TrialState
                       if any(t.state == s for t in added))
    line = f"no trial of study {result.study_name!r} completed ({counts} of {len(added)})"
    failed = [t for t in added if t.state == TrialState.FAIL and RUN_ID_ATTR in t.user_attrs]
    if failed and client is not None:
        try:
            error = client.get_run(failed[0].user_attrs[RUN_ID_ATTR]).data.tags.get(ERROR_TAG, "")
        except Exception:  # noqa: BLE001 - the counts say enough
            error = ""
        if error:
            line += f"; trial {failed[0].number}: {error.splitlines()[0][:200]}"
    return line


@dataclass
class SweepResult:
    """The outcome of one :func:`bpexp.sweep` call (the study itself holds every trial so far).

    Attributes
    ----------
    study : optuna.Study
    study_name : str
    storage_url : str
        The Optuna storage (journal file path or database URL, password masked).
    parent_run_id : str
        The study's MLflow parent run; every trial is a child run of it.
    tracking_uri : str
    experiment_id : str
    metric : str
        The objective, e.g. ``val_accuracy``; trial values are ``final_<metric>`` of their runs.
    n_added : int
        Trials this call started (``--n-trials`` counts these).
    interrupted : bool
    model_uri : str or None
        The best trial's pyfunc model (``runs:/.../model`` or ``models:/...``).
    plots : list of str
        Artifacts logged on the parent run; ``skipped_plots`` says why others are missing.
    """

    study: optuna.Study
    study_name: str
    storage_url: str
    parent_run_id: str
    tracking_uri: str
    experiment_id: str
    metric: str
    n_added: int = 0
    first_new_trial: int = 0
    interrupted: bool = False
    model_uri: str | None = None
    plots: list[str] = field(default_factory=list)
    skipped_plots: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Why no trial of this call completed (the sweep then raises :class:`NoTrialCompleted`).
    failure: str | None = None

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial | None:
        """The best COMPLETE trial of the whole study (None before the first completes)."""
        try:
            return self.study.best_trial
        except ValueError:
            return None

    @property
    def best_value(self) -> float | None:
        best = self.best_trial
        return None if best is None else best.value

    @property
    def best_params(self) -> dict:
        best = self.best_trial
        return {} if best is None else dict(best.params)

    @property
    def best_run_id(self) -> str | None:
        best = self.best_trial
        return None if best is None else best.user_attrs.get(RUN_ID_ATTR)

    def counts(self, new_only: bool = False) -> dict[str, int]:
        """Trials per state (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, ``WAITING``)."""
        trials = self.study.get_trials(deepcopy=False)
        if new_only:
            trials = [t for t in trials if t.number >= self.first_new_trial]
        return {s.name: n for s in TrialState if (n := sum(t.state == s for t in trials))}

    def summary(self, top: int = 10) -> str:
        """The top trials as a table, the counts and where to look next."""
        from bpexp.tuning.report import top_trials_table

        lines = [top_trials_table(self.study, top), ""]
        counts = self.counts()
        new = self.counts(new_only=True)
        total = sum(counts.values())
        lines.append(f"study {self.study_name!r}: {total} trials ({_counts(counts)}); this call added "
                     f"{self.n_added} ({_counts(new)})" + ("; interrupted" if self.interrupted else ""))
        best = self.best_trial
        if best is not None:
            lines.append(f"best: trial {best.number}, {self.metric} = {best.value:.4f}, run {self.best_run_id}")
        for name, why in self.skipped_plots.items():
            lines.append(f"plot {name} skipped: {why}")
        lines.extend(self.notes)
        lines.extend(where_to_look(self))
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython shows the summary, not a dataclass dump
        printer.text(self.summary())

    def __repr__(self) -> str:
        best = self.best_value
        best_text = "none" if best is None else f"{best:.4f}"
        return (f"SweepResult(study={self.study_name!r}, trials={len(self.study.trials)}, added={self.n_added}, "
                f"best {self.metric}={best_text}, parent_run_id={self.parent_run_id!r})")


def _counts(counts: dict[str, int]) -> str:
    names = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
    return ", ".join(f"{n} {names[s]}" for s, n in counts.items()) or "none"


def where_to_look(result: SweepResult) -> list[str]:
    from bpexp.shell import bpexp_command, store_args
    from bpexp.tracking.store import ui_link

    uri = redact(result.tracking_uri)
    store = store_args(result.tracking_uri)
    if uri.startswith(("http://", "https://")):
        see = f"see it: {ui_link(uri, result.experiment_id, result.parent_run_id)}"
    else:
        see = (f"see it: {bpexp_command('ui', *store)}   (the parent run is named after the study; its trials are "
               f"nested under it)")
    best = bpexp_command("export", "--best", f"final_{result.metric}", "--study", result.study_name, "--out",
                         "best-model", *store)
    return [
        see,
        f"export the best: {best}",
        "add trials: run the same command again (the study resumes; trial numbers continue)",
    ]


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the sweep; ``.result`` holds what was done (the study is resumable)."""

    def __init__(self, result: SweepResult):
        super().__init__("sweep interrupted")
        self.result = result
