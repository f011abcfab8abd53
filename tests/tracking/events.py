"""Reading TensorBoard event folders back, as TensorBoard does (its EventAccumulator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2


def load(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def curves(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag's (step, value) points, in the order TensorBoard shows them."""
    acc = load(folder)
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def f32(x: float) -> float:
    """A value as an event file stores a scalar (float32)."""
    return float(np.float32(x))


def hparams(folder: Path) -> dict[str, object]:
    """The settings of the folder's HPARAMS session."""
    content = load(folder).PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}
