"""The sweep schema: a base experiment, a search space and study settings.

A sweep file (``experiments/*-sweep.yaml``) looks like::

    base: digits.yaml              # an experiment file (relative to this file) or an inline mapping
    fixed: {training.epochs: 30}   # overrides applied to the base for every trial
    space:
      optimizer.lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
      training.batch_size: {type: categorical, choices: [16, 32, 64]}
      model.hidden: {type: architecture, n_layers: {low: 1, high: 3}, units: {low: 16, high: 256, log: true}}
    objective: {metric: val_accuracy}          # direction from the name unless given
    sampler: tpe                               # or {name: tpe, seed: 0, n_startup_trials: 10}
    pruner: hyperband                          # median, successive_halving, none
    study: {name: digits-sweep, n_trials: 40, workers: 1}

Space keys are experiment config paths (the ``--set`` paths of ``bpexp train``). Everything is
checked before a study or run is created: unknown keys, empty choices, ``low > high``, log
ranges with a non-positive bound, and every bound and choice against the experiment schema
itself (a dropout range reaching 1 fails here, not in trial 17).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator

from bpexp.config.experiment import TABLE_SUFFIXES, ExperimentConfig
from bpexp.config.loading import ConfigError, _describe, apply_overrides, read_yaml, validate

#: Validation metrics a sweep can optimize (keys of the per-epoch logs).
OBJECTIVE_METRICS = ("val_loss", "val_accuracy", "val_f1", "val_log_loss", "val_r2", "val_mse", "val_mae")
#: The metrics each task logs per epoch (the objective must be one of them).
TASK_METRICS = {
    "classification": ("val_loss", "val_accuracy", "val_f1", "val_log_loss"),
    "multilabel": ("val_loss", "val_accuracy", "val_f1", "val_log_loss"),
    "regression": ("val_loss", "val_r2", "val_mse", "val_mae"),
}
DEFAULT_METRIC = {"classification": "val_accuracy", "multilabel": "val_accuracy", "regression": "val_r2"}
#: Space entries that describe the network's depth and widths; they set ``model.hidden``.
ARCHITECTURE_KEY = "model.hidden"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# ------------------------------------------------------------------------------ space entries
class IntParam(_Section):
    """An integer, optionally on a log scale (``trial.suggest_int``)."""

    type: Literal["int"]
    low: int
    high: int
    step: PositiveInt = 1
    log: bool = False

    @model_validator(mode="after")
    def _check(self):
        _check_int_range(self.low, self.high, self.log, self.step)
        return self


class FloatParam(_Section):
    """A float, optionally on a log scale or discretized by ``step`` (``trial.suggest_float``)."""

    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _check(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"low and high must be finite numbers, got low={self.low}, high={self.high}")
        _check_range(self.low, self.high, self.log)
        if self.log and self.step is not None:
            raise ValueError("log: true cannot be combined with step")
        return self


Choice = str | bool | int | float | None


class CategoricalParam(_Section):
    """One of a fixed list of values (``trial.suggest_categorical``); the list must not change between runs."""

    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _distinct(cls, value):
        if len({repr(v) for v in value}) != len(value):
            raise ValueError(f"choices must be distinct, got {value}")
        return value


class UnitsRange(_Section):
    low: PositiveInt
    high: PositiveInt
    log: bool = False
    step: PositiveInt = 1

    @model_validator(mode="after")
    def _check(self):
        _check_int_range(self.low, self.high, self.log, self.step)
        return self


class LayersRange(_Section):
    low: PositiveInt
    high: PositiveInt

    @model_validator(mode="after")
    def _check(self):
        _check_range(self.low, self.high, False)
        return self


class ArchitectureParam(_Section):
    """Depth and widths of the hidden layers: Optuna params ``n_layers`` and ``n_units_l{i}``.

    ``n_units_l2`` exists only in trials with three or more layers: a conditional
    space, which the TPE sampler handles with ``group=True``.
    """

    type: Literal["architecture"]
    n_layers: LayersRange
    units: UnitsRange


PARAM_TYPES: dict[str, type[_Section]] = {"int": IntParam, "float": FloatParam, "categorical": CategoricalParam,
                                          "architecture": ArchitectureParam}
SpaceParam = IntParam | FloatParam | CategoricalParam | ArchitectureParam


def _check_range(low, high, log: bool) -> None:
    if low > high:
        raise ValueError(f"low ({low}) must be <= high ({high})")
    if log and low <= 0:
        raise ValueError(f"a log range needs bounds > 0, got low={low}")


def _check_int_range(low: int, high: int, log: bool, step: int) -> None:
    _check_range(low, high, log)
    if log and step != 1:
        raise ValueError("log: true cannot be combined with a step other than 1")


# ------------------------------------------------------------------------------ study settings
class ObjectiveConfig(_Section):
    metric: str | None = Field(None, description="validation metric; default val_accuracy, or val_r2 for regression")
    direction: Literal["auto", "maximize", "minimize"] = "auto"

    @field_validator("metric")
    @classmethod
    def _known(cls, value):
        if value is not None and value not in OBJECTIVE_METRICS:
            hint = difflib.get_close_matches(value, OBJECTIVE_METRICS, n=1)
            raise ValueError(f"unknown objective metric {value!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + f"; expected one of {list(OBJECTIVE_METRICS)}")
        return value


class SamplerConfig(_Section):
    name: Literal["tpe", "random", "gp"] = "tpe"
    seed: int = Field(0, ge=0, description="each worker samples from its own stream derived from this seed")
    n_startup_trials: int = Field(10, ge=0, description="random trials before tpe/gp start modelling")


class PrunerConfig(_Section):
    name: Literal["hyperband", "median", "successive_halving", "none"] = "hyperband"
    min_resource: PositiveInt = Field(1, description="hyperband/successive_halving: epochs before the first rung")
    reduction_factor: int = Field(3, ge=2, description="hyperband/successive_halving")
    n_startup_trials: int = Field(5, ge=0, description="median: trials before pruning starts")
    n_warmup_steps: int = Field(0, ge=0, description="median: epochs before a trial can be pruned")

    @model_validator(mode="after")
    def _applicable(self):
        applies = {"min_resource": ("hyperband", "successive_halving"),
                   "reduction_factor": ("hyperband", "successive_halving"),
                   "n_startup_trials": ("median",), "n_warmup_steps": ("median",)}
        for key in sorted(self.model_fields_set & set(applies)):
            if self.name not in applies[key]:
                raise ValueError(f"{key} applies to the {' and '.join(applies[key])} pruner, not {self.name!r}")
        return self


class StudyConfig(_Section):
    name: str | None = Field(None, min_length=1, description="Optuna study name (default: the file name)")
    experiment: str | None = Field(None, description="MLflow experiment (default: the base experiment's)")
    n_trials: int | None = Field(20, ge=0, description="trials one invocation adds; 0 or null: until timeout")
    timeout: float | None = Field(None, gt=0, description="seconds after which no new trial starts")
    workers: PositiveInt = 1
    storage: str | None = Field(None, description="Optuna storage URL or journal file (default: mlruns/ journal)")
    heartbeat_interval: PositiveInt = Field(2, description="seconds between a running trial's heartbeats")
    grace_period: PositiveInt | None = Field(None, description="seconds without heartbeat before a trial is failed "
                                                               "(default 5 x heartbeat_interval)")
    retry_failed: int = Field(0, ge=0, description="times a trial whose worker died is run again with the same "
                                                   "params (Optuna's RetryFailedTrialCallback); 0: never")

    @model_validator(mode="after")
    def _check(self):
        if self.grace_period is not None and self.grace_period <= self.heartbeat_interval:
            raise ValueError(f"grace_period ({self.grace_period}) must be longer than heartbeat_interval "
                             f"({self.heartbeat_interval})")
        return self


class SweepConfig(_Section):
    """A whole sweep file (space entries are kept raw here and checked by :func:`load_sweep`)."""

    base: str | dict[str, Any] = Field(description="experiment file (relative to the sweep file) or inline mapping")
    fixed: dict[str, Any] = Field(default_factory=dict, description="config overrides for every trial")
    space: dict[str, dict[str, Any]] = Field(min_length=1)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    study: StudyConfig = Field(default_factory=StudyConfig)

    @field_validator("sampler", "pruner", mode="before")
    @classmethod
    def _shorthand(cls, value):
        return {"name": value} if isinstance(value, str) else value


# ------------------------------------------------------------------------------ loaded sweep
@dataclass
class Sweep:
    """A validated sweep, ready to run.

    Attributes
    ----------
    config : SweepConfig
    space : dict
        Config path -> typed space entry (:class:`IntParam`, ...), in file order.
    base : ExperimentConfig
        The base experiment with ``fixed`` applied (what a trial starts from).
    base_data : dict
        The same as a plain mapping (relative dataset paths made absolute): trials
        validate ``base_data`` plus their suggested values.
    source : Path or None
        The sweep file.
    study_name, experiment : str
    """

    config: SweepConfig
    space: dict[str, SpaceParam]
    base: ExperimentConfig
    base_data: dict[str, Any]
    source: Path | None
    study_name: str
    experiment: str
    base_source: str = field(default="")

    @property
    def max_epochs(self) -> int:
        """The most epochs a trial can run (the pruners' maximum resource)."""
        epochs = self.space.get("training.epochs")
        if isinstance(epochs, IntParam):
            return epochs.high
        if isinstance(epochs, CategoricalParam):
            return max(int(c) for c in epochs.choices)
        return self.base.training.epochs


def load_sweep(source: str | Path | dict | Sweep, overrides: dict[str, Any] | None = None) -> Sweep:
    """Load and validate a sweep file (or mapping); raise :class:`ConfigError` naming every problem.

    Parameters
    ----------
    source : path, dict or Sweep
    overrides : dict, optional
        ``{"study.n_trials": 5}``-style overrides of the sweep file itself.
    """
    if isinstance(source, Sweep) and not overrides:
        return source
    if isinstance(source, Sweep):
        source = source.config.model_dump(mode="json")
    if isinstance(source, dict):
        data, where, path = source, "sweep config", None
    else:
        path = Path(source)
        data, where = read_yaml(path), str(path)
    data = apply_overrides(data, overrides or {})
    config = validate(SweepConfig, data, source=where, overridden=set(overrides or {}))
    base_dir = path.resolve().parent if path is not None else Path.cwd()
    base_data, base_name, base_source = _base_mapping(config.base, base_dir, where)
    # The base (with ``fixed``) is validated like an experiment file: the error names its file and key.
    base = validate(ExperimentConfig, apply_overrides(base_data, config.fixed), source=base_source)
    problems: list[str] = []
    space = {key: entry for key, raw in config.space.items() if (entry := _space_entry(key, raw, problems))}
    _check_space_against_base(space, config.fixed, base, base_data, problems)
    if problems:
        raise ConfigError(f"{where}: invalid sweep config\n" + "\n".join(f"  - {p}" for p in problems))
    study_name = config.study.name or (path.stem if path is not None else "sweep")
    experiment = config.study.experiment or base.tracking.experiment or base_name or study_name
    return Sweep(config, space, base, apply_overrides(base_data, config.fixed), path, study_name, experiment,
                 base_source)


def _base_mapping(base: str | dict, base_dir: Path, where: str) -> tuple[dict, str | None, str]:
    """The base experiment as a mapping, its default experiment name and where it came from."""
    if isinstance(base, str):
        path = Path(base) if Path(base).is_absolute() else base_dir / base
        if not path.is_file():
            raise ConfigError(f"{where}: base: no such experiment file {str(path)!r}")
        data, name, origin, data_dir = read_yaml(path), path.stem, str(path), path.resolve().parent
    else:
        data, name, origin, data_dir = dict(base), None, f"{where} (base)", base_dir
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("name"), str):
        ds_name = dataset["name"]
        if ds_name.lower().endswith((*TABLE_SUFFIXES, ".npz")) and not Path(ds_name).is_absolute():
            # Trials validate a mapping (no file to be relative to): make the data path absolute now.
            data = {**data, "dataset": {**dataset, "name": str((data_dir / ds_name).resolve())}}
    return data, name, origin


def _space_entry(key: str, raw: dict, problems: list[str]) -> SpaceParam | None:
    kind = raw.get("type")
    cls = PARAM_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        problems.append(f"space.{key}.type: expected one of {list(PARAM_TYPES)}, got {kind!r}")
        return None
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            line = _describe(err, cls, raw, set()).replace("Value error, ", "")
            problems.append(f"space.{key}: {line[len('(top level): '):]}" if line.startswith("(top level)")
                            else f"space.{key}.{line}")
        return None


def _check_space_against_base(space: dict[str, SpaceParam], fixed: dict, base: ExperimentConfig, base_data: dict,
                              problems: list[str]) -> None:
    flat = base.flat()
    for key, entry in space.items():
        if key in fixed:
            problems.append(f"space.{key}: also set in fixed; a key is either searched or fixed")
            continue
        if key == ARCHITECTURE_KEY and not isinstance(entry, ArchitectureParam):
            problems.append(f"space.{key}: search the hidden layers with type: architecture "
                            "(n_layers: {low, high}, units: {low, high, log})")
            continue
        if isinstance(entry, ArchitectureParam) and key != ARCHITECTURE_KEY:
            problems.append(f"space.{key}: type architecture sets {ARCHITECTURE_KEY} only")
            continue
        if key not in flat:
            hint = difflib.get_close_matches(key, list(flat), n=1)
            problems.append(f"space.{key}: not a setting of the base experiment"
                            + (f" (did you mean {hint[0]!r}?)" if hint else "")
                            + "; space keys are experiment config paths such as optimizer.lr")
            continue
        for label, value in _extremes(entry):
            message = _invalid_value(base_data, fixed, key, value)
            if message:
                problems.append(f"space.{key}: {label}={value!r} is not a valid {key}: {message}")
                break


def _extremes(entry: SpaceParam) -> list[tuple[str, Any]]:
    """Values that must all be valid settings for the whole range to be."""
    if isinstance(entry, CategoricalParam):
        return [("choice", c) for c in entry.choices]
    if isinstance(entry, ArchitectureParam):
        return [("n_layers.low/units.low", [entry.units.low] * entry.n_layers.low),
                ("n_layers.high/units.high", [entry.units.high] * entry.n_layers.high)]
    return [("low", entry.low), ("high", entry.high)]


def _invalid_value(base_data: dict, fixed: dict, key: str, value: Any) -> str | None:
    try:
        ExperimentConfig.model_validate(apply_overrides(base_data, {**fixed, key: value}))
    except ValidationError as exc:
        return "; ".join(err["msg"] for err in exc.errors())
    return None


def check_objective_metric(sweep: Sweep, task: str, dataset_name: str) -> str:
    """The objective metric for a dataset of ``task`` (the default when unset), or a ConfigError."""
    metric = sweep.config.objective.metric or DEFAULT_METRIC[task]
    allowed = TASK_METRICS[task]
    if metric not in allowed:
        where = str(sweep.source) if sweep.source else "sweep config"
        raise ConfigError(f"{where}: objective.metric: {metric!r} is not logged for the {task} dataset "
                          f"{dataset_name!r}; expected one of {list(allowed)}")
    return metric
