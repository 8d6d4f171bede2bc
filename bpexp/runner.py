"""One experiment run: config -> data -> model -> fit with callbacks -> MLflow run.

``bpexp.run("experiments/digits.yaml", optimizer__lr=0.01)`` and ``bpexp train``
both come here. The run ends FINISHED, FAILED (the error is recorded on it) or
KILLED (Ctrl-C / SIGTERM), and every metric queued before the end is flushed
first.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bpexp import signals
from bpexp._version import __version__
from bpexp.config import ExperimentConfig, load_experiment
from bpexp.config.experiment import TABLE_SUFFIXES
from bpexp.data import Dataset, Split, load_dataset, split
from bpexp.nn import MLP, SGD, Adam, AdamW, RMSprop, get_schedule
from bpexp.nn.tabular import TabularEncoder
from bpexp.signals import Interrupted
from bpexp.tracking.tags import (
    DATASET_DIGEST_TAG,
    DATASET_TAG,
    EPOCHS_RUN_TAG,
    GIT_DIRTY_TAG,
    SEED_TAG,
    STATUS_TAG,
    STOP_REASON_TAG,
    TASK_TAG,
    VERSION_TAG,
)
from bpexp.train import Callback, EarlyStopping, History, ProgressBar, fit


class RunInterrupted(Interrupted):
    """SIGINT/SIGTERM ended a run (KILLED in the store, metrics flushed first).

    Attributes
    ----------
    run_id, tracking_uri : str
        The run, for reading its end state back.
    end_error : str or None
        Why ending the run did not go cleanly (e.g. metrics the store refused).
    """

    def __init__(self, signum: int, run_id: str, tracking_uri: str, end_error: str | None = None):
        super().__init__(signum)
        self.run_id, self.tracking_uri, self.end_error = run_id, tracking_uri, end_error


@dataclass
class RunResult:
    """What a run produced.

    Attributes
    ----------
    run_id : str
        The MLflow run.
    model : MLP
        The trained model (best weights when early stopping restored them).
    history : History
    test_metrics : dict
        ``{"test_accuracy": ..., ...}`` on the held-out test split (empty if none).
    val_metrics : dict
        ``{"final_val_accuracy": ..., ...}``: the returned model on the validation split.
    model_uri : str or None
        ``models:/...`` URI of the logged pyfunc model.
    """

    run_id: str
    model: MLP
    history: History
    test_metrics: dict[str, float]
    val_metrics: dict[str, float]
    config: ExperimentConfig
    tracking_uri: str
    experiment_id: str
    model_uri: str | None = None
    dataset: Dataset | None = field(default=None, repr=False)

    def summary(self) -> str:
        """One line: epochs, stop reason and the final metrics."""
        shown = {**self.val_metrics, **self.test_metrics}
        metrics = "  ".join(f"{k}={v:.4f}" for k, v in shown.items() if not k.endswith(("mse", "log_loss")))
        stop = f", {self.history.stop_reason}" if self.history.stop_reason else ""
        return f"{len(self.history)} epochs{stop}  {metrics}"


# ------------------------------------------------------------------------------ building blocks
@functools.lru_cache(maxsize=8)
def _load_split_cached(dataset_json: str, seed: int, base_dir: str) -> tuple[Dataset, Split]:
    cfg = json.loads(dataset_json)
    name = cfg["name"]
    if name.lower().endswith((*TABLE_SUFFIXES, ".npz")) and not Path(name).is_absolute():
        name = str(Path(base_dir) / name)
    ds = load_dataset(name, seed=seed, n_samples=cfg["n_samples"], noise=cfg["noise"], target=cfg["target"],
                      task=cfg["task"], numeric=cfg["numeric"], categorical=cfg["categorical"], drop=cfg["drop"],
                      encoding=cfg["encoding"], drop_missing_target=cfg["drop_missing_target"])
    return ds, split(ds, val_size=cfg["val_size"], test_size=cfg["test_size"], seed=seed)


def load_data(config: ExperimentConfig, base_dir: Path) -> tuple[Dataset, Split]:
    """The config's dataset and its seeded split (cached: sweeps reload the same data)."""
    return _load_split_cached(config.dataset.model_dump_json(), config.seed, str(base_dir))


@functools.lru_cache(maxsize=8)
def _encoder_cached(dataset_json: str, seed: int, base_dir: str) -> TabularEncoder | None:
    dataset, parts = _load_split_cached(dataset_json, seed, base_dir)
    if not dataset.is_table:
        return None
    from bpexp.data.tabular import fit_encoder, held_out_gaps

    cfg = json.loads(dataset_json)
    gaps = held_out_gaps(parts, dataset.roles.numeric)
    return fit_encoder(parts.X_train, dataset.roles, standardize=cfg["standardize"],
                       min_frequency=cfg["min_frequency"], max_categories=cfg["max_categories"], allow_missing=gaps)


def table_encoder(config: ExperimentConfig, base_dir: Path) -> TabularEncoder | None:
    """The encoder learned from the training split of a table dataset (None for plain arrays).

    Cached like the data: the trials of a sweep share it unless a swept parameter
    changes the dataset section.
    """
    return _encoder_cached(config.dataset.model_dump_json(), config.seed, str(base_dir))


def build_model(config: ExperimentConfig, dataset: Dataset, encoder: TabularEncoder | None = None) -> MLP:
    """An untrained MLP sized for ``dataset`` (and its table ``encoder``) as the config describes."""
    m = config.model
    output = loss = None
    if m.head != "auto":
        output, loss = m.head.split("+")
    n_out = dataset.n_outputs
    if dataset.task == "classification" and output == "softmax":
        n_out = dataset.classes.size
    task = "classification" if dataset.task == "classification" else "regression"
    n_in = encoder.n_features_out if encoder is not None else dataset.n_features
    return MLP([n_in, *m.hidden, n_out], activation=m.activation, task=task, output=output,
               loss=loss, dropout=m.dropout, standardize=config.dataset.standardize and encoder is None,
               encoder=encoder, seed=config.seed, dtype=m.dtype)


def fit_options(config: ExperimentConfig) -> dict[str, Any]:
    """Keyword arguments for :func:`bpexp.fit` from the optimizer and training sections."""
    o, t = config.optimizer, config.training
    decoupled = o.name == "adamw"
    optimizer = {
        "sgd": lambda: SGD(lr=o.lr, momentum=o.momentum, nesterov=o.nesterov),
        "adam": lambda: Adam(lr=o.lr),
        "adamw": lambda: AdamW(lr=o.lr, weight_decay=o.weight_decay),
        "rmsprop": lambda: RMSprop(lr=o.lr),
    }[o.name]()
    schedule_options = o.schedule.model_dump(exclude={"name"})
    return {
        "optimizer": optimizer,
        "l2": 0.0 if decoupled else o.weight_decay,
        "clip_norm": o.clip_norm,
        "schedule": get_schedule(o.schedule.name, **schedule_options),
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "threads": t.threads,
        "seed": config.seed,
    }


def training_callbacks(config: ExperimentConfig) -> list[Callback]:
    es = config.training.early_stopping
    return [EarlyStopping(**es.model_dump())] if es is not None else []


def git_tags(directory: Path) -> dict[str, str]:
    """Commit and dirty flag of the git checkout holding ``directory`` ({} outside git).

    Remembered for a few seconds (two git calls cost ~8 ms, a sweep trial is a few
    hundred), so the trials of a sweep share them but a notebook sees new commits.
    """
    key = str(directory)
    now = time.monotonic()
    cached = _git_cache.get(key)
    if cached is None or now - cached[0] > GIT_CACHE_SECONDS:
        cached = _git_cache[key] = (now, _ask_git(key))
    return dict(cached[1])


GIT_CACHE_SECONDS = 10.0
_git_cache: dict[str, tuple[float, tuple[tuple[str, str], ...]]] = {}


def _ask_git(directory: str) -> tuple[tuple[str, str], ...]:
    def git(*args):
        return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return ()
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return (("mlflow.source.git.commit", head.stdout.strip()), (GIT_DIRTY_TAG, str(dirty).lower()))


# ------------------------------------------------------------------------------ the run
@dataclass(frozen=True)
class ChildRun:
    """What makes a run one part of a larger job, such as a sweep's trial.

    A child run records no inputs (dataset, ``config.yaml``): its parent holds them.

    Attributes
    ----------
    parent_run_id : str or None
        The run is a child of this one (``mlflow.parentRunId``); None for a
        standalone run (what ``run`` does without a ``child``).
    sink : MetricWriter or InlineWriter, optional
        The job's metric sink, shared by its runs (:func:`bpexp.tracking.open_sink`).
        The run hands its metrics to it and does not wait for them to be written:
        the job flushes and closes it. None: the run opens and closes its own.
    final_tags : callable, optional
        ``final_tags(history) -> {tag: value}``, called when training has ended
        normally; the tags are written with the final metrics (a sweep records
        the trial's state this way).
    on_run_created : callable, optional
        ``on_run_created(run_id)``, called as soon as the MLflow run exists (a sweep
        records the run id on its trial then, so it is never looked up by tags).
    """

    parent_run_id: str | None
    sink: Any = None
    final_tags: Callable[[History], dict[str, str]] | None = None
    on_run_created: Callable[[str], None] | None = None


def run(
    config: str | Path | dict | ExperimentConfig,
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    callbacks: list[Callback] | tuple = (),
    progress: bool = True,
    live: Callable[..., Callback] | None = None,
    tags: dict[str, str] | None = None,
    log_model: str | None = "pyfunc",
    log_plots: bool = True,
    overrides: dict[str, Any] | None = None,
    child: ChildRun | None = None,
    **kwargs: Any,
) -> RunResult:
    """Run one tracked experiment and return its :class:`RunResult`.

    Parameters
    ----------
    config : path, dict or ExperimentConfig
        e.g. ``"experiments/digits.yaml"``.
    tracking_uri : str, optional
        Any MLflow store; default ``$MLFLOW_TRACKING_URI`` or the project's
        ``sqlite:///mlruns/mlflow.db``.
    experiment : str, optional
        Overrides ``tracking.experiment``.
    callbacks : list of Callback
        Extra callbacks (e.g. a pruning callback), after the MLflow logger.
    progress : bool
        Show a tqdm progress bar.
    live : callable, optional
        ``live(title=run_name) -> Callback``: a live view with its own progress bar
        (``bpexp.run(..., live=True)`` passes :class:`bpexp.widgets.LiveCurves`).
    tags : dict, optional
        Extra run tags.
    log_model : {"pyfunc", "folder", None}
        Log an MLflow pyfunc model, just the native model folder (cheap; sweeps),
        or nothing.
    log_plots : bool
        Log learning-curve, confusion-matrix and decision-boundary PNGs.
    overrides : dict, optional
        ``{"optimizer.lr": 0.01}``; keyword arguments with ``__`` for dots do the
        same: ``optimizer__lr=0.01``.
    child : ChildRun, optional
        Make the run part of a larger job (a sweep's trial): its parent run, the
        job's metric sink and hooks.

    Raises
    ------
    ConfigError
        Before any run is created.
    TrackingUnavailableError
        The store cannot be reached (the message names its URI).
    """
    from bpexp.tracking import connect, metric_sink
    from bpexp.tracking.store import project_dir, resolve_tracking_uri

    with signals.scope(redeliver=True):  # a notebook's Ctrl-C is recorded, acted on between epochs
        overrides = {**(overrides or {}), **{k.replace("__", "."): v for k, v in kwargs.items()}}
        cfg, base_dir = load_experiment(config, overrides)
        config_path = config if isinstance(config, (str, Path)) else None
        uri = resolve_tracking_uri(tracking_uri, project_dir(config_path))
        client = connect(uri)
        child = child or ChildRun(parent_run_id=None)  # standalone: its own sink, its inputs recorded
        # Opened first: a helper process imports MLflow on the other core while the data loads.
        with metric_sink(uri) if child.sink is None else contextlib.nullcontext(child.sink) as sink:
            setup = _prepare(cfg, base_dir, config_path, client, uri, experiment, tags, progress)
            return _run(setup, cfg, uri, client, sink, child, callbacks, progress, live, log_model, log_plots)


@dataclass
class _Setup:
    """What a run needs before it is created: data, encoder, model, experiment, tags."""

    dataset: Dataset
    parts: Split
    encoder: TabularEncoder | None
    model: MLP
    experiment_id: str
    tags: dict[str, str]


def _prepare(cfg, base_dir, config_path, client, uri, experiment, tags, progress) -> _Setup:
    from bpexp.tracking import get_or_create_experiment
    from bpexp.tracking.failures import store_errors

    dataset, parts = load_data(cfg, base_dir)
    encoder = table_encoder(cfg, base_dir)
    if encoder is not None and progress:
        print(f"{dataset.name}: {dataset.roles.describe()} -> {encoder.n_features_out} inputs", file=sys.stderr)
    model = build_model(cfg, dataset, encoder)
    with store_errors(uri, "creating the experiment"):
        experiment_id = get_or_create_experiment(client, experiment or cfg.tracking.experiment or "bpexp", uri)
    run_tags = {
        VERSION_TAG: __version__,
        DATASET_TAG: dataset.name,
        DATASET_DIGEST_TAG: dataset.digest(),
        SEED_TAG: str(cfg.seed),
        TASK_TAG: dataset.task,
        **git_tags(base_dir),
        **cfg.tracking.tags,
        **(tags or {}),
    }
    if config_path is not None:
        run_tags["mlflow.source.name"] = str(Path(config_path))
    return _Setup(dataset, parts, encoder, model, experiment_id, run_tags)


def _run(setup: _Setup, cfg, uri, client, sink, child: ChildRun, callbacks, progress, live, log_model,
         log_plots) -> RunResult:
    from bpexp.tracking import TrackedRun
    from bpexp.tracking.failures import StoreWriteError, as_store_error, store_errors

    signals.check()  # a signal during setup: stop before a run exists
    with store_errors(uri, "creating the run"):
        tracked = TrackedRun(client, uri, setup.experiment_id, sink, run_name=cfg.tracking.run_name, tags=setup.tags,
                             parent_run_id=child.parent_run_id, wait_for_metrics=child.sink is None)
    try:
        if child.on_run_created is not None:
            child.on_run_created(tracked.run_id)
        signals.check()
        _log_inputs(tracked, cfg, setup, with_data=child.parent_run_id is None)
        all_callbacks = [tracked.callback(), *training_callbacks(cfg)]
        if progress and not live:  # the live view has its own progress bar
            all_callbacks.append(ProgressBar(desc=tracked.run_name))
        if live:
            all_callbacks.append(live(title=tracked.run_name))
        all_callbacks.extend([*callbacks, signals.InterruptCheck()])  # last: every callback saw the epoch
        parts = setup.parts
        history = fit(setup.model, parts.X_train, parts.y_train, validation_data=(parts.X_val, parts.y_val),
                      callbacks=all_callbacks, **fit_options(cfg))
        result = _finish(tracked, cfg, setup, history, log_model, log_plots, child.final_tags)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        raise RunInterrupted(signum, tracked.run_id, uri, _end(tracked, "KILLED", signals.describe(signum))) \
            from None
    except BaseException as exc:
        store_error = as_store_error(exc, uri)
        if store_error is not None:  # one line, and the run ends FAILED with it if the store still takes writes
            raise StoreWriteError(_failed_on_store(tracked, client, str(store_error))) from None
        problem = _end(tracked, "FAILED", f"{type(exc).__name__}: {exc}")
        if problem:
            print(f"bpexp: {problem}", file=sys.stderr)
        raise
    with store_errors(uri, "ending the run"):
        tracked.end("FINISHED")
    return result


def _log_inputs(tracked, cfg, setup: _Setup, with_data: bool) -> None:
    """Params (and the table's roles); with ``with_data``, the dataset input, config.yaml and features.json."""
    tracked.log_params({**cfg.flat(), **_feature_params(setup.dataset, setup.encoder)})
    if not with_data:
        return
    tracked.log_dataset(setup.dataset)
    tracked.log_text(_yaml(cfg), "config.yaml")
    if setup.encoder is not None:
        tracked.log_text(json.dumps(setup.encoder.schema(), indent=1), FEATURES_ARTIFACT)


def _failed_on_store(tracked, client, line: str) -> str:
    """End the run FAILED after a store failure; the line says what the store holds now (read back)."""
    tracked.abandon_metrics()  # the queued metrics cannot be written: do not retry each one at exit
    problem = _end(tracked, "FAILED", line, flush=False)  # two writes
    status = None
    if problem is None:
        try:
            status = client.get_run(tracked.run_id).info.status
        except Exception:  # noqa: BLE001 - the store cannot even be read
            pass
    if problem is None and status == "FAILED":
        return f"{line}; run {tracked.run_id} ended FAILED"
    return (f"{line}; the store could not record the end state of run {tracked.run_id}"
            f"{f' (it holds {status})' if status else ''}: once the store works again, the next bpexp command "
            f"on it marks the run KILLED (its process is gone)")


def _end(tracked, status: str, why: str, flush: bool = True) -> str | None:
    """End the run ``status`` after an error; returns what went wrong ending it (never raises over the error)."""
    try:
        tracked.end(status, why, flush=flush)
    except Exception as exc:  # noqa: BLE001 - the error that ended the run is the one to raise
        return f"ending run {tracked.run_id} {status}: {type(exc).__name__}: {str(exc)[:300]}"
    return None


def _finish(tracked, cfg, setup: _Setup, history, log_model, log_plots, final_tags) -> RunResult:
    """After training: summary metrics, plots, the model."""
    from bpexp.metrics import evaluate

    dataset, parts, model = setup.dataset, setup.parts, setup.model

    val = {f"final_val_{k}": v for k, v in evaluate(model, parts.X_val, parts.y_val).items()}
    test = {}
    if len(parts.y_test):
        test = {f"test_{k}": v for k, v in evaluate(model, parts.X_test, parts.y_test).items()}
    summary = {**val, **test, **_best_values(history)}
    if history.best_epoch is not None:
        summary["best_epoch"] = history.best_epoch
    stop_tags = {STATUS_TAG: history.status, EPOCHS_RUN_TAG: len(history)}
    if history.stop_reason:
        stop_tags[STOP_REASON_TAG] = history.stop_reason
    if final_tags is not None:
        stop_tags.update(final_tags(history))
    tracked.log_summary(summary, stop_tags, step=len(history))
    signals.check()  # Ctrl-C after training: skip the plots and the model, end the run KILLED
    model_uri = None
    if log_model is not None:
        from bpexp.tracking.model import input_example

        example_X = parts.X_test if len(parts.y_test) else parts.X_val
        example = input_example(model, example_X, dataset.feature_names)
        if log_model == "pyfunc":  # logged by the sink's helper while the plots are drawn here
            model_job = tracked.start_model(model, example)
        else:
            tracked.log_model_folder(model, example)
    if log_plots:
        _log_plots(tracked, dataset, parts, model, history)
    if log_model == "pyfunc":
        model_uri = tracked.finish_model(model_job)
    return RunResult(tracked.run_id, model, history, test, val, cfg, tracked.tracking_uri,
                     tracked.experiment_id, model_uri, dataset)


def _best_values(history: History) -> dict[str, float]:
    """Best value over the epochs of val_loss and the main validation metric (``best_val_*``)."""
    from bpexp.metrics import HIGHER_IS_BETTER

    out = {}
    for name in ("loss", "accuracy", "r2"):
        values = [v for v in history[f"val_{name}"] if np.isfinite(v)]
        if values:
            out[f"best_val_{name}"] = max(values) if HIGHER_IS_BETTER[name] else min(values)
    return out


def _log_plots(tracked, dataset, parts, model, history) -> None:
    from bpexp import plots
    from bpexp.metrics import confusion_matrix

    tracked.log_figure(plots.learning_curves(history.history, title=tracked.run_name), "plots/learning_curve.png")
    if dataset.task != "classification":
        return
    X_eval, y_eval, which = (parts.X_test, parts.y_test, "test") if len(parts.y_test) else \
        (parts.X_val, parts.y_val, "validation")
    classes = model.classes_
    cm = confusion_matrix(np.searchsorted(classes, y_eval), np.searchsorted(classes, model.predict(X_eval)),
                          classes.size)
    tracked.log_figure(plots.confusion_matrix_figure(cm, classes.tolist(), f"confusion matrix ({which})"),
                       "plots/confusion_matrix.png")
    if dataset.n_features == 2 and not dataset.is_table:
        tracked.log_figure(plots.decision_boundary(model, dataset.X, dataset.y, f"{dataset.name}: decision boundary"),
                           "plots/decision_boundary.png")


FEATURES_ARTIFACT = "features.json"  # per input column: role, categories, missing fraction in training


def _feature_params(dataset: Dataset, encoder: TabularEncoder | None) -> dict[str, Any]:
    """The roles a table's columns were given (inferred or named), as run params."""
    if encoder is None:
        return {}
    roles = dataset.roles
    return {"features.numeric": roles.numeric, "features.categorical": roles.categorical,
            "features.dropped": roles.drop, "features.n_inputs": encoder.n_features_out}


def _yaml(cfg: ExperimentConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
