"""``bpexp train``, ``bpexp runs``, ``bpexp ui``."""

from __future__ import annotations

import sys

import click

from bpexp.cli.common import TRACKING_URI_HELP, fail, quiet_mlflow_logs


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a config value, e.g. --set model.hidden=[128,64] (repeatable).")
@click.option("--tracking-uri", help=TRACKING_URI_HELP)
@click.option("--experiment", help="MLflow experiment name (default: tracking.experiment or the file name).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def train(config: str, sets: tuple[str, ...], tracking_uri: str | None, experiment: str | None,
          no_progress: bool) -> None:
    """Train the experiment CONFIG (a YAML file) as one MLflow run."""
    from bpexp import signals

    with signals.scope():  # Ctrl-C/SIGTERM are recorded; training stops after the current epoch
        _train(config, sets, tracking_uri, experiment, no_progress)


def _train(config, sets, tracking_uri, experiment, no_progress) -> None:
    from bpexp.config import ConfigError, load_experiment, parse_overrides
    from bpexp.errors import BpexpError
    from bpexp.runner import RunInterrupted, run
    from bpexp.signals import Interrupted
    from bpexp.tracking.writer import close_all

    try:
        overrides = parse_overrides(sets)
        load_experiment(config, overrides)  # validate before anything is created
    except ConfigError as exc:
        fail(str(exc), 2)
    quiet_mlflow_logs()
    try:
        result = run(config, tracking_uri=tracking_uri, experiment=experiment, overrides=overrides,
                     progress=not no_progress)
    except RunInterrupted as exc:
        close_all()  # inside the signal scope: a further Ctrl-C cannot cut the writer's shutdown short
        fail(_interrupted_line(exc), exc.exit_code)
    except Interrupted as exc:
        fail(f"{exc}: stopped before a run was created", exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted before a run was created", 130)
    except BpexpError as exc:
        fail(f"{exc}", 1)
    close_all()
    click.echo(f"run {result.run_id} finished: {result.summary()}")
    if result.model_uri:
        click.echo(f"model: {result.model_uri}")
    _where_to_look(result.tracking_uri, result.experiment_id, result.run_id)


def _interrupted_line(exc) -> str:
    """What the store says about an interrupted run (read back, not assumed)."""
    from bpexp.tracking import connect

    what = "terminated (SIGTERM)" if exc.exit_code == 143 else "interrupted"
    try:
        status = connect(exc.tracking_uri).get_run(exc.run_id).info.status
    except Exception as err:  # noqa: BLE001 - say what is known
        return f"{what}: could not read run {exc.run_id} back from the store ({type(err).__name__}: {err})"
    if status == "KILLED" and not exc.end_error:
        return f"{what}: the run ended KILLED with its metrics saved (run {exc.run_id})"
    problem = f": {exc.end_error}" if exc.end_error else ""
    return f"{what}: the store records run {exc.run_id} as {status}{problem}"


def _where_to_look(tracking_uri: str, experiment_id: str, run_id: str) -> None:
    if tracking_uri.startswith(("http://", "https://")):
        click.echo(f"see it at {tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}")
    else:
        click.echo("see it in the MLflow UI: bpexp ui   (or list runs: bpexp runs)")


@click.command()
@click.option("--experiment", "experiments", multiple=True, help="Experiment name (repeatable; default: all).")
@click.option("--sort", "sort_metric", help="Metric to sort by, best first (default: test_accuracy or test_r2).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--tracking-uri", help=TRACKING_URI_HELP)
def runs(experiments: tuple[str, ...], sort_metric: str | None, limit: int, tracking_uri: str | None) -> None:
    """List runs with their key params and final metrics, best first."""
    from bpexp.errors import BpexpError
    from bpexp.tracking import connect, resolve_tracking_uri
    from bpexp.tracking.queries import runs_table, search_runs

    quiet_mlflow_logs()
    try:
        client = connect(resolve_tracking_uri(tracking_uri))
        found = search_runs(client, list(experiments))
    except BpexpError as exc:
        fail(str(exc))
    if not found:
        click.echo("no runs yet: start one with  bpexp train experiments/digits.yaml")
        return
    if sort_metric and not any(sort_metric in r.data.metrics for r in found):
        known = sorted({k for r in found for k in r.data.metrics if not k.startswith(("grad_", "weight_"))})
        fail(f"no run has the metric {sort_metric!r}; metrics found: {known}", 2)
    table = runs_table(found, sort=sort_metric, limit=limit)
    click.echo(table.render())
    if table.sort_metric:
        click.echo(f"\n{len(table.rows)} of {len(found)} runs, best {table.sort_metric} first")


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--tracking-uri", help=TRACKING_URI_HELP)
def ui(port: int, tracking_uri: str | None) -> None:
    """Start the MLflow UI for the project's store on 127.0.0.1."""
    import os
    import subprocess
    from pathlib import Path

    from bpexp.tracking import connect, resolve_tracking_uri
    from bpexp.tracking.store import artifact_root

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        click.echo(f"runs are on the tracking server: open {uri}")
        return
    quiet_mlflow_logs()
    connect(uri)  # creates the store if it does not exist yet
    cmd = [str(Path(sys.executable).with_name("mlflow")), "ui", "--backend-store-uri", uri,
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    root = artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    click.echo(f"MLflow UI for {uri}\nopen http://127.0.0.1:{port}  (Ctrl-C to stop)")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    try:
        sys.exit(subprocess.call(cmd, env=env))
    except KeyboardInterrupt:
        sys.exit(130)


COMMANDS = [train, runs, ui]
