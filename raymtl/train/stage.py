"""A stage of a Train run: one trial's coordinates, settings and inputs (`StageConfig`), and
the networks it trains, built and restored from their stage-1 model files. Shared by the
training loop (raymtl.train.loop) and the trial writer (raymtl.train.record).
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass

import torch

from raymtl import storage
from raymtl.config import Preset
from raymtl.models import build_model, load_model
from raymtl.train import trial as T
from raymtl.train.experiments import Experiment, get_experiment


@dataclass(frozen=True)
class StageConfig:
    """One trial of a Train run: its coordinates, settings and where its inputs come from."""

    spec: T.TrialSpec
    preset: Preset
    n_classes: dict[str, int]
    init: dict[str, str | None]  # per target: a stage-1 model file (raymtl.models.checkpoint) or None
    train_dataset: str = "train"  # its training stream among the Train run's datasets
    # The training streams shuffle themselves (file order every pass, patches within a file,
    # raymtl.data.streams), so no local shuffle buffer by default: it holds 2048 patches and
    # copies every batch once more (benchmarks/bench_stream.py measures the stream with one).
    shuffle_buffer: int | None = None

    @property
    def trial(self) -> str:
        return self.spec.name

    @property
    def experiment(self) -> Experiment:
        return get_experiment(self.spec.experiment)

    @property
    def model_kind(self) -> str:
        return self.experiment.model_kind

    @property
    def targets(self) -> tuple[str, ...]:
        return self.experiment.targets

    @property
    def epochs(self) -> dict[str, int]:
        return {t: self.preset.train.epochs(self.experiment.stage, t) for t in self.targets}

    @property
    def seed(self) -> int:
        return self.spec.seed(self.preset.train.seed)


def build_network(stage: StageConfig, target: str, *, restore: bool = True) -> torch.nn.Module:
    """The network a stage trains for `target`; `restore` loads its stage-1 layers (fine-tunes)."""
    net = build_model(stage.model_kind, model_config(stage), stage.n_classes, task=target)
    if restore and stage.init.get(target):
        net.load_stage1(load_stage1_state(stage.init[target]))
    return net


def model_config(stage: StageConfig):
    """The ModelConfig a stage's networks are built (and saved) with."""
    cfg = stage.preset.model
    if stage.model_kind == "fusion" and not stage.experiment.freeze:
        cfg = dataclasses.replace(cfg, freeze_through=0)  # direct: train everything
    return cfg


def load_stage1_state(uri: str) -> dict:
    """The state dict of a saved model, read through pyarrow (shared storage on a cluster)."""
    fs, path = storage.resolve(uri)
    model, _ = load_model(io.BytesIO(storage.read_bytes(fs, path)))
    return model.state_dict()
