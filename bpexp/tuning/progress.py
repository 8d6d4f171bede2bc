"""The sweep's progress line: trials done (of N), complete/pruned/failed, best so far."""

from __future__ import annotations

import time

from optuna.trial import TrialState


class Progress:
    """A tqdm bar over this invocation's trials, its postfix read from the study's storage.

    Parameters
    ----------
    study : optuna.Study
    total : int or None
        Trials this invocation adds (None: until the timeout).
    first_new : int
        Trials numbered from here on are this invocation's (and concurrent machines').
    metric : str
    enabled : bool
    """

    def __init__(self, study, total: int | None, first_new: int, metric: str, enabled: bool = True,
                 desc: str = "sweep", min_interval: float = 1.0):
        self.study, self.first_new, self.metric, self.enabled = study, first_new, metric, enabled
        self.min_interval, self._last = min_interval, 0.0
        self._done = 0
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="trial", dynamic_ncols=True)

    def update(self, done: int, force: bool = False) -> None:
        """``done`` trials of this invocation have finished; refresh at most every ``min_interval`` s."""
        if self._bar is None:
            return
        now = time.monotonic()
        if done == self._done and not force and now - self._last < self.min_interval:
            return
        self._last = now
        self._bar.set_postfix_str(self.status(), refresh=False)
        self._bar.update(done - self._done)
        self._done = done

    def status(self) -> str:
        trials = [t for t in self.study.get_trials(deepcopy=False) if t.number >= self.first_new]
        count = {s: sum(t.state == s for t in trials) for s in TrialState}
        text = (f"complete {count[TrialState.COMPLETE]} · pruned {count[TrialState.PRUNED]} · "
                f"failed {count[TrialState.FAIL]} · running {count[TrialState.RUNNING]}")
        try:
            best = self.study.best_trial
        except ValueError:
            return text
        return f"{text} · best {self.metric}={best.value:.4f} (#{best.number})"

    def close(self) -> None:
        if self._bar is not None:
            self.update(self._done, force=True)
            self._bar.close()
            self._bar = None
