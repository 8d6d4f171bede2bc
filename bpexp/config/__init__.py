"""Experiment and sweep configs: schema, YAML loading, ``--set`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bpexp.config.experiment import ExperimentConfig, flatten
from bpexp.config.loading import ConfigError, apply_overrides, parse_override, read_yaml, validate
from bpexp.config.sweep import Sweep, SweepConfig, load_sweep


def load_experiment(source: str | Path | dict | ExperimentConfig, overrides: dict[str, Any] | None = None,
                    ) -> tuple[ExperimentConfig, Path]:
    """Load and validate an experiment config.

    Parameters
    ----------
    source : path, dict or ExperimentConfig
        A YAML file, an already parsed mapping, or a config object.
    overrides : dict, optional
        ``{"optimizer.lr": 0.01, ...}`` applied before validation.

    Returns
    -------
    config : ExperimentConfig
    base_dir : Path
        The directory relative dataset paths are resolved against (the config
        file's directory, or the current directory).
    """
    overrides = dict(overrides or {})
    if isinstance(source, ExperimentConfig):
        if not overrides:
            return source, Path.cwd()
        data, where, base = source.model_dump(mode="json"), "config", Path.cwd()
    elif isinstance(source, dict):
        data, where, base = source, "config", Path.cwd()
    else:
        path = Path(source)
        data, where, base = read_yaml(path), str(path), path.resolve().parent
    data = apply_overrides(data, overrides)
    tracking = data.get("tracking") or {}
    if isinstance(source, (str, Path)) and isinstance(tracking, dict):
        # The experiment is named after the config file unless the file names one.
        data["tracking"] = {"experiment": Path(source).stem, **tracking}
    config = validate(ExperimentConfig, data, source=where, overridden=set(overrides))
    return config, base


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["a.b=1", "c=[1,2]"]`` -> ``{"a.b": 1, "c": [1, 2]}``."""
    return dict(parse_override(item) for item in items)


__all__ = ["ConfigError", "ExperimentConfig", "Sweep", "SweepConfig", "flatten", "load_experiment", "load_sweep",
           "parse_overrides"]
