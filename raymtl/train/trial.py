"""A trial: one experiment on one (division, repeat, variant), and where its files live.

    RUN/
      manifest.json                 the run's preset, code version, base seed (first writer wins)
      ray/<trial>/                  Ray Train's storage: checkpoints, for resuming
      trials/<trial>/
        result.json                 written last: its presence means the trial is finished
        scores.parquet              every test patch's scores, per task
        metrics.jsonl               one line of metrics per epoch
        model-<task>.pt             the selected network per target task (raymtl.models.checkpoint)

Trial names come only from (experiment, division, repeat, variant), never from timestamps or
random values, so a rerun finds the same folders and resumes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from raymtl import storage
from raymtl.config import VARIANTS
from raymtl.data.splits import check_division
from raymtl.errors import ConfigError
from raymtl.train.experiments import get_experiment

RESULT = "result.json"
SCORES = "scores.parquet"
METRICS = "metrics.jsonl"
RUN_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class TrialSpec:
    experiment: str
    division: int
    repeat: int
    variant: str

    def __post_init__(self) -> None:
        get_experiment(self.experiment)
        check_division(self.division)
        if not isinstance(self.repeat, int) or self.repeat < 1:
            raise ConfigError(f"repeat must be a positive integer, got {self.repeat!r}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r}; valid: {', '.join(VARIANTS)}")

    @property
    def name(self) -> str:
        return f"{self.experiment}-d{self.division}-r{self.repeat}-{self.variant}"

    def seed(self, base_seed: int) -> int:
        """A stable seed per (base seed, division, repeat, variant, experiment)."""
        digest = hashlib.blake2b(f"{base_seed}:{self.name}".encode(), digest_size=4).digest()
        return int.from_bytes(digest, "little")

    def with_experiment(self, experiment: str) -> "TrialSpec":
        return TrialSpec(experiment, self.division, self.repeat, self.variant)


def trial_dir(run: str, spec: TrialSpec) -> str:
    _, path = storage.resolve(run)
    return storage.join(path, "trials", spec.name)


def model_file(run: str, spec: TrialSpec, task: str) -> str:
    return storage.join(trial_dir(run, spec), f"model-{task}.pt")


def is_finished(run: str, spec: TrialSpec) -> bool:
    fs, _ = storage.resolve(run)
    return storage.is_file(fs, storage.join(trial_dir(run, spec), RESULT))
