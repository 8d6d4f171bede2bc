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
        fail(_interrupted_line(exc), exc.exit_code)
    except Interrupted as exc:
        fail(f"{exc}: stopped before a run was created", exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted before a run was created", 130)
    except BpexpError as exc:
        fail(f"{exc}", 1)
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
    from bpexp.redaction import redact
    from bpexp.shell import bpexp_command, store_args
    from bpexp.tracking.store import ui_link

    shown = redact(tracking_uri)
    if shown.startswith(("http://", "https://")):
        click.echo(f"see it at {ui_link(shown, experiment_id, run_id)}")
    else:
        store = store_args(tracking_uri)
        click.echo(f"see it in the MLflow UI: {bpexp_command('ui', *store)}   "
                   f"(or list runs: {bpexp_command('runs', *store)})")


@click.command()
@click.option("--experiment", "experiments", multiple=True, help="Experiment name (repeatable; default: all).")
@click.option("--sort", "sort_metric", help="Metric to sort by, best first (default: a sweep's objective, else "
              "test_accuracy or test_r2).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="table: rounded, for reading; csv/json: full run ids and unrounded values, for scripts.")
@click.option("--tracking-uri", help=TRACKING_URI_HELP)
def runs(experiments: tuple[str, ...], sort_metric: str | None, limit: int, fmt: str,
         tracking_uri: str | None) -> None:
    """List runs best first: trial and state, the params that differ between them, final metrics.

    \b
    A sweep's trials are sorted by the sweep's objective; params that are the same
    in every listed run are left out.
      bpexp runs --experiment digits-sweep
      bpexp runs --experiment digits --format json > runs.json
    """
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
        from bpexp.shell import bpexp_command

        if fmt == "json":
            click.echo("[]")
            return
        click.echo(f"no runs yet: start one with  {bpexp_command('train', 'experiments/digits.yaml')}")
        return
    if sort_metric and not any(sort_metric in r.data.metrics for r in found):
        known = sorted({k for r in found for k in r.data.metrics if not k.startswith(("grad_", "weight_"))})
        fail(f"no run has the metric {sort_metric!r}; metrics found: {known}", 2)
    table = runs_table(found, sort=sort_metric, limit=limit)
    if fmt != "table":
        click.echo(table.to_json() if fmt == "json" else table.to_csv(), nl=fmt == "json")
        return
    click.echo(table.render())
    if table.sort_metric:
        click.echo(f"\n{len(table.rows)} of {len(found)} runs, best {table.sort_metric} first")


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--tracking-uri", help=TRACKING_URI_HELP)
def ui(port: int, tracking_uri: str | None) -> None:
    """Start the MLflow UI for the project's store on 127.0.0.1 (Ctrl-C stops it)."""
    from bpexp.cli.processes import env_with_own_bin, port_in_use, run_server
    from bpexp.errors import BpexpError
    from bpexp.redaction import redact
    from bpexp.tracking import connect, resolve_tracking_uri
    from bpexp.tracking.store import artifact_root

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        click.echo(f"runs are on the tracking server: open {redact(uri)}")
        return
    busy = port_in_use("127.0.0.1", port)
    if busy:
        fail(busy)
    quiet_mlflow_logs()
    try:
        connect(uri)  # creates the store if it does not exist yet
    except BpexpError as exc:
        fail(str(exc))
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    root = artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    url = f"http://127.0.0.1:{port}"
    click.echo(f"starting the MLflow UI for {redact(uri)} ...")
    code = run_server(
        cmd, env_with_own_bin({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}), ready_url=f"{url}/health",
        ready_timeout=120,
        on_ready=lambda: _print_ui_links(url, uri),
        on_early_exit=lambda c: click.secho(f"error: the MLflow UI exited (code {c}) before answering on {url}; "
                                            f"its messages are above", fg="red", err=True),
        on_slow=lambda: click.echo(f"the MLflow UI does not answer on {url} after 120 s; still waiting"),
    )
    sys.exit(code)


def _print_ui_links(url: str, uri: str) -> None:
    """The UI's address, and a link per recent experiment that opens its runs (not the GenAI view)."""
    from mlflow import MlflowClient

    from bpexp.tracking.store import ui_link

    click.echo(f"open {url}  (Ctrl-C to stop)")
    recent = MlflowClient(uri).search_experiments(max_results=5, order_by=["last_update_time DESC"])
    for exp in recent:
        if exp.name != "Default" or len(recent) == 1:
            click.echo(f"  {exp.name}: {ui_link(url, exp.experiment_id)}")


COMMANDS = [train, runs, ui]
