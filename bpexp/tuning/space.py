"""From a sweep config to Optuna objects: suggested config overrides, samplers, pruners."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import optuna

from bpexp.config.sweep import ArchitectureParam, CategoricalParam, FloatParam, IntParam, SamplerConfig, Sweep
from bpexp.errors import InvalidInputError


def suggest(trial: optuna.Trial, space: dict) -> dict[str, Any]:
    """Ask ``trial`` for every space entry; return config overrides ``{"optimizer.lr": 0.003, ...}``.

    Optuna param names are the config paths, except the architecture entry,
    which becomes ``n_layers`` and ``n_units_l0``, ``n_units_l1``, ... (a
    conditional space: ``n_units_l2`` only exists in trials with 3+ layers).
    """
    overrides: dict[str, Any] = {}
    for key, p in space.items():
        if isinstance(p, IntParam):
            overrides[key] = trial.suggest_int(key, p.low, p.high, step=p.step, log=p.log)
        elif isinstance(p, FloatParam):
            overrides[key] = trial.suggest_float(key, p.low, p.high, step=p.step, log=p.log)
        elif isinstance(p, CategoricalParam):
            overrides[key] = trial.suggest_categorical(key, p.choices)
        elif isinstance(p, ArchitectureParam):
            n_layers = trial.suggest_int("n_layers", p.n_layers.low, p.n_layers.high)
            u = p.units
            overrides[key] = [trial.suggest_int(f"n_units_l{i}", u.low, u.high, step=u.step, log=u.log)
                              for i in range(n_layers)]
        else:  # pragma: no cover - the schema admits nothing else
            raise TypeError(f"unknown space entry {p!r}")
    return overrides


def params_to_overrides(params: dict[str, Any], space: dict) -> dict[str, Any]:
    """The config overrides a finished trial's ``params`` stand for (inverse of :func:`suggest`)."""
    overrides = {k: v for k, v in params.items() if k in space}
    for key, p in space.items():
        if isinstance(p, ArchitectureParam) and "n_layers" in params:
            overrides[key] = [params[f"n_units_l{i}"] for i in range(params["n_layers"])]
    return overrides


def worker_seed(base_seed: int, n_existing_trials: int, worker_index: int) -> int:
    """A distinct, reproducible sampler seed per worker and per invocation.

    Mixing in the number of trials the study had when this invocation started
    keeps a resumed sweep from replaying the random start-up samples of the first one.
    """
    return int(np.random.SeedSequence([base_seed, n_existing_trials, worker_index]).generate_state(1)[0])


def make_sampler(cfg: SamplerConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded.

    TPE runs multivariate with ``group=True`` (the architecture space is conditional:
    each group of params that occur together gets its own model) and with a
    constant liar, so parallel workers do not all sample next to the same good point.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if cfg.name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.n_startup_trials, multivariate=True,
                                              group=True, constant_liar=True)
        if cfg.name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        try:
            import torch  # noqa: F401 - GPSampler's dependency; fail early with a clear message
        except ImportError:
            raise InvalidInputError("sampler gp needs PyTorch (pip install torch); use tpe or random") from None
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=cfg.n_startup_trials)


def make_pruner(sweep: Sweep) -> optuna.pruners.BasePruner:
    """The configured pruner; its maximum resource is the sweep's epoch cap."""
    cfg = sweep.config.pruner
    if cfg.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=cfg.min_resource, max_resource=sweep.max_epochs,
                                              reduction_factor=cfg.reduction_factor)
    if cfg.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=cfg.min_resource,
                                                      reduction_factor=cfg.reduction_factor)
    if cfg.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.n_startup_trials, n_warmup_steps=cfg.n_warmup_steps)
    return optuna.pruners.NopPruner()
