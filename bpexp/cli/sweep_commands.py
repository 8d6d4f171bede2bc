"""``bpexp sweep`` (Optuna studies whose trials are MLflow runs)."""

from __future__ import annotations

import click

from bpexp.cli.common import TRACKING_URI_HELP, fail, quiet_mlflow_logs

STORAGE_HELP = ("Optuna storage: a journal file path or a database URL, e.g. postgresql://user@host/db for "
                "several machines (default: <project>/mlruns/optuna-journal.log).")


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--n-trials", type=click.IntRange(min=0), help="Trials this command adds, in total over its workers "
              "(default: study.n_trials of the config; 0: until --timeout).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Start no new trial after S seconds.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: study.workers, else 1).")
@click.option("--storage", help=STORAGE_HELP)
@click.option("--study-name", help="Study to create or resume (default: study.name, else the file name).")
@click.option("--tracking-uri", help=TRACKING_URI_HELP)
@click.option("--set", "sets", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a value of the sweep file, e.g. --set pruner=median (repeatable).")
@click.option("--no-progress", is_flag=True, help="Hide the progress line.")
def sweep(config: str, n_trials: int | None, timeout: float | None, workers: int | None, storage: str | None,
          study_name: str | None, tracking_uri: str | None, sets: tuple[str, ...], no_progress: bool) -> None:
    """Tune the sweep CONFIG (experiments/*-sweep.yaml) with Optuna; every trial is an MLflow run.

    \b
    Rerun the same command to resume the study and add trials. Several machines
    can work on one study:
      bpexp sweep experiments/digits-sweep.yaml --storage postgresql://user@db-host/optuna \\
                  --tracking-uri http://mlflow-host:5000 --workers 2
    """
    import os

    os.environ.setdefault("MPLBACKEND", "Agg")  # study plots are files; never open a window
    from bpexp.config import ConfigError, load_sweep, parse_overrides
    from bpexp.errors import BpexpError

    try:
        overrides = parse_overrides(sets)
        load_sweep(config, overrides)  # validate before anything is created or imported
    except ConfigError as exc:
        fail(str(exc), 2)
    quiet_mlflow_logs()
    from bpexp.tuning import SweepInterrupted
    from bpexp.tuning import sweep as run_sweep

    try:
        result = run_sweep(config, n_trials=n_trials, timeout=timeout, workers=workers, storage=storage,
                           study_name=study_name, tracking_uri=tracking_uri, progress=not no_progress,
                           overrides=overrides)
    except SweepInterrupted as exc:
        click.echo(exc.result.summary())
        fail("interrupted: running trials ended FAIL, the parent run KILLED; rerun the command to resume", 130)
    except KeyboardInterrupt:
        fail("interrupted before the sweep started", 130)
    except ConfigError as exc:
        fail(str(exc), 2)
    except BpexpError as exc:
        fail(str(exc), 1)
    click.echo(result.summary())


COMMANDS = [sweep]
