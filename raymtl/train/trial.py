"""A trial: one experiment on one (division, repeat, variant), and where its files live.

    RUN/
      manifest.json                 the run's preset, code version, base seed (first writer wins)
      ray/<trial>/                  Ray Train's storage of a `raymtl train` run: checkpoints, for resuming
      ray/member-d<K>-r<R>-<variant>/   ... of an ensemble member's Train run (all its trials)
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
import re
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
_NAME = re.compile(r"^(?P<experiment>[a-z0-9-]+)-d(?P<division>\d+)-r(?P<repeat>\d+)-(?P<variant>[a-z]+)$")


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


def parse_trial_name(name: str) -> TrialSpec | None:
    """The TrialSpec whose `name` this is, or None for any other name (another folder)."""
    m = _NAME.match(name)
    if not m:
        return None
    try:
        return TrialSpec(m["experiment"], int(m["division"]), int(m["repeat"]), m["variant"])
    except ConfigError:
        return None


def member_run_name(division: int, repeat: int, variant: str) -> str:
    """The Train run that trains an ensemble member's trials (`raymtl ensemble`), by coordinates
    only, so a rerun resumes it."""
    return f"member-d{division}-r{repeat}-{variant}"


def trial_dir(run: str, spec: TrialSpec) -> str:
    _, path = storage.resolve(run)
    return storage.join(path, "trials", spec.name)


def model_file(run: str, spec: TrialSpec, task: str) -> str:
    """The model file's URI (`s3://...` for a RUN on S3), as result.json records it."""
    return storage.uri_of(run, storage.join(trial_dir(run, spec), f"model-{task}.pt"))


def is_finished(run: str, spec: TrialSpec) -> bool:
    fs, _ = storage.resolve(run)
    return storage.is_file(fs, storage.join(trial_dir(run, spec), RESULT))
