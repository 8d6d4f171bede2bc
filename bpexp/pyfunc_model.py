"""MLflow pyfunc wrapper of a bpexp model folder, logged as *models from code*.

MLflow copies this file into the logged model and runs it on load; nothing is
pickled. The model's weights travel as the artifact ``bpexp_model`` (the native
``model.json`` + ``weights.npz`` folder, read with ``allow_pickle=False``).

``predict`` returns the user's class labels (or regression values) in a
``prediction`` column; with ``params={"proba": True}`` it returns one
probability column per class instead.

Bad input (missing columns, a value that is not a number, NaN or inf) raises an
``MlflowException`` with error code ``INVALID_PARAMETER_VALUE`` whose message
names the column and the row: ``mlflow models serve`` answers it with HTTP 400
and that message, and goes on serving. (Any other exception type would become a
generic "unexpected error" there.) In process rows are counted from 0, as the
DataFrame is indexed; inside a scoring server (which sets
``_MLFLOW_IS_IN_SERVING_ENVIRONMENT``) as in a CSV file, as ``bpexp predict`` does.
"""

from __future__ import annotations

import os

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel


class BpexpPyfuncModel(PythonModel):
    """Serves a bpexp MLP: raw feature rows in, labels (or probabilities) out."""

    def load_context(self, context) -> None:
        from pathlib import Path

        from bpexp.errors import ModelFormatError
        from bpexp.nn.serialization import load_model_folder

        # The same containment rule as bpexp.load_model: MLflow joins the artifact path from
        # MLmodel to the model directory, so an absolute or "../" path, or a symlinked folder,
        # would load some other model without a word. This file sits at the model's root.
        model_dir = Path(__file__).resolve().parent
        folder = Path(context.artifacts["bpexp_model"])
        if not folder.resolve().is_relative_to(model_dir):
            raise ModelFormatError(f"the model's bpexp_model artifact {str(folder)!r} is outside the model "
                                   f"directory {str(model_dir)!r} (a link or an absolute path); refused")
        self.model = load_model_folder(folder)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from bpexp.errors import InvalidInputError
        from bpexp.export.inputs import features_from_frame

        try:
            if self.model.encoder is not None:  # a table: raw rows by column name, checked by the model
                X = model_input
            else:
                # MLflow's signature enforcement has already put the named columns in the
                # signature's order (and dropped unknown ones), so columns are taken by position.
                X = features_from_frame(model_input, self.model.n_inputs)
            if params and params.get("proba"):
                proba = self.model.predict_proba(X)
                return pd.DataFrame(proba, columns=[str(c) for c in self.model.classes_])
            pred = self.model.predict(X)
        except InvalidInputError as exc:
            message = str(exc)
            if os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "").lower() == "true":
                # Set by MLflow's scoring server: number the rows as bpexp predict numbers a CSV
                # file's (the first data row is row 2), not from 0 as a DataFrame is indexed.
                from bpexp.export.inputs import served_rows_problem

                message = served_rows_problem(self.model, model_input) or message
            raise MlflowException(message, error_code=INVALID_PARAMETER_VALUE) from None
        if pred.ndim == 1:
            return pd.DataFrame({"prediction": pred})
        return pd.DataFrame(pred, columns=[f"output_{i}" for i in range(pred.shape[1])])


set_model(BpexpPyfuncModel())
