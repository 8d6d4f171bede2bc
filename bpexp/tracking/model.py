"""A trained model as an MLflow pyfunc model (models from code, no pickle): logged to a run or saved to a folder.

Both ways build the same model: ``pyfunc_model.py`` is the code, the native model
folder (``model.json`` + ``weights.npz``) the only artifact, the bpexp package is
copied along (``code_paths``) so the model loads where bpexp is not installed,
and the signature and input example come from a few raw rows of the data.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from bpexp.tracking.tags import MODEL_EXPERIMENT_TAG, MODEL_LABEL_TAG, MODEL_RUN_NAME_TAG

#: MLflow's warning, on inferring a schema, that integer columns cannot hold missing values: true, and
#: irrelevant for class labels (never missing) and for a table's inputs (typed by the encoder, gaps allowed).
INTEGER_HINT = "Hint: Inferred schema contains integer"

PYFUNC_CODE = Path(__file__).resolve().parent.parent / "pyfunc_model.py"
PACKAGE_DIR = Path(__file__).resolve().parent.parent
ARTIFACT_KEY = "bpexp_model"  # the pyfunc artifact holding the native model folder
# The logged model's name. MLflow 3 resolves runs:/<run_id>/<path> by looking for a logged model of
# that run *named* <path> (RunsArtifactRepository, and register_model likewise), and the name given
# to Model.log is ignored once the model exists: the name IS the artifact path. Named otherwise,
# runs:/<run_id>/model would stop loading in mlflow.pyfunc.load_model and mlflow models serve.
MODEL_NAME = "model"
DESCRIPTION_TAG = "mlflow.note.content"  # the "Description" the MLflow UI shows on a logged model's page
_NOT_IN_NAMES = re.compile(r"""[/:.%"'\s]+""")  # characters MLflow refuses in a logged model's name


@contextlib.contextmanager
def using_store(uri: str):
    """Make ``uri`` MLflow's tracking *and* registry URI for the duration, then restore both exactly.

    Some MLflow paths ignore the URIs passed to them and read the global ones
    (``Model.log``; resolving ``models:/...`` URIs in ``download_artifacts``), and
    left unset those fall back to ``sqlite:///mlflow.db`` in the current directory.
    ``mlflow.set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI``, which would
    leak into later calls and subprocesses, so the environment is restored too.
    """
    import os

    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    env_keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved_env = {k: os.environ.get(k) for k in env_keys}
    saved_tracking, saved_registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_tracking)
        registry_utils._registry_uri = saved_registry
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_tracking_uri = using_store  # the name used before


def input_example(model, X, feature_names: list[str], n_rows: int = 5):
    """The first rows of raw ``X`` as a DataFrame with the dataset's column names.

    For a table model the rows are as a user would send them: strings (or
    booleans, integers) in categorical columns, ``None`` where a value is missing.
    """
    import pandas as pd

    if model.encoder is not None:
        return raw_rows(model.encoder, X.iloc[:n_rows])
    names = feature_names if len(feature_names) == model.n_inputs else [f"x{i}" for i in range(model.n_inputs)]
    return pd.DataFrame(np.asarray(X[:n_rows], dtype=np.float64), columns=names)


def requirements() -> list[str]:
    """Pinned requirements of the model: what ``pyfunc_model.py`` and ``bpexp.nn`` import.

    bpexp itself travels in the model's ``code/`` folder, and its model code needs
    only NumPy (pandas for the DataFrames MLflow passes in).
    """
    import mlflow
    import pandas

    return [f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}", f"pandas=={pandas.__version__}"]


def raw_rows(encoder, frame):
    """``frame``'s encoder columns with their raw value types back (category keys -> str/bool/int, None if missing)."""
    import pandas as pd

    from bpexp.nn.tabular import CategoricalColumn

    out = {}
    for col in encoder.columns:
        values = frame[col.name]
        if isinstance(col, CategoricalColumn):
            parse = {"boolean": lambda v: v == "True", "integer": int}.get(col.value_type, str)
            values = [None if pd.isna(v) else parse(v) for v in values.astype(object)]
            out[col.name] = pd.Series(values, dtype=object, index=frame.index)
        elif col.value_type == "integer" and not col.allow_missing:
            out[col.name] = values.astype(np.int64)
        else:
            out[col.name] = values.astype(np.float64)
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def _input_schema(encoder):
    """Named input columns as typed in training (double/long, string/boolean/long); optional where gaps are allowed."""
    from mlflow.types import ColSpec, Schema

    required = set(encoder.required_columns())
    specs = []
    for col in encoder.columns:
        # Integers where training had whole numbers and no gaps: in process, MLflow refuses to
        # cast an int64 column (a year, a count) to double, and a raw table has such columns.
        kind = {"string": "string", "boolean": "boolean", "integer": "long"}[col.value_type] \
            if hasattr(col, "categories") else \
            ("long" if col.value_type == "integer" and not col.allow_missing else "double")
        specs.append(ColSpec(kind, col.name, required=col.name in required))
    return Schema(specs)


def model_signature(model, example):
    """Signature from the example rows: named columns in, predictions out, param ``proba``."""
    from mlflow.models import ModelSignature, infer_signature

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=INTEGER_HINT)
        if model.encoder is not None:
            base = infer_signature(example.iloc[:, :0].assign(x=0.0), _as_frame(model.predict(example)),
                                   params={"proba": False})
            return ModelSignature(inputs=_input_schema(model.encoder), outputs=base.outputs, params=base.params)
        return infer_signature(example, _as_frame(model.predict(example.to_numpy())), params={"proba": False})


def _pyfunc_options(folder: Path, model, example) -> dict:
    """Keyword arguments shared by ``Model.log`` and ``mlflow.pyfunc.save_model``."""
    return {
        "python_model": str(PYFUNC_CODE),
        "artifacts": {ARTIFACT_KEY: str(folder)},
        "code_paths": [str(PACKAGE_DIR)],
        "signature": model_signature(model, example),
        "input_example": example,
        "pip_requirements": requirements(),
    }


@contextlib.contextmanager
def _without_requirement_self_check():
    """Skip MLflow's check that the model's pip requirements match the installed packages.

    :func:`requirements` pins exactly the installed versions, so the check cannot find a
    mismatch; the first one in a process costs ~1.5-2 s (``importlib.metadata.packages_distributions``
    reads every installed package's file list), a sixth of a whole ``bpexp train``. It runs twice per
    saved model: when the requirements are written (``mlflow.utils.environment``) and when
    ``Model.log`` loads the new model to validate its serving example (``mlflow.pyfunc.load_model``,
    which keeps its own reference to the function). MLflow has no option for this, so both
    module-level names are swapped for the duration of the save; if a future MLflow moves one,
    nothing is swapped there and that check simply runs.
    """
    import mlflow.pyfunc
    from mlflow.utils import environment

    modules = [m for m in (environment, mlflow.pyfunc) if hasattr(m, "warn_dependency_requirement_mismatches")]
    originals = [m.warn_dependency_requirement_mismatches for m in modules]
    for module in modules:
        module.warn_dependency_requirement_mismatches = lambda requirements: None
    try:
        yield
    finally:
        for module, original in zip(modules, originals):
            module.warn_dependency_requirement_mismatches = original


@contextlib.contextmanager
def _quiet_validation():
    """MLflow announces "Validating input example against model signature" at INFO on stderr,
    which notebooks show as a red block after every logged model: hold its loggers at WARNING."""
    import logging

    loggers = [logging.getLogger(name) for name in ("mlflow.pyfunc", "mlflow.models")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def model_label(experiment: str, run_name: str | None) -> str:
    """``<experiment>-<run name>`` in the characters MLflow allows in a logged model's name.

    >>> model_label("digits", "lr=0.01 trial.3")
    'digits-lr=0-01-trial-3'
    """
    text = f"{experiment}-{run_name}" if run_name else experiment
    return _NOT_IN_NAMES.sub("-", text).strip("-") or MODEL_NAME


def log_pyfunc_model(tracking_uri: str, run_id: str, model, example) -> str:
    """Log ``model`` to ``run_id`` as ``runs:/<run_id>/model`` and return its ``models:/m-...`` URI.

    The logged model is created in the run's own experiment (``Model.log`` alone
    would file it under whatever experiment is active in the process, usually
    Default). Its name stays ``model`` (see ``MODEL_NAME``); what it is goes in
    its tags: ``bpexp.name`` (``<experiment>-<run name>``), ``bpexp.experiment``
    and ``bpexp.run_name`` (searchable with MLflow's logged-model search), and a
    description starting with that label, which the MLflow UI shows on the
    model's page (its tags it does not show).
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import Model

    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id).name
    run_name = run.info.run_name or ""
    label = model_label(experiment, run_name)
    description = (f"{label}: the bpexp MLP of run {run_name or run_id} in experiment {experiment!r}; "
                   f"load it as runs:/{run_id}/{MODEL_NAME}")
    logged = client.create_logged_model(
        experiment_id=run.info.experiment_id, name=MODEL_NAME, source_run_id=run_id,
        params=dict(run.data.params), model_type="bpexp-mlp",
        tags={MODEL_LABEL_TAG: label, MODEL_EXPERIMENT_TAG: experiment, MODEL_RUN_NAME_TAG: run_name,
              DESCRIPTION_TAG: description},
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / ARTIFACT_KEY
        model.save(folder)
        with using_store(tracking_uri), _quiet_validation(), _without_requirement_self_check():
            info = Model.log(artifact_path=None, name=MODEL_NAME, flavor=mlflow.pyfunc, run_id=run_id,
                             model_id=logged.model_id, **_pyfunc_options(folder, model, example))
    return info.model_uri


def save_pyfunc_model(path: str | Path, model, example, metadata: dict | None = None) -> Path:
    """Save ``model`` as an MLflow pyfunc model directory at ``path`` (which must not exist yet).

    Parameters
    ----------
    path : path
        The new model directory: ``MLmodel``, ``code/``, ``artifacts/bpexp_model/``,
        requirements, ``input_example.json`` and ``serving_input_example.json``.
    model : MLP
    example : pandas.DataFrame
        A few raw input rows with the feature names as columns.
    metadata : dict, optional
        Stored under ``metadata`` in ``MLmodel`` (e.g. the source run).
    """
    import mlflow

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / ARTIFACT_KEY
        model.save(folder)
        with _quiet_validation(), _without_requirement_self_check():
            mlflow.pyfunc.save_model(path=str(path), metadata=metadata, **_pyfunc_options(folder, model, example))
    # Loading the model to check the example compiles bytecode inside the copied code.
    for pycache in path.rglob("__pycache__"):
        shutil.rmtree(pycache, ignore_errors=True)
    return path


def _as_frame(prediction: np.ndarray):
    import pandas as pd

    if prediction.ndim == 1:
        return pd.DataFrame({"prediction": prediction})
    return pd.DataFrame(prediction, columns=[f"output_{i}" for i in range(prediction.shape[1])])
