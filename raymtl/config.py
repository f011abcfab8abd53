"""Settings: one frozen dataclass per group, and the named presets.

`paper` is docs/method.md §4-§5 verbatim. The small presets (`tiny` for tests, `demo` for the laptop
demo) are made from it with `dataclasses.replace`; each change says why. They change width,
epochs, batch and data size only, never the method (features, mixup, networks, fusion).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from raymtl import storage
from raymtl.errors import ConfigError

TASKS = ("asc", "aec")
VARIANTS = ("triple", "quadruple")


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel patches exactly as paper §II-A and docs/method.md §1 fix them."""

    sample_rate_hz: int = 44100
    n_fft: int = 2048  # Hann window of 2048 points
    hop_length: int = 1024
    n_mels: int = 128  # Slaney mel scale and norm (librosa's defaults)
    # Power -> dB with a fixed reference (never the per-clip max), so one sound gives
    # the same image in every clip; mixup happens on these images.
    db_ref: float = 1.0
    db_amin: float = 1e-10
    patch_frames: int = 128
    patch_hop_frames: int = 32
    esc_duration_s: float = 5.0  # ESC clips are padded / cut to this (as ESC-50 was made)
    tut_duration_s: float = 10.0  # TUT segments must be this long ...
    tut_duration_tolerance_s: float = 0.05  # ... within this (real files have 441001 frames)

    def __post_init__(self) -> None:
        for name in ("sample_rate_hz", "n_fft", "hop_length", "n_mels", "patch_frames", "patch_hop_frames"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"features.{name} must be positive, got {getattr(self, name)!r}")

    def n_frames(self, duration_s: float) -> int:
        """Centred STFT frames of a clip of `duration_s` (431 for 10 s, 216 for 5 s)."""
        return 1 + int(round(duration_s * self.sample_rate_hz)) // self.hop_length

    def n_patches(self, n_frames: int) -> int:
        """Patches of `patch_frames` at hop `patch_hop_frames` (10 for 431 frames, 3 for 216)."""
        if n_frames < self.patch_frames:
            return 0
        return 1 + (n_frames - self.patch_frames) // self.patch_hop_frames


@dataclass(frozen=True)
class ModelConfig:
    """The VGG-style networks of docs/method.md §4's layer table."""

    width: float = 1.0  # scales the 64/128/256/512 conv widths (small presets only)
    fusion_units: int = 1024  # the dense layer on each branch in the fusion network (Fig. 4)
    alpha_asc: float = 0.7  # inter-connection alpha when the target task is ASC (paper §III-B)
    alpha_aec: float = 0.6  # ... and when it is AEC
    # Fusion fine-tune: layers 1..freeze_through are restored from the MTL model and frozen.
    freeze_through: int = 15

    def __post_init__(self) -> None:
        if not 0 < self.width <= 4:
            raise ConfigError(f"model.width must be in (0, 4], got {self.width!r}")
        for name in ("alpha_asc", "alpha_aec"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be in (0, 1), got {getattr(self, name)!r}")
        if not 0 <= self.freeze_through <= 15:
            raise ConfigError(f"model.freeze_through must be in 0..15, got {self.freeze_through!r}")
        if self.fusion_units <= 0:
            raise ConfigError(f"model.fusion_units must be positive, got {self.fusion_units!r}")

    def alpha(self, task: str) -> float:
        return {"asc": self.alpha_asc, "aec": self.alpha_aec}[task]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (paper §III-B)."""

    batch_size: int = 256
    lr: float = 1e-4  # Adam
    # Epoch counts by (stage, target task). An epoch of mixup training is one pass over the
    # scene patches (docs/method.md §5); of single-task training, one pass over that task's patches.
    epochs_train_asc: int = 200
    epochs_train_aec: int = 500
    epochs_finetune_asc: int = 100
    epochs_finetune_aec: int = 500
    seed: int = 0
    # Cap on training patches drawn per epoch (None = all). Small presets use it to bound
    # run time; it subsamples, it never changes what a sample is.
    max_train_patches: int | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("epochs_") or f.name == "batch_size":
                if not isinstance(value, int) or value <= 0:
                    raise ConfigError(f"train.{f.name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"train.lr must be positive, got {self.lr!r}")
        if self.max_train_patches is not None and self.max_train_patches <= 0:
            raise ConfigError(
                f"train.max_train_patches must be positive or None, got {self.max_train_patches!r}"
            )

    def epochs(self, stage: str, task: str) -> int:
        """`stage` is 'train' (from scratch) or 'finetune'."""
        return getattr(self, f"epochs_{stage}_{task}")


@dataclass(frozen=True)
class Preset:
    name: str
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Preset":
        """Inverse of `to_dict`; unknown keys are errors (a checkpoint from a newer version)."""
        known = {"name", "features", "model", "train"}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown preset keys: {sorted(unknown)}")
        return cls(
            name=d["name"],
            features=_build(FeatureConfig, d.get("features", {}), "features"),
            model=_build(ModelConfig, d.get("model", {}), "model"),
            train=_build(TrainConfig, d.get("train", {}), "train"),
        )


def _build(cls, values: Mapping[str, Any], group: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown {group} settings: {sorted(unknown)}; valid: {sorted(names)}")
    return cls(**values)


PAPER = Preset(name="paper")

PRESETS: dict[str, Preset] = {
    "paper": PAPER,
    # Tests on 2 CPU cores: a 1/16-width network (4..32 channels) and a few epochs, so one
    # two-stage member trains in well under a minute. A larger lr makes up for the few epochs.
    "tiny": dataclasses.replace(
        PAPER,
        name="tiny",
        model=dataclasses.replace(PAPER.model, width=1 / 16, fusion_units=64),
        train=dataclasses.replace(
            PAPER.train,
            batch_size=32,
            lr=2e-3,
            epochs_train_asc=6,
            epochs_train_aec=6,
            epochs_finetune_asc=4,
            epochs_finetune_aec=4,
        ),
    ),
    # The laptop demo (`raymtl demo`, 4 members per task; 10-12 minutes from a fresh clone on 2 cores): tiny's
    # network on twice tiny's data, trained on a fixed 384-patch subset of each training split.
    # Fine-tunes over the frozen trunk compute it once (docs/method.md §5), so their 20 epochs
    # cost seconds: 2 -> 20 epochs took the demo ensembles from 50.0 / 20.0 % (ASC / AEC) to 80.0 / 71.5 %
    # (57.5-74.5 % AEC over later runs).
    "demo": dataclasses.replace(
        PAPER,
        name="demo",
        model=dataclasses.replace(PAPER.model, width=1 / 16, fusion_units=64),
        train=dataclasses.replace(
            PAPER.train,
            batch_size=32,
            lr=2e-3,
            epochs_train_asc=3,
            epochs_train_aec=3,
            epochs_finetune_asc=20,
            epochs_finetune_aec=20,
            max_train_patches=384,
        ),
    ),
}


def get_preset(name: str) -> Preset:
    """A named preset, or a JSON file of one (`Preset.to_dict()`'s shape: name, features,
    model, train; unset settings keep the paper's values)."""
    if name.endswith(".json"):
        return _preset_file(name)
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r}; valid: {', '.join(PRESETS)}, or a preset .json file"
        ) from None


def _preset_file(uri: str) -> Preset:
    fs, path = storage.resolve(uri)
    if not storage.is_file(fs, path):
        raise ConfigError(f"preset file {uri} does not exist")
    try:
        d = json.loads(storage.read_bytes(fs, path))
    except ValueError as e:
        raise ConfigError(f"preset file {uri} is not valid JSON: {e}") from None
    if not isinstance(d, dict) or not isinstance(d.get("name"), str):
        raise ConfigError(f"preset file {uri} must be a JSON object with a string 'name'")
    if d["name"] in PRESETS:
        raise ConfigError(f"preset file {uri}: name {d['name']!r} is a built-in preset; choose another name")
    return Preset.from_dict(d)
