"""Getting a run and its trained model out of the MLflow store.

A run holds its model in one of two ways (see :func:`bpexp.runner.run`):

* an MLflow pyfunc model (tag ``bpexp.model_uri``), whose ``artifacts/bpexp_model``
  is the native folder and whose ``input_example.json`` gives the example rows;
* only the native folder under the run's ``bpexp_model/`` artifacts (sweep trials),
  in which case the example rows come from an ``input_example.json`` in that
  folder if the runner wrote one, else are rebuilt from the run's ``config.yaml``.

Either way the native folder is read with :func:`~bpexp.nn.serialization.load_model_folder`
(``allow_pickle=False``, every array checked), never by unpickling anything.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bpexp.export.errors import ExportError, NoModelError, RunNotFoundError
from bpexp.export.loading import bpexp_artifact_dir
from bpexp.nn.serialization import MODEL_JSON, load_model_folder
from bpexp.tracking.tags import MODEL_URI_TAG

FOLDER_ARTIFACT = "bpexp_model"  # where runs logged with log_model="folder" keep the native folder
EXAMPLE_JSON = "input_example.json"  # optional, in a run's bpexp_model/ folder: example rows with feature names
_log = logging.getLogger(__name__)


@dataclass
class RunModel:
    """A run's trained model and the example rows that describe its input.

    Attributes
    ----------
    run : mlflow.entities.Run
    experiment_name : str
    model : MLP
    example : pandas.DataFrame
        A few raw input rows, the feature names as columns.
    example_origin : str
        Where the example came from, for the model card.
    source_model_uri : str or None
        The run's logged pyfunc model (``models:/m-...``), if it has one.
    warnings : list of str
    """

    run: object
    experiment_name: str
    model: object
    example: object
    example_origin: str
    source_model_uri: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.example.columns]


def get_run(client, run_id: str, tracking_uri: str):
    """The run ``run_id`` (a full id or a unique prefix), or :class:`RunNotFoundError` naming the store."""
    from mlflow.exceptions import MlflowException

    from bpexp.tracking.queries import resolve_run_id

    given = str(run_id).strip()
    if not given:
        raise RunNotFoundError("no run id given")
    try:
        run_id = resolve_run_id(client, given)
        if run_id is None:
            raise RunNotFoundError(f"no run with id {given!r} (or starting with it) in the tracking store "
                                   f"{tracking_uri}")
        return client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise RunNotFoundError(f"no run with id {run_id!r} in the tracking store {tracking_uri}") from None
        raise ExportError(f"cannot read run {run_id!r} from {tracking_uri}: {exc.message}") from None


def logged_model_uri(run) -> str | None:
    """The run's pyfunc model: its ``bpexp.model_uri`` tag, else the last model it logged."""
    uri = run.data.tags.get(MODEL_URI_TAG)
    if uri:
        return uri
    outputs = getattr(run, "outputs", None)
    models = list(getattr(outputs, "model_outputs", None) or [])
    if models:
        return f"models:/{max(models, key=lambda m: m.step).model_id}"
    return None


def describe_run(run) -> str:
    name = run.info.run_name
    return f"run {run.info.run_id}" + (f" ({name})" if name else "")


def load_run_model(client, tracking_uri: str, run) -> RunModel:
    """Download and check the run's model; raise :class:`NoModelError` if it has none."""
    import mlflow

    from bpexp.tracking.model import using_store

    experiment = client.get_experiment(run.info.experiment_id)
    experiment_name = experiment.name if experiment is not None else run.info.experiment_id
    model_uri = logged_model_uri(run)
    with tempfile.TemporaryDirectory() as tmp, using_store(tracking_uri):
        if model_uri:
            local = _download(lambda: mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp),
                              f"the run's model {model_uri}")
            model = load_model_folder(bpexp_artifact_dir(Path(local)))
            example = _logged_example(Path(local), model)
            if example is not None:
                return RunModel(run, experiment_name, model, example, "the input example logged with the run's model",
                                model_uri)
        elif _has_folder(client, run.info.run_id):
            local = _download(lambda: mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path=FOLDER_ARTIFACT, dst_path=tmp),
                f"the run's {FOLDER_ARTIFACT}/ folder")
            model = load_model_folder(local)
            example = _folder_example(Path(local), model)
            if example is not None:
                return RunModel(run, experiment_name, model, example, "the input example saved with the run's folder")
        else:
            raise NoModelError(
                f"{describe_run(run)} has no model to export: it logged neither an MLflow model "
                f"(tag {MODEL_URI_TAG}) nor a {FOLDER_ARTIFACT}/ folder (status {run.info.status}; runs trained "
                f"with log_model=None or that failed before the end have none)"
            )
    example, origin, warning = example_from_config(client, tracking_uri, run, model)
    result = RunModel(run, experiment_name, model, example, origin, model_uri)
    if warning:
        result.warnings.append(warning)
    return result


def _download(fetch, what: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        return fetch()
    except (MlflowException, OSError) as exc:
        raise ExportError(f"cannot download {what}: {exc}") from None


def _has_folder(client, run_id: str) -> bool:
    try:
        return any(Path(f.path).name == MODEL_JSON for f in client.list_artifacts(run_id, FOLDER_ARTIFACT))
    except Exception:  # noqa: BLE001 - an unreadable artifact store means: no folder we can use
        return False


def _logged_example(model_dir: Path, model):
    """The example rows saved with a logged model, if readable and of the right width."""
    try:
        from mlflow.models import Model

        example = Model.load(str(model_dir)).load_input_example(str(model_dir))
        return _typed_example(example, model)
    except Exception as exc:  # noqa: BLE001 - fall back to rebuilding the example
        _log.debug("no usable input example in %s: %s", model_dir, exc)
        return None


def _typed_example(example, model):
    """Example rows read back from JSON, with the column types the model's signature needs; None if unusable."""
    if example is None or not len(example):
        return None
    if model.encoder is not None:  # a table: raw columns by name (strings stay strings, None stays missing)
        from bpexp.tracking.model import raw_rows

        if sorted(map(str, example.columns)) != sorted(model.encoder.input_names):
            return None
        numeric = [c.name for c in model.encoder.columns if not hasattr(c, "categories")]  # raw_rows types them
        example = example.astype({c: "float64" for c in numeric})
        return raw_rows(model.encoder, example.assign(**{c.name: example[c.name].astype(object).map(
            lambda v: None if v is None or v != v else str(v)) for c in model.encoder.columns
            if hasattr(c, "categories")}))
    # Whole numbers read back from JSON may come as int64; the signature must say double.
    example = example.astype("float64")
    return example if example.shape[1] == model.n_inputs else None


def _folder_example(folder: Path, model):
    """``input_example.json`` (pandas "split" orient) next to ``model.json``, if a runner wrote one."""
    path = folder / EXAMPLE_JSON
    if not path.is_file():
        return None
    try:
        import pandas as pd

        return _typed_example(pd.read_json(path, orient="split"), model)
    except (ValueError, TypeError) as exc:
        _log.debug("unreadable %s: %s", path, exc)
        return None


def example_from_config(client, tracking_uri: str, run, model):
    """Example rows rebuilt from the run's ``config.yaml`` as the runner built them.

    Returns ``(example, origin, warning)``. When the data cannot be loaded again
    (a CSV moved, say), the rows are synthetic (the training mean, plus and minus
    one and two standard deviations) with generic names ``x0..``, and ``warning`` says so.
    """
    from bpexp.tracking.model import input_example

    try:
        import yaml

        from bpexp.config import load_experiment
        from bpexp.runner import load_data

        text = _load_text(client, run.info.run_id, "config.yaml")
        cfg, _ = load_experiment(yaml.safe_load(text))
        source = run.data.tags.get("mlflow.source.name")
        base = Path(source).resolve().parent if source and Path(source).exists() else Path.cwd()
        dataset, parts = load_data(cfg, base)
        X = parts.X_test if len(parts.y_test) else parts.X_val
        if model.encoder is None and dataset.n_features != model.n_inputs:
            raise ExportError(f"the dataset has {dataset.n_features} features, the model {model.n_inputs}")
        return input_example(model, X, dataset.feature_names), "rows of the run's dataset (from its config.yaml)", None
    except Exception as exc:  # noqa: BLE001 - any failure: fall back to synthetic rows
        reason = f"{type(exc).__name__}: {exc}"
    import pandas as pd

    if model.encoder is not None:
        raise ExportError(f"the run's table could not be loaded again ({reason}), and a table model's example "
                          "rows cannot be made up; export it where its data file is")
    prep = model.preprocessing
    if prep is not None and prep.fitted:
        mean, scale = prep.mean.astype(np.float64), prep.scale.astype(np.float64)
    else:
        mean, scale = np.zeros(model.n_inputs), np.ones(model.n_inputs)
    rows = np.stack([mean + k * scale for k in (0.0, -1.0, 1.0, -2.0, 2.0)])
    example = pd.DataFrame(rows, columns=[f"x{i}" for i in range(model.n_inputs)])
    warning = (f"could not rebuild the run's dataset ({reason}); the input example is synthetic and the features "
               f"are named x0..x{model.n_inputs - 1}")
    return example, "synthetic rows (training mean, +-1 and +-2 standard deviations)", warning


def _load_text(client, run_id: str, path: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, path, tmp)
        return Path(local).read_text()
