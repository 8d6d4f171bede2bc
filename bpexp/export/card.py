"""The model card: ``README.md`` of an exported model directory.

It says what the model is (architecture, dataset, classes, input columns), how
good it is (validation and test metrics), where it came from (run, experiment,
store, how it was picked) and how to use it (load, predict, serve), so the
folder can be handed to someone who never saw the run.
"""

from __future__ import annotations

import datetime as _dt
import shlex
from pathlib import Path

from bpexp.redaction import redact
from bpexp.shell import bpexp_program, serve_command
from bpexp.tracking.tags import (
    DATASET_DIGEST_TAG,
    DATASET_TAG,
    EPOCHS_RUN_TAG,
    STOP_REASON_TAG,
    STUDY_TAG,
    TASK_TAG,
    TRIAL_NUMBER_TAG,
    VERSION_TAG,
)

_METRIC_ORDER = ("accuracy", "f1", "log_loss", "r2", "mse", "mae", "loss")


def _metric_rows(metrics: dict[str, float]) -> list[str]:
    """``| metric | validation | test |`` rows from ``final_val_*`` and ``test_*`` metrics."""
    names = {k[len("final_val_"):] for k in metrics if k.startswith("final_val_")}
    names |= {k[len("test_"):] for k in metrics if k.startswith("test_")}
    order = sorted(names, key=lambda n: (_METRIC_ORDER.index(n) if n in _METRIC_ORDER else 99, n))
    rows = []
    for n in order:
        val, test = metrics.get(f"final_val_{n}"), metrics.get(f"test_{n}")
        rows.append(f"| {n} | {_fmt(val)} | {_fmt(test)} |")
    return rows


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"


def _architecture(model) -> str:
    acts = [a.name for a in model.activations]
    act = acts[0] if len(set(acts)) == 1 else ", ".join(acts)
    sizes = " → ".join(str(s) for s in model.sizes)
    prep = "inputs standardized with training statistics (stored in the model)" if model.preprocessing is not None \
        else "raw inputs (no standardization)"
    if model.encoder is not None:
        prep = "table rows encoded by the model (impute, indicate gaps, standardize, one-hot)"
    return f"MLP {sizes}, hidden activation {act or 'none'}, head {model.head.name}, {model.dtype.name}; {prep}"


def _feature_table(encoder) -> list[str]:
    """The input columns of a table model: role, categories, missing values in training, what may be sent."""
    lines = [f"Input: {len(encoder.columns)} columns of raw rows, matched by name; encoded into "
             f"{encoder.n_features_out} features inside the model (learned from the training split).", "",
             "| column | role | categories | missing in training | may be missing |", "|---|---|---|---|---|"]
    optional = set(encoder.input_names) - set(encoder.required_columns())
    for row in encoder.schema():
        cats = str(row.get("categories", "")) + (" + other" if row.get("other_bucket") else "")
        lines.append(f"| `{row['column']}` | {row['role']} | {cats} | {row['missing_fraction']:.1%} | "
                     f"{'yes' if row['column'] in optional else 'no'} |")
    lines += ["", "Categorical values never seen in training are encoded as `other` (or as no category), "
              "never refused; a numeric column takes numbers only, and a gap only where it may be missing.", ""]
    if encoder.ignored:
        lines += [f"Columns accepted and ignored: {', '.join(f'`{c}`' for c in encoder.ignored)}.", ""]
    return lines


def model_card(result, rm, *, params: dict[str, str], metrics: dict[str, float]) -> str:
    """Markdown text of the card for an :class:`~bpexp.export.build.ExportResult`."""
    run, model = rm.run, rm.model
    tags = run.data.tags
    name = run.info.run_name or run.info.run_id
    lines = [f"# {name}: bpexp {model.task} model", ""]
    lines += [f"Exported {_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} by `bpexp export`.", ""]
    if result.selection:
        lines += [f"Why this run: {result.selection}.", ""]

    lines += ["## Source", "", "| | |", "|---|---|"]
    lines += [f"| run | `{run.info.run_id}` ({run.info.run_name or 'unnamed'}, {run.info.status}) |",
              f"| experiment | {rm.experiment_name} (id {run.info.experiment_id}) |",
              f"| tracking store | `{redact(result.tracking_uri)}` |"]
    if rm.source_model_uri:
        lines.append(f"| logged model | `{rm.source_model_uri}` |")
    if result.registered_uri:
        lines.append(f"| registered as | `{result.registered_uri}` (version {result.registered_version}) |")
    for key, label in ((STUDY_TAG, "sweep study"), (TRIAL_NUMBER_TAG, "trial"),
                       ("mlflow.source.git.commit", "git commit"), (VERSION_TAG, "bpexp version")):
        if key in tags:
            lines.append(f"| {label} | `{tags[key]}` |")
    lines.append("")

    lines += ["## Model", "", _architecture(model), ""]
    dataset = tags.get(DATASET_TAG, params.get("dataset.name", "unknown"))
    digest = tags.get(DATASET_DIGEST_TAG, "")
    lines += [f"Dataset: **{dataset}**" + (f" (sha256 `{digest[:16]}…`)" if digest else "")
              + f", task {tags.get(TASK_TAG, model.task)}.", ""]
    if model.classes_ is not None and model.task == "classification":
        labels = ", ".join(f"`{c}`" for c in model.classes_.tolist())
        lines += [f"Classes (in probability-column order): {labels}.", ""]
    features = rm.feature_names
    shown = ", ".join(f"`{f}`" for f in features[:20]) + (f", … ({len(features)} in all)" if len(features) > 20
                                                        else "")
    if model.encoder is not None:
        lines += _feature_table(model.encoder)
    else:
        lines += [f"Input: {model.n_inputs} numeric columns, matched by name: {shown}.", ""]

    rows = _metric_rows(metrics)
    if rows:
        lines += ["## Metrics", "", "| metric | validation | test |", "|---|---|---|", *rows, ""]
    extra = [f"{k} = {metrics[k]:g}" for k in ("best_epoch",) if k in metrics]
    if EPOCHS_RUN_TAG in tags:
        extra.append(f"epochs run = {tags[EPOCHS_RUN_TAG]}")
    if STOP_REASON_TAG in tags:
        extra.append(f"stopped: {tags[STOP_REASON_TAG]}")
    if extra:
        lines += ["; ".join(extra) + ".", ""]

    if params:
        lines += ["## Training parameters", "", "| param | value |", "|---|---|"]
        lines += [f"| {k} | `{v}` |" for k, v in sorted(params.items())]
        lines.append("")

    lines += _files_section(result)
    lines += _usage_section(result, model)
    if result.warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in result.warnings], ""]
    return "\n".join(lines)


def _files_section(result) -> list[str]:
    lines = ["## Files", "", "```",
             "MLmodel, python_env.yaml, conda.yaml, requirements.txt   MLflow pyfunc model (models from code)",
             "pyfunc_model.py, code/bpexp/        the code the model runs (copied: no bpexp install needed)",
             "artifacts/bpexp_model/              native model folder: model.json + weights.npz (NumPy only)",
             "input_example.json                  example input rows",
             "serving_input_example.json          a ready request body for POST /invocations"]
    if result.onnx_path:
        lines.append(f"model.onnx                          ONNX graph (opset {result.onnx_opset})")
    lines += ["README.md                           this card", "```", ""]
    if result.onnx_check is not None:
        c = result.onnx_check
        rows = f"{c.n_rows} example rows" if not getattr(c, "n_edge_rows", 0) else \
            f"{c.n_rows - c.n_edge_rows} example rows and {c.n_edge_rows} with unseen categories and missing values"
        lines += [f"The ONNX graph was checked against the NumPy model with onnxruntime when exporting: max "
                  f"absolute difference {c.max_abs_diff:.2g} on {rows}.", ""]
    return lines


def _usage_section(result, model) -> list[str]:
    path = result.path
    proba = model.is_classifier
    lines = ["## Use it", "", "Python (returns the trained `bpexp.MLP`; the native folder alone needs only NumPy):",
             "", "```python", "import bpexp", f'model = bpexp.load_model("{path}")',
             "model.predict(X)          # original class labels" if proba else "model.predict(X)          # values"]
    if proba:
        lines.append("model.predict_proba(X)    # one column per class")
    lines += ["```", "", "MLflow pyfunc (a DataFrame with the columns above):", "", "```python", "import mlflow",
              f'pyfunc = mlflow.pyfunc.load_model("{path}")',
              'pyfunc.predict(df)                           # a "prediction" column']
    if proba:
        lines.append('pyfunc.predict(df, params={"proba": True})  # one probability column per class')
    # Absolute program paths: the card is read later, from shells whose PATH lacks the exporting venv.
    bpexp_cmd = bpexp_program(bare_if_on_path=False)
    served = Path(path).absolute()
    lines += ["```", "", "Command line (the `bpexp` that exported it; plain `bpexp` where it is on PATH):", "",
              "```sh", f"{bpexp_cmd} predict {shlex.quote(str(served))} input.csv --out predictions.csv"
              + (" [--proba]" if proba else ""), "```", ""]
    if result.registered_uri:
        lines += [f"From the registry: `bpexp.load_model(\"{result.registered_uri}\")` or "
                  f"`mlflow.pyfunc.load_model(\"{result.registered_uri}\")` with the tracking URI above.", ""]
    lines += ["Serve it over HTTP (`bpexp serve` runs MLflow's scoring server, the one `mlflow models serve "
              "--env-manager local` runs, with its own environment's uvicorn and one-line error answers; "
              "Ctrl-C stops it):", "", "```sh",
              serve_command(str(served), 5001, bare_if_on_path=False),
              f"curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' "
              f"-d @{shlex.quote(str(served / 'serving_input_example.json'))}", "```", "",
              "Request bodies: `{\"dataframe_split\": {\"columns\": [...], \"data\": [[...], ...]}}`, "
              "`{\"inputs\": {\"<column>\": [values...], ...}}`, or CSV with a header row "
              "(`Content-Type: text/csv`). Add `\"params\": {\"proba\": true}` to a JSON body for probabilities. "
              "Bad input is answered with HTTP 400 and a one-line message naming the problem: a missing column "
              "by name, a missing value or a value that is not a number by row and column, rows numbered as "
              "`bpexp predict` numbers a CSV file's (the header is row 1; for a JSON body, the first row is "
              "row 2). Columns the model does not know are ignored by MLflow's schema check.", "",
              "In process, `pyfunc.predict` wants float columns (MLflow's schema check refuses to cast int64 to "
              "double); `bpexp.load_model` and `bpexp predict` take any numbers.", ""]
    if result.onnx_path and model.encoder is not None:
        lines += _onnx_table_usage(path, model)
    elif result.onnx_path:
        out = "probabilities" if proba else "predictions"
        lines += ["ONNX Runtime:", "", "```python", "import numpy as np, onnxruntime as ort",
                  f'session = ort.InferenceSession("{path}/model.onnx")',
                  f'{out}, *rest = session.run(None, {{"input": X.astype(np.{model.dtype.name})}})', "```", ""]
        if model.task == "classification":
            lines += ["The graph's second output `label` holds the class labels.", ""]
    return lines


def _onnx_table_usage(path, model) -> list[str]:
    """How to feed the ONNX graph of a table model: one (N, 1) input per raw column."""
    out = "probabilities" if model.is_classifier else "predictions"
    return ["ONNX Runtime (the preprocessing is in the graph; one `(N, 1)` input per column: float64 with NaN "
            "for a missing number, strings with `\"\"` for a missing category, booleans and integers as "
            "`\"True\"`, `\"3\"`):", "", "```python", "import onnxruntime as ort",
            "import bpexp", "from bpexp.export.onnx import onnx_inputs",
            f'session = ort.InferenceSession("{path}/model.onnx")',
            f'feeds = onnx_inputs(bpexp.load_model("{path}"), df)   # raw rows as model.predict takes them',
            f"{out}, *rest = session.run(None, feeds)",
            "```", "", "The graph's metadata property `inputs` lists each input's type, categories and missing "
            "marker for callers without bpexp.", ""]
