"""The NumPy-only neural-network core: layers, heads, optimizers, schedules, gradcheck."""

from bpexp.nn.activations import ACTIVATIONS, get_activation
from bpexp.nn.gradcheck import gradcheck
from bpexp.nn.heads import HEADS, get_head
from bpexp.nn.model import MLP
from bpexp.nn.optimizers import OPTIMIZERS, SGD, Adam, AdamW, Optimizer, RMSprop, get_optimizer
from bpexp.nn.preprocessing import Standardizer
from bpexp.nn.schedules import (
    SCHEDULES,
    Constant,
    CosineWithWarmup,
    ExponentialDecay,
    ReduceOnPlateau,
    Schedule,
    StepDecay,
    get_schedule,
)
from bpexp.nn.serialization import load_model_folder, save_model

__all__ = [
    "ACTIVATIONS", "HEADS", "MLP", "OPTIMIZERS", "SCHEDULES", "SGD", "Adam", "AdamW", "Constant",
    "CosineWithWarmup", "ExponentialDecay", "Optimizer", "RMSprop", "ReduceOnPlateau", "Schedule",
    "Standardizer", "StepDecay", "get_activation", "get_head", "get_optimizer", "get_schedule",
    "gradcheck", "load_model_folder", "save_model",
]
