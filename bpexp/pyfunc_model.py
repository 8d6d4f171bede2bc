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
generic "unexpected error" there.)
"""

from __future__ import annotations

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel


class BpexpPyfuncModel(PythonModel):
    """Serves a bpexp MLP: raw feature rows in, labels (or probabilities) out."""

    def load_context(self, context) -> None:
        from bpexp.nn.serialization import load_model_folder

        self.model = load_model_folder(context.artifacts["bpexp_model"])

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
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        if pred.ndim == 1:
            return pd.DataFrame({"prediction": pred})
        return pd.DataFrame(pred, columns=[f"output_{i}" for i in range(pred.shape[1])])


set_model(BpexpPyfuncModel())
