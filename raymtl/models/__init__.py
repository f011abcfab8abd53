"""The networks (baseline, MTL, MTL-IC, fusion) and their checkpoints."""

from raymtl.models.checkpoint import load_model, save_model
from raymtl.models.networks import (
    BUILDERS,
    FusionNet,
    MultiTaskNet,
    SingleTaskNet,
    build_model,
    count_parameters,
    trainable_parameters,
)

KINDS = tuple(BUILDERS)

__all__ = [
    "KINDS",
    "FusionNet",
    "MultiTaskNet",
    "SingleTaskNet",
    "build_model",
    "count_parameters",
    "load_model",
    "save_model",
    "trainable_parameters",
]
