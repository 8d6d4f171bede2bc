"""The experiment schema: what one tracked run is made of.

Every section forbids unknown keys, so a misspelled key is an error instead of
a silently ignored setting. Defaults here are the defaults of a run from a
config file; the Python API (:func:`bpexp.fit`) keeps everything off unless asked.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")  # as bpexp.data.files (config may not import data)
Activation = Literal["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "identity"]
Head = Literal["auto", "softmax+cross_entropy", "sigmoid+binary_cross_entropy", "identity+mse", "identity+huber"]
OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetConfig(Section):
    """Where the data comes from and how it is split."""

    name: str = Field(description="built-in dataset name, or a path to a .csv/.npz file (relative to the config)")
    target: str | None = Field(None, description="target column of a CSV file")
    task: Literal["classification", "regression"] | None = Field(None, description="override the guessed task")
    n_samples: PositiveInt | None = Field(None, description="size of a synthetic dataset")
    noise: float | None = Field(None, ge=0, description="noise of a synthetic dataset")
    val_size: float = Field(0.15, ge=0, lt=1, description="fraction of all rows used for validation")
    test_size: float = Field(0.15, ge=0, lt=1, description="fraction of all rows held out for the final test")
    standardize: bool = Field(True, description="standardize features with training-split statistics")
    numeric: list[str] = Field(default_factory=list, description="columns to treat as numbers (default: inferred)")
    categorical: list[str] = Field(default_factory=list,
                                   description="columns to one-hot encode (strings and booleans are by default; "
                                               "integer columns only when named here)")
    drop: list[str] = Field(default_factory=list, description="columns not to use (ids, free text)")
    encoding: str | None = Field(None, description="text encoding of a CSV file (default UTF-8, BOM or not)")
    drop_missing_target: bool = Field(False, description="drop rows whose target is missing instead of refusing")
    min_frequency: PositiveInt = Field(5, description="rarer categories share one 'other' column")
    max_categories: PositiveInt = Field(200, description="refuse a categorical column with more categories")

    @model_validator(mode="after")
    def _check(self):
        if self.val_size + self.test_size >= 1:
            raise ValueError(f"val_size + test_size must be < 1, got {self.val_size} + {self.test_size}")
        if self.name.lower().endswith(TABLE_SUFFIXES) and not self.target:
            raise ValueError("a table dataset (CSV, Parquet) needs 'target': the name of its label column")
        for role in ("numeric", "categorical", "drop"):
            names = getattr(self, role)
            if len(set(names)) != len(names):
                raise ValueError(f"dataset.{role} names a column twice: {names}")
        if self.encoding is not None:
            import codecs

            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValueError(f"unknown text encoding {self.encoding!r} (e.g. 'utf-8', 'latin-1')") from None
        return self


class ModelConfig(Section):
    """The network: hidden widths, activation, dropout, output head."""

    hidden: list[PositiveInt] = Field(default_factory=lambda: [64], description="hidden layer widths")
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)
    head: Head = Field("auto", description="output activation + loss; auto picks from the task")
    dtype: Literal["float32", "float64"] = "float32"


class ConstantSchedule(Section):
    name: Literal["constant"] = "constant"


class StepSchedule(Section):
    name: Literal["step"]
    step_size: PositiveInt = 10
    gamma: float = Field(0.1, gt=0, le=1)


class ExponentialSchedule(Section):
    name: Literal["exponential"]
    gamma: float = Field(0.95, gt=0, le=1)


class CosineSchedule(Section):
    name: Literal["cosine"]
    warmup_epochs: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0)


class PlateauSchedule(Section):
    name: Literal["plateau"]
    monitor: str = "val_loss"
    factor: float = Field(0.5, gt=0, le=1)
    patience: int = Field(5, ge=0)
    min_delta: float = Field(0.0, ge=0)
    min_lr: float = Field(0.0, ge=0)


ScheduleConfig = Annotated[
    ConstantSchedule | StepSchedule | ExponentialSchedule | CosineSchedule | PlateauSchedule,
    Field(discriminator="name"),
]


class OptimizerConfig(Section):
    """The gradient step: rule, learning rate, regularization, schedule, clipping."""

    name: OptimizerName = "adam"
    lr: float = Field(1e-3, gt=0, le=10)
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd only")
    nesterov: bool = Field(False, description="sgd only, needs momentum > 0")
    weight_decay: float = Field(0.0, ge=0, description="decoupled for adamw, an L2 penalty for the others")
    clip_norm: float | None = Field(None, gt=0, description="clip each batch gradient to this global norm")
    schedule: ScheduleConfig = Field(default_factory=ConstantSchedule)

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule_shorthand(cls, value: Any):
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self):
        if self.name != "sgd" and (self.momentum or self.nesterov):
            raise ValueError(f"momentum/nesterov apply to the sgd optimizer only, not {self.name!r}")
        if self.nesterov and not self.momentum:
            raise ValueError("nesterov needs momentum > 0")
        return self


class EarlyStoppingConfig(Section):
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: PositiveInt = 10
    min_delta: float = Field(0.0, ge=0)
    restore_best_weights: bool = True


class TrainingConfig(Section):
    epochs: int = Field(100, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1)
    early_stopping: EarlyStoppingConfig | None = None

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _early_stopping_shorthand(cls, value: Any):
        if value is True:
            return {}
        if value is False:
            return None
        return value


class TrackingConfig(Section):
    experiment: str | None = Field(None, description="MLflow experiment (default: the config file's name)")
    run_name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class ExperimentConfig(Section):
    """One tracked run: dataset, seed, model, optimizer, training, tracking."""

    dataset: DatasetConfig
    seed: int = Field(0, ge=0, description="seeds the split, the initial weights, shuffling and dropout")
    model: ModelConfig = Field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    def flat(self) -> dict[str, Any]:
        """The fully resolved config as ``{"model.hidden": [64], ...}`` (defaults included)."""
        return flatten(self.model_dump(mode="json"))


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and empty dicts stay leaves."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out
