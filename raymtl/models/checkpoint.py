"""Save a network with everything needed to rebuild it; load it back with nothing else.

A checkpoint is one `torch.save`d dict of plain values (loadable with weights_only=True):

    format        "raymtl-model/1"
    kind, task    as given to `build_model` (task may be None for "mtl")
    n_classes     {"asc": 15, "aec": 50}
    model_config  dataclasses.asdict(ModelConfig)
    state_dict    {name: tensor}, on the CPU
    extra         the caller's dict of plain values (epoch, metrics, ...)

Like nanoGPT's `model_args`, so `predict` can rebuild the network from the file alone.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections import OrderedDict
from typing import IO, Any, Mapping, Union

import torch
from torch import nn

from raymtl import storage
from raymtl.config import ModelConfig
from raymtl.errors import ConfigError, InputFileError
from raymtl.models.networks import build_model

FORMAT = "raymtl-model/1"

PathOrFile = Union[str, os.PathLike, IO[bytes]]

_PLAIN_SCALARS = (type(None), bool, int, float, str)


def save_model(
    path_or_file: PathOrFile,
    model: nn.Module,
    *,
    kind: str,
    task: str | None,
    cfg: ModelConfig,
    n_classes: Mapping[str, int],
    extra: dict | None = None,
) -> None:
    """Write `model` and the settings that rebuild it. A path is written atomically
    (`raymtl.storage.atomic_local_file`, synced to disk); a file object is written as is."""
    model = _unwrap(model)
    n_classes = {str(t): int(p) for t, p in n_classes.items()}
    _check_rebuilds(model, kind, task, cfg, n_classes)
    extra = {} if extra is None else extra
    _check_plain(extra, "extra")
    checkpoint = {
        "format": FORMAT,
        "kind": kind,
        "task": task,
        "n_classes": n_classes,
        "model_config": dataclasses.asdict(cfg),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra,
    }
    if not isinstance(path_or_file, (str, os.PathLike)):
        torch.save(checkpoint, path_or_file)
        return
    with storage.atomic_local_file(path_or_file, fsync=True) as tmp:
        torch.save(checkpoint, tmp)


def load_model(
    path_or_file: PathOrFile, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a network saved by `save_model`. Returns (model in eval mode, meta) with meta
    = {"kind", "task", "n_classes", "config" (a ModelConfig), "extra"}. A fusion network comes
    back frozen as far as it was when saved. A file that is not such a checkpoint raises
    InputFileError."""
    name = _name(path_or_file)
    try:
        checkpoint = torch.load(path_or_file, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise InputFileError(name, "no such checkpoint file") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise InputFileError(name, f"not a readable torch checkpoint ({exc})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint)
        raise InputFileError(name, f"not a raymtl model checkpoint (format {found!r})")
    try:
        cfg = _model_config(checkpoint["model_config"])
        kind, task, n_classes = checkpoint["kind"], checkpoint["task"], checkpoint["n_classes"]
        model = build_model(kind, cfg, n_classes, task)
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, ConfigError, RuntimeError) as exc:
        raise InputFileError(name, f"cannot rebuild the model: {exc}") from None
    meta = {
        "kind": kind,
        "task": task,
        "n_classes": dict(n_classes),
        "config": cfg,
        "extra": checkpoint.get("extra", {}),
    }
    return model.eval(), meta


def _unwrap(model: nn.Module) -> nn.Module:
    """The network inside DistributedDataParallel (`.module`) or torch.compile (`._orig_mod`)."""
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            return _unwrap(inner)
    return model


def _check_rebuilds(
    model: nn.Module, kind: str, task: str | None, cfg: ModelConfig, n_classes: dict[str, int]
) -> None:
    """The metadata must rebuild this very network, or the checkpoint would load wrong (or not
    at all). Build the reference on the meta device: no memory, no initialisation."""
    with torch.device("meta"):
        reference = build_model(kind, cfg, n_classes, task)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    # repr covers the module tree, layer sizes, alpha and task.
    if type(reference) is not type(model) or shapes != expected or repr(reference) != repr(model):
        raise ValueError(
            f"save_model: kind={kind!r}, task={task!r}, n_classes={n_classes} and the model "
            f"config do not describe the given {type(model).__name__}"
        )


def _check_plain(value: Any, where: str) -> None:
    """Only what torch.load(weights_only=True) reads back: tensors, dicts, lists, tuples, str,
    int, float, bool, None. Exact types: a numpy float is a float subclass but would not load."""
    if type(value) in _PLAIN_SCALARS or isinstance(value, torch.Tensor):
        return
    if type(value) in (dict, OrderedDict):
        for k, v in value.items():
            if type(k) not in (str, int):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; use str or int")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if type(value) in (list, tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__name__}; a checkpoint holds only tensors, dicts, lists, "
        "str, int, float, bool and None"
    )


def _model_config(values: Mapping[str, Any]) -> ModelConfig:
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown model settings {sorted(unknown)}; valid: {sorted(names)}")
    return ModelConfig(**values)


def _name(path_or_file: PathOrFile) -> str:
    if isinstance(path_or_file, (str, os.PathLike)):
        return os.fspath(path_or_file)
    return str(getattr(path_or_file, "name", "<checkpoint file object>"))
