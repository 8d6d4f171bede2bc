"""Running a sweep: validate, open the storage, create the study and its parent run once, start workers, finish.

The process that calls :func:`sweep` is the coordinator and also runs trials;
with ``workers=K`` it spawns K-1 more worker processes (:mod:`bpexp.tuning.worker`)
and watches them: it draws the progress line from the storage, fails the trials
of a worker that died, and forwards Ctrl-C. When
the workers are done it reconciles MLflow with Optuna and summarizes the study
on its parent run (:mod:`bpexp.tuning.report`).

Study user attributes set here (others rely on them): ``mlflow_parent_run_id``,
``mlflow_tracking_uri``, ``mlflow_experiment_id``, ``bpexp_metric``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna

from bpexp import signals
from bpexp.config.sweep import Sweep, check_objective_metric, load_sweep
from bpexp.errors import InvalidInputError
from bpexp.redaction import redact
from bpexp.tracking.tags import ERROR_TAG, ROLE_TAG, STORAGE_TAG, STUDY_TAG, VERSION_TAG
from bpexp.train.loop import limit_blas_threads
from bpexp.tuning.objective import RUN_ID_ATTR, WORKER_ATTR, TrialSetup, trial_tags
from bpexp.tuning.progress import Progress
from bpexp.tuning.result import NoTrialCompleted, SweepInterrupted, SweepResult, no_completed_trial
from bpexp.tuning.space import make_sampler, worker_seed
from bpexp.tuning.storage import RetryDeadWorkerTrials, default_storage, describe, open_storage
from bpexp.tuning.worker import (
    EXIT_INTERRUPTED,
    Slots,
    Standby,
    WorkerSpec,
    quiet_optuna,
    run_worker,
)

PARENT_ATTR = "mlflow_parent_run_id"
#: How long a process that did not create the study waits for the creator's parent run.
PARENT_WAIT_SECONDS = 30.0


def sweep(
    config: str | Path | dict | Sweep,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    workers: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    tracking_uri: str | None = None,
    progress: bool = True,
    plots: bool = True,
    enqueue: list[dict[str, Any]] | None = None,
    overrides: dict[str, Any] | None = None,
) -> SweepResult:
    """Run (or resume) an Optuna sweep whose trials are tracked MLflow runs.

    Parameters
    ----------
    config : path, dict or Sweep
        A sweep file such as ``"experiments/digits-sweep.yaml"``.
    n_trials : int, optional
        Trials this call adds, in total over its workers (default: ``study.n_trials``;
        0 means no limit, stop by ``timeout``).
    timeout : float, optional
        Seconds after which no new trial starts.
    workers : int, optional
        Worker processes (default ``study.workers``; 1 runs trials in this process).
    storage : str, optional
        Optuna storage: a journal file path or a database URL such as
        ``postgresql://user@host/db`` (default: ``<project>/mlruns/optuna-journal.log``).
    study_name : str, optional
        Default: ``study.name``, else the file name. An existing study is resumed.
    tracking_uri : str, optional
        MLflow store (default ``$MLFLOW_TRACKING_URI`` or the project's sqlite store).
    progress : bool
        Show a progress line (trials done/pruned/failed, best so far).
    plots : bool
        Log the study plots on the parent run at the end.
    enqueue : list of dict, optional
        Params to try first, e.g. ``[{"optimizer.lr": 0.01, "n_layers": 1, "n_units_l0": 64}]``.
    overrides : dict, optional
        Overrides of the sweep file itself, e.g. ``{"pruner.name": "none"}``.

    Returns
    -------
    SweepResult

    Raises
    ------
    ConfigError
        Before anything is created.
    StorageUnavailableError, TrackingUnavailableError
        The storage or the tracking store cannot be used (the message names it).
    SweepInterrupted
        Ctrl-C: running trials ended FAIL, the parent run KILLED; ``.result`` has the rest.
    """
    sw = load_sweep(config, overrides)
    if study_name:
        sw = replace(sw, study_name=study_name)
    n_trials, timeout, workers = _call_limits(sw.config.study, n_trials, timeout, workers)
    make_sampler(sw.config.sampler, 0)  # e.g. gp without PyTorch: fail before anything is created
    slots = Slots(n_trials)
    standby = Standby(workers - 1, slots) if workers > 1 else None  # they import while we set up
    # Signals are only recorded from here on (bpexp.signals): setup checks them between its steps,
    # and no journal append or store write is cut in half.
    with signals.scope() as scope:
        try:
            return _sweep(sw, n_trials, timeout, workers, storage, tracking_uri, progress, plots, enqueue, slots,
                          standby, scope)
        finally:
            if standby is not None:
                standby.cancel()


def _call_limits(study_cfg, n_trials, timeout, workers) -> tuple[int | None, float | None, int]:
    """This call's trial count (None: no limit), timeout and worker count; the study file fills gaps."""
    n_trials = study_cfg.n_trials if n_trials is None else n_trials
    n_trials = None if n_trials == 0 else n_trials
    timeout = timeout if timeout is not None else study_cfg.timeout
    workers = workers or study_cfg.workers
    if n_trials is None and timeout is None:
        raise InvalidInputError("a sweep without a trial count needs a timeout (--n-trials N or --timeout S)")
    if workers < 1:
        raise InvalidInputError(f"workers must be >= 1, got {workers}")
    return n_trials, timeout, workers


def _sweep(sw, n_trials, timeout, workers, storage, tracking_uri, progress, plots, enqueue, slots,
           standby, scope) -> SweepResult:
    from bpexp.runner import load_data
    from bpexp.tracking import connect, get_or_create_experiment, metric_sink
    from bpexp.tracking.queries import higher_is_better
    from bpexp.tracking.store import project_dir, resolve_tracking_uri

    study_cfg = sw.config.study
    project = project_dir(sw.source)
    dataset, _ = load_data(sw.base, Path.cwd())
    metric = check_objective_metric(sw, dataset.task, dataset.name)
    direction = sw.config.objective.direction
    if direction == "auto":
        direction = "maximize" if higher_is_better(metric) else "minimize"

    storage_url = _storage_location(storage, study_cfg.storage, project)
    scope.check()  # Ctrl-C while the data loaded: nothing was created yet
    quiet_optuna()
    retry = RetryDeadWorkerTrials(study_cfg.retry_failed, slots) if study_cfg.retry_failed else None
    opened = open_storage(storage_url, heartbeat_interval=study_cfg.heartbeat_interval,
                          grace_period=study_cfg.grace_period, stale_trial_callback=retry)
    uri = resolve_tracking_uri(tracking_uri, project)
    client = connect(uri)
    # One worker (this process): its metric sink's helper imports MLflow while the study is set up.
    with metric_sink(uri) if workers == 1 else contextlib.nullcontext() as sink:
        experiment_id = get_or_create_experiment(client, sw.experiment, uri)
        study, created = _create_or_load_study(opened, sw.study_name, direction, storage_url)
        scope.check()
        # From here on the parent run always ends (KILLED on a signal).
        parent_run_id = _parent_run(study, created, client, experiment_id, sw, metric, direction, storage_url, uri,
                                    dataset)
        for params in enqueue or ():
            study.enqueue_trial(params, skip_if_exists=True)
        setup = TrialSetup(sw, metric, direction, uri, sw.experiment, experiment_id, parent_run_id, storage_url,
                           sw.study_name)
        first_new = len(study.get_trials(deepcopy=False))
        result = SweepResult(study, sw.study_name, describe(storage_url), parent_run_id, uri, experiment_id, metric,
                             first_new_trial=first_new)
        _run_trials(result, setup, study, client, workers, n_trials, timeout, progress, slots, standby, scope, sink)
        # Finishing is short and leaves the store consistent: a signal now only skips the optional parts.
        _finish(result, study, client, setup, plots=plots, scope=scope, sink=sink)
    if result.interrupted:
        raise SweepInterrupted(result)
    if result.failure is not None:
        raise NoTrialCompleted(result.failure, result)
    return result


def _run_trials(result, setup, study, client, workers, n_trials, timeout, progress, slots, standby, scope,
                sink) -> None:
    """Run the trials here (one worker, on ``sink``) or here and in the standby processes; records interruption
    on ``result``."""
    from bpexp.tracking.liveness import Heartbeat

    sw = setup.sweep
    deadline = time.time() + timeout if timeout else None
    # As many workers as cores: no core is left for metric-writer helpers (see bpexp.tracking.writer).
    inline = workers > 1 and workers >= len(os.sched_getaffinity(0))
    specs = [WorkerSpec(setup, i, worker_seed(sw.config.sampler.seed, result.first_new_trial, i), deadline,
                        inline_metrics=inline) for i in range(workers)]
    bar = Progress(study, n_trials, result.first_new_trial, setup.metric, enabled=progress, desc=sw.study_name)
    parent_alive = Heartbeat(client, result.parent_run_id)  # the parent run's heartbeat (bpexp.tracking.liveness)

    def tick() -> None:
        bar.update(slots.finished)
        parent_alive.beat()

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    try:
        if workers == 1:
            result.interrupted = not run_worker(specs[0], slots, on_trial_end=tick, sink=sink)
        else:
            result.interrupted = _run_processes(specs, standby, slots, tick, study, client, setup, result.notes,
                                                scope)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        bar.close()
    result.n_added = slots.started


def _storage_location(given: str | None, configured: str | None, project: Path) -> str:
    """The storage string: ``--storage``, else the config's (journal paths relative to the project), else default."""
    if given:
        return given
    if configured:
        if "://" in configured or Path(configured).is_absolute():
            return configured
        return str((project / configured).resolve())
    (project / "mlruns").mkdir(parents=True, exist_ok=True)
    return default_storage(project)


def _create_or_load_study(storage, name: str, direction: str, storage_url: str) -> tuple[optuna.Study, bool]:
    """Create the study (True) or load the existing one (False); creation is atomic in every Optuna storage."""
    from bpexp.tuning.storage import StorageUnavailableError

    try:
        return optuna.create_study(storage=storage, study_name=name, direction=direction), True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
    except Exception as exc:  # noqa: BLE001 - a database that connects but cannot be written
        raise StorageUnavailableError(f"cannot create the study {name!r} in {describe(storage_url)}: "
                                      f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    if study.direction.name.lower() != direction:
        existing = study.direction.name.lower()
        raise InvalidInputError(f"study {name!r} in {describe(storage_url)} was created to {existing} but the "
                                f"sweep config asks to {direction}; use another --study-name")
    return study, False


def _parent_run(study, created, client, experiment_id, sw: Sweep, metric, direction, storage_url, uri,
                dataset) -> str:
    """The study's MLflow parent run: created once, reused on every resume and by every machine."""
    import yaml
    from mlflow.entities import RunTag
    from mlflow.exceptions import MlflowException

    from bpexp._version import __version__
    from bpexp.tracking.liveness import identity_tags
    from bpexp.tracking.run import log_dataset_input

    storage = study._storage
    run_id = study.user_attrs.get(PARENT_ATTR)
    deadline = time.monotonic() + PARENT_WAIT_SECONDS
    # Another process created the study a moment ago and is creating the parent run: wait for it.
    while run_id is None and not created and time.monotonic() < deadline:
        time.sleep(0.25)
        run_id = storage.get_study_user_attrs(study._study_id).get(PARENT_ATTR)
    if run_id is not None:
        try:
            run = client.get_run(run_id)
        except MlflowException:
            run = None  # the study was tracked in another MLflow store: start a parent run here
        if run is not None and run.info.lifecycle_stage == "active":
            if run.info.status != "RUNNING":
                client.update_run(run_id, status="RUNNING")
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in identity_tags().items()])  # this process now
            return run_id
    tags = {STUDY_TAG: sw.study_name, ROLE_TAG: "sweep", VERSION_TAG: __version__,
            STORAGE_TAG: describe(storage_url), **identity_tags()}
    if sw.source is not None:
        tags["mlflow.source.name"] = str(sw.source)
    run = client.create_run(experiment_id, run_name=sw.study_name, tags=tags)
    run_id = run.info.run_id
    _log_sweep_params(client, run_id, sw, metric, direction)
    # Trials share the data and the base config: record them once, here, not on every trial.
    log_dataset_input(client, run_id, dataset)
    client.log_text(run_id, yaml.safe_dump(sw.base.model_dump(mode="json"), sort_keys=False), "base_config.yaml")
    study.set_user_attr(PARENT_ATTR, run_id)
    study.set_user_attr("mlflow_tracking_uri", redact(uri))  # for people and dashboards: no password
    study.set_user_attr("mlflow_experiment_id", experiment_id)
    study.set_user_attr("bpexp_metric", metric)
    return run_id


def _log_sweep_params(client, run_id: str, sw: Sweep, metric: str, direction: str) -> None:
    import json

    from mlflow.entities import Param

    cfg = sw.config
    params = {"objective.metric": metric, "objective.direction": direction, "sampler": cfg.sampler.name,
              "sampler.seed": cfg.sampler.seed, "pruner": cfg.pruner.name, "max_epochs": sw.max_epochs,
              **{f"space.{k}": json.dumps(v.model_dump(exclude={"type"}))[:6000] for k, v in sw.space.items()},
              **{f"fixed.{k}": json.dumps(v)[:6000] for k, v in cfg.fixed.items()}}
    items = [Param(k, str(v)) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


# ------------------------------------------------------------------------------ worker processes
def _run_processes(specs, standby, slots, tick, study, client, setup, notes, scope) -> bool:
    """Run ``specs[0]`` here and one spawned process per other spec; True if interrupted.

    The coordinator is a worker too (it would otherwise sit idle on a core it
    shares with the workers, and a spawned worker costs seconds of imports): K
    workers are this process and K-1 spawned ones. Between its own trials, and
    after them, it refreshes the progress line and fails the trials of workers
    that died.
    """
    from bpexp.tuning import report

    procs = standby.procs
    host = os.uname().nodename
    reaped: set[int] = set()

    def watch() -> None:
        tick()
        _reap(procs, reaped, host, study, client, setup, notes)

    interrupted = False
    blas = limit_blas_threads(1)  # K processes on K cores: one BLAS thread each (see bpexp.tuning.worker)
    try:
        standby.launch([replace(spec, parent_pid=os.getpid()) for spec in specs[1:]])
        interrupted = not run_worker(specs[0], slots, on_trial_end=watch)
        if not interrupted:
            report.prepare_plots()  # the other workers are on their last trials
        while not interrupted and not all(p.exitcode is not None for p in procs):
            for p in procs:
                p.join(timeout=0.5 / len(procs))
            watch()
            interrupted = scope.signalled is not None
        _reap(procs, reaped, host, study, client, setup, notes)  # one may have exited after the last watch
        if not interrupted and slots.left > 0 and not slots.stopped:
            # A worker that died after every other worker stopped asking for trials gave its slot back
            # (study.retry_failed): nobody is left to claim it, so this process runs the retry now.
            interrupted = not run_worker(specs[0], slots, on_trial_end=tick)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        _stop_workers(procs, slots)
        raise
    finally:
        if blas is not None:
            blas.restore_original_limits()
    if interrupted:
        _stop_workers(procs, slots)
    _join_or_kill(procs)
    _reap(procs, reaped, host, study, client, setup, notes)
    return interrupted or slots.stopped or any(p.exitcode == EXIT_INTERRUPTED for p in procs)


def _stop_workers(procs, slots: Slots) -> None:
    """No new trials; running ones are interrupted (their runs end, the trials are recorded FAIL)."""
    slots.stop()
    for p in procs:
        if p.is_alive():
            os.kill(p.pid, signal.SIGINT)
    _join_or_kill(procs)


def _join_or_kill(procs, grace: float = 60.0) -> None:
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: the runner ends the run KILLED
            p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join()


def _reap(procs, reaped: set[int], host: str, study, client, setup, notes: list[str]) -> None:
    """Fail the RUNNING trials of workers that exited abnormally (their heartbeat would, later)."""
    for p in procs:
        if p.exitcode is None or p.pid in reaped:
            continue
        reaped.add(p.pid)
        if p.exitcode in (0, EXIT_INTERRUPTED):
            continue
        why = f"signal {signal.Signals(-p.exitcode).name}" if p.exitcode < 0 else f"exit code {p.exitcode}"
        failed = fail_worker_trials(study, f"{host}:{p.pid}", client, setup, f"its worker died ({why})")
        notes.append(f"worker {p.name} (pid {p.pid}) died ({why}); trials marked FAIL: {failed or 'none'}")


def fail_worker_trials(study, worker: str, client, setup, reason: str) -> list[int]:
    """Mark FAIL the RUNNING trials of ``worker`` (``host:pid``), linking and ending their MLflow runs."""
    from mlflow.entities import RunTag
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get(WORKER_ATTR) != worker:
            continue
        run_id = trial.user_attrs.get(RUN_ID_ATTR)  # recorded when the run was created
        run = client.get_run(run_id) if run_id else None  # None: the worker died before creating it
        try:
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            retry = getattr(storage, "get_heartbeat_stale_trial_callback", lambda: None)()
            if retry is not None:  # study.retry_failed: as for a trial failed by the heartbeat check
                retry(study, storage.get_trial(trial._trial_id))
        except UpdateFinishedTrialError:
            pass  # a heartbeat check failed it first (and called the retry callback)
        failed.append(trial.number)
        if run is not None and run.info.status == "RUNNING":
            tags = {**trial_tags(setup.study_name, trial.number, "FAIL"), ERROR_TAG: reason}
            client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            client.set_terminated(run.info.run_id, status="FAILED")
    return failed


# ------------------------------------------------------------------------------ the end
def _finish(result: SweepResult, study, client, setup, *, plots: bool, scope, sink) -> None:
    import warnings

    from bpexp.tracking.writer import close_sink
    from bpexp.tuning import report

    # This process's trials ended without waiting for their per-epoch metrics; the runs and the study stand.
    problem = close_sink(sink) if sink is not None else None
    if problem:
        result.notes.append(problem)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # trials of workers elsewhere that stopped beating
    except Exception as exc:  # noqa: BLE001 - best effort; reported
        result.notes.append(f"could not check for stale trials: {exc}")
    result.notes.extend(report.reconcile(study, client, setup))
    report.summarize_parent(study, client, result.parent_run_id)
    if not (result.interrupted or scope.signalled is not None):
        try:
            result.model_uri = report.log_best_model(study, client, setup)
        except Exception as exc:  # noqa: BLE001 - the sweep's results stand without the pyfunc copy
            result.notes.append(f"could not log the best model as a pyfunc model: {type(exc).__name__}: {exc}")
    if plots and not (result.interrupted or scope.signalled is not None):
        result.plots, result.skipped_plots = report.log_study_plots(study, client, result.parent_run_id)
    result.interrupted = result.interrupted or scope.signalled is not None
    status = "KILLED" if result.interrupted else "FINISHED"
    result.failure = None if result.interrupted else no_completed_trial(result, client)
    if result.failure is not None:
        status = "FAILED"
        client.set_tag(result.parent_run_id, ERROR_TAG, result.failure)
    client.set_terminated(result.parent_run_id, status=status)
