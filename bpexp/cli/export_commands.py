"""``bpexp export`` and ``bpexp predict``."""

from __future__ import annotations

import click

from bpexp.cli.common import TRACKING_URI_HELP, fail, quiet_mlflow_logs


@click.command()
@click.argument("run_id", required=False)
@click.option("--best", "metric", metavar="METRIC",
              help="Export the best run by this metric (e.g. test_accuracy, final_val_f1, test_mae).")
@click.option("--experiment", help="With --best: only runs of this experiment (needed when several have the metric).")
@click.option("--study", help="With --best: only the COMPLETE trials of this sweep study.")
@click.option("--direction", type=click.Choice(["max", "min"]),
              help="With --best: override the metric's direction (known metrics need none).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to write the export to (refused if not empty, unless --force).")
@click.option("--register", "register_name", metavar="NAME", help="Also register the model under NAME.")
@click.option("--alias", default="champion", show_default=True, help="With --register: alias to point at it.")
@click.option("--onnx", "with_onnx", is_flag=True,
              help="Also write model.onnx, checked against onnxruntime (needs the onnx extra).")
@click.option("--force", is_flag=True, help="Replace an earlier export in --out.")
@click.option("--tracking-uri", help=TRACKING_URI_HELP)
def export(run_id: str | None, metric: str | None, experiment: str | None, study: str | None,
           direction: str | None, out_dir: str, register_name: str | None, alias: str, with_onnx: bool,
           force: bool, tracking_uri: str | None) -> None:
    """Export a run's model to --out: MLflow pyfunc model, native folder, model card, optional ONNX.

    \b
    Pick the run by id (or a unique prefix of 6+ characters, as  bpexp runs  shows
    it), or the best one by a metric:
      bpexp export 3f2a9c01 --out exports/digits
      bpexp export --best test_accuracy --experiment digits --out exports/digits --onnx
      bpexp export --best final_val_accuracy --study digits-sweep --out exports/best \\
                   --register digits-classifier --alias champion
    """
    from bpexp.errors import BpexpError
    from bpexp.export import export_run, pick_best_run

    if bool(run_id) == bool(metric):
        fail("give either a RUN_ID or --best METRIC (not both)", 2)
    if not metric and (experiment or study or direction):
        fail("--experiment, --study and --direction select runs for --best; with a RUN_ID they do nothing", 2)
    if alias != "champion" and not register_name:
        fail("--alias needs --register NAME", 2)
    quiet_mlflow_logs()
    try:
        reason = None
        if metric:
            run, reason = pick_best_run(metric, experiment=experiment, study=study, tracking_uri=tracking_uri,
                                        direction=direction)
            click.echo(reason)
            run_id = run.info.run_id
        result = export_run(run_id, out_dir, tracking_uri=tracking_uri, onnx=with_onnx, force=force,
                            register=register_name, alias=alias, selection=reason)
    except BpexpError as exc:
        fail(str(exc))
    name = f" ({result.run_name})" if result.run_name else ""
    click.echo(f"exported run {result.run_id}{name} of experiment {result.experiment_name!r} to {result.path}")
    click.echo(f"  MLflow model   {result.pyfunc_path}  (MLmodel, pyfunc, models from code)")
    click.echo(f"  native folder  {result.native_path}  (model.json + weights.npz)")
    if result.onnx_path:
        check = result.onnx_check
        click.echo(f"  ONNX           {result.onnx_path}  (onnxruntime vs NumPy: max abs diff "
                   f"{check.max_abs_diff:.2g} on {check.n_rows} rows)")
    click.echo(f"  model card     {result.readme_path}")
    if result.registered_uri:
        click.echo(f"registered {result.registered_uri} (version {result.registered_version})")
    for warning in result.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"serve it:  {result.serve_command()}")


@click.command()
@click.argument("model_source", metavar="DIR_OR_URI")
@click.argument("input_csv", type=click.Path(dir_okay=False))
@click.option("--proba", is_flag=True, help="Add one probability column per class.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False),
              help="Write the predictions here (default: standard output).")
@click.option("--tracking-uri", help=TRACKING_URI_HELP + "; used for models:/ and runs:/ URIs")
def predict(model_source: str, input_csv: str, proba: bool, out_path: str | None, tracking_uri: str | None) -> None:
    """Predict every row of INPUT_CSV with a model folder, an export or a models:/ URI.

    \b
    INPUT_CSV has a header row; columns are matched by name when the model knows
    its feature names (exports, MLflow models), else by position. The output has
    a "prediction" column with the original class labels (or values) and, with
    --proba, one column per class.
      bpexp predict exports/digits new_rows.csv --proba --out predictions.csv
      bpexp predict models:/digits-classifier@champion new_rows.csv
    """
    import sys

    from bpexp.errors import BpexpError
    from bpexp.export import predict_csv

    quiet_mlflow_logs()
    try:
        frame = predict_csv(model_source, input_csv, proba=proba, tracking_uri=tracking_uri)
    except BpexpError as exc:
        fail(str(exc))
    if out_path:
        frame.to_csv(out_path, index=False)
        click.echo(f"wrote {len(frame)} predictions to {out_path}", err=True)
    else:
        frame.to_csv(sys.stdout, index=False)


@click.command()
@click.argument("model", metavar="DIR_OR_URI")
@click.option("-p", "--port", type=click.IntRange(1, 65535), default=5001, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0: every interface; only behind a firewall).")
@click.option("-w", "--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--tracking-uri", help=TRACKING_URI_HELP + "; used for models:/ and runs:/ URIs")
def serve(model: str, port: int, host: str, workers: int, tracking_uri: str | None) -> None:
    """Serve an export (or models:/NAME@alias) over HTTP: POST /invocations, GET /ping.

    \b
    MLflow's own scoring server (what  mlflow models serve --env-manager local  runs),
    started with this environment's uvicorn so it works from any shell, and with
    one-line error answers: a bad request names the row, the column and the value,
    rows counted as in a CSV file (header = row 1), as  bpexp predict  counts them.
    Ctrl-C or SIGTERM stop the server and its workers.
      bpexp serve outputs/digits-best --port 5001
      curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' \\
           -d @outputs/digits-best/serving_input_example.json
    """
    import sys
    import tempfile
    from pathlib import Path

    from bpexp.cli.processes import port_in_use
    from bpexp.export.loading import is_uri

    if not is_uri(model) and not (Path(model) / "MLmodel").is_file():
        fail(f"{model} is not an MLflow model directory (no MLmodel file); give an export made by "
             f"bpexp export or a models:/ URI", 2)
    busy = port_in_use(host, port)
    if busy:
        fail(busy)
    with tempfile.TemporaryDirectory(prefix="bpexp-serve-") as tmp:
        local = _local_model(model, tmp, tracking_uri) if is_uri(model) else Path(model).absolute()
        sys.exit(_run_scoring_server(model, local, host, port, workers))


def _local_model(uri: str, tmp: str, tracking_uri: str | None):
    """Download the model at ``uri`` once, before the workers start (each would download it again)."""
    from bpexp.errors import BpexpError
    from bpexp.export.loading import download

    quiet_mlflow_logs()
    try:
        return download(uri, tmp, tracking_uri)
    except BpexpError as exc:
        fail(str(exc))


def _run_scoring_server(model: str, local, host: str, port: int, workers: int) -> int:
    """Run uvicorn on bpexp's wrapper of MLflow's scoring app in the foreground; its exit code."""
    import sys

    from bpexp.cli.processes import env_with_own_bin, run_server
    from bpexp.export.serve_app import MODEL_ENV

    cmd = [sys.executable, "-m", "uvicorn", "--factory", "bpexp.export.serve_app:create_app",
           "--host", host, "--port", str(port), "--workers", str(workers)]
    env = env_with_own_bin({"MLFLOW_DISABLE_TELEMETRY": "true", MODEL_ENV: str(local)})
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    return run_server(
        cmd, env, ready_url=f"{url}/ping", ready_timeout=180,
        on_ready=lambda: click.echo(f"serving {model} on {url}/invocations  (Ctrl-C to stop)"),
        on_early_exit=lambda c: click.secho(f"error: the model server exited (code {c}) before answering on "
                                            f"{url}; its messages are above", fg="red", err=True),
        on_slow=lambda: click.echo(f"the model server does not answer on {url} after 180 s; still waiting"),
    )


COMMANDS = [export, predict, serve]
