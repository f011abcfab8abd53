"""A trial: one experiment on one (division, repeat, variant), its name, and the names of the
Ray Train runs that train it. Where its files live is `raymtl.run.layout`'s; the helpers here
take a RUN URI and call it.

Trial names come only from (experiment, division, repeat, variant), never from timestamps or
random values, so a rerun finds the same folders and resumes. A `raymtl train` run is named
after its trial, an ensemble member's after the member (`member-d<K>-r<R>-<variant>`), and a
chain given to `raymtl train --experiment a,b` after its experiments (`a+b-d<K>-r<R>-<variant>`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from raymtl import storage
from raymtl.config import VARIANTS
from raymtl.data.splits import check_division
from raymtl.errors import ConfigError
from raymtl.run import layout
from raymtl.train.experiments import get_experiment

RESULT, SCORES, METRICS, RUN_MANIFEST = layout.RESULT, layout.SCORES, layout.METRICS, layout.MANIFEST
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


def chain_run_name(specs: list[TrialSpec]) -> str:
    """The Train run that trains `specs` back to back (`raymtl train --experiment a,b,...`): the
    trial's own name for one trial, the member's run name for a member's stages (so the ensemble
    resumes it), else the experiments joined by '+' at the chain's coordinates. Made only from
    what was asked, never from what is left, so a rerun resumes the same Train run."""
    first = specs[0]
    if len(specs) == 1:
        return first.name
    experiments = [s.experiment for s in specs]
    if experiments[0] == "mtl-ic" and set(experiments[1:]) <= {"finetune-asc", "finetune-aec"}:
        return member_run_name(first.division, first.repeat, first.variant)
    return f"{'+'.join(experiments)}-d{first.division}-r{first.repeat}-{first.variant}"


def trial_dir(run: str, spec: TrialSpec) -> str:
    _, path = storage.resolve(run)
    return layout.trial_dir(path, spec.name)


def model_file(run: str, spec: TrialSpec, task: str) -> str:
    """The model file's URI (`s3://...` for a RUN on S3), as result.json records it."""
    _, path = storage.resolve(run)
    return storage.uri_of(run, layout.model(path, spec.name, task))


def is_finished(run: str, spec: TrialSpec) -> bool:
    fs, path = storage.resolve(run)
    return storage.is_file(fs, layout.result(path, spec.name))
