"""Logging a trained model to a run as an MLflow pyfunc model (models from code, no pickle)."""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from pathlib import Path

import numpy as np

PYFUNC_CODE = Path(__file__).resolve().parent.parent / "pyfunc_model.py"
PACKAGE_DIR = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def _tracking_uri(uri: str):
    """MLflow's model logging reads the global tracking URI; set it only for the duration."""
    import mlflow

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        if previous is None:
            mlflow.tracking._tracking_service.utils._tracking_uri = None
        else:
            mlflow.set_tracking_uri(previous)


def input_example(model, X: np.ndarray, feature_names: list[str], n_rows: int = 5):
    """The first rows of raw ``X`` as a DataFrame with the dataset's column names."""
    import pandas as pd

    names = feature_names if len(feature_names) == model.n_inputs else [f"x{i}" for i in range(model.n_inputs)]
    return pd.DataFrame(np.asarray(X[:n_rows], dtype=np.float64), columns=names)


def requirements() -> list[str]:
    """Pinned requirements of the logged model (bpexp itself travels in its code folder)."""
    import mlflow
    import pandas

    return [f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}", f"pandas=={pandas.__version__}"]


def log_pyfunc_model(tracking_uri: str, run_id: str, model, example) -> str:
    """Log ``model`` to ``run_id`` as ``model`` and return its URI.

    The native model folder is the artifact; ``pyfunc_model.py`` is the code;
    the bpexp package is copied along (``code_paths``) so the model loads where
    bpexp is not installed. Signature and input example come from ``example``.
    """
    import mlflow
    from mlflow.models import Model, infer_signature

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bpexp_model"
        model.save(folder)
        prediction = model.predict(example.to_numpy())
        with warnings.catch_warnings():
            # MLflow hints that integer columns cannot hold missing values: true, and
            # irrelevant for class labels, which are never missing.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            signature = infer_signature(example, _as_frame(prediction), params={"proba": False})
        with _tracking_uri(tracking_uri):
            info = Model.log(
                artifact_path=None,
                name="model",
                flavor=mlflow.pyfunc,
                run_id=run_id,
                python_model=str(PYFUNC_CODE),
                artifacts={"bpexp_model": str(folder)},
                code_paths=[str(PACKAGE_DIR)],
                signature=signature,
                input_example=example,
                pip_requirements=requirements(),
            )
    return info.model_uri


def _as_frame(prediction: np.ndarray):
    import pandas as pd

    if prediction.ndim == 1:
        return pd.DataFrame({"prediction": prediction})
    return pd.DataFrame(prediction, columns=[f"output_{i}" for i in range(prediction.shape[1])])
