"""MLflow pyfunc wrapper of a bpexp model folder, logged as *models from code*.

MLflow copies this file into the logged model and runs it on load; nothing is
pickled. The model's weights travel as the artifact ``bpexp_model`` (the native
``model.json`` + ``weights.npz`` folder).

``predict`` returns the user's class labels (or regression values); with
``params={"proba": True}`` it returns one probability column per class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class BpexpPyfuncModel(PythonModel):
    """Serves a bpexp MLP: raw feature rows in, labels (or probabilities) out."""

    def load_context(self, context) -> None:
        from bpexp.nn.serialization import load_model_folder

        self.model = load_model_folder(context.artifacts["bpexp_model"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        X = _features(model_input, self.model.n_inputs)
        if params and params.get("proba"):
            proba = self.model.predict_proba(X)
            return pd.DataFrame(proba, columns=[str(c) for c in self.model.classes_])
        pred = self.model.predict(X)
        if pred.ndim == 1:
            return pd.DataFrame({"prediction": pred})
        return pd.DataFrame(pred, columns=[f"output_{i}" for i in range(pred.shape[1])])


def _features(model_input, n_inputs: int) -> np.ndarray:
    """Rows of numbers from a DataFrame (or array), with errors naming the column or row."""
    from bpexp.errors import InvalidInputError

    if isinstance(model_input, pd.DataFrame):
        if model_input.shape[1] != n_inputs:
            raise InvalidInputError(
                f"got {model_input.shape[1]} input columns, the model expects {n_inputs}"
            )
        for col in model_input.columns:
            if not pd.api.types.is_numeric_dtype(model_input[col]):
                converted = pd.to_numeric(model_input[col], errors="coerce")
                bad = converted.isna() & model_input[col].notna()
                if bad.any():
                    row = int(np.flatnonzero(bad.to_numpy())[0])
                    raise InvalidInputError(
                        f"column {col!r} row {row}: {model_input[col].iloc[row]!r} is not a number"
                    )
        return model_input.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(model_input, dtype=np.float64)


set_model(BpexpPyfuncModel())
