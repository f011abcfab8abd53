"""The ensemble matrix: which (division, repeat, variant) members each target task has.

A member of the `asc` ensemble is the `finetune-asc-d<K>-r<R>-<variant>` trial; its scores are the
rows with task == "asc" of that trial's `scores.parquet`. `raymtl ensemble` records the matrix it
ran in `RUN/ensemble/plan.json`, so `raymtl reduce` fuses exactly that matrix:

    {"divisions": [1, 2, 3, 4], "repeats": [1, 2, 3], "variants": ["triple", "quadruple"],
     "tasks": ["asc", "aec"], "preset": "paper"}

A run without a plan.json is taken to have the paper's matrix (`PAPER_PLAN`, 24 members a task).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from raymtl import storage
from raymtl.config import TASKS, VARIANTS
from raymtl.data.splits import DIVISIONS
from raymtl.errors import ConfigError, InputFileError, OutputExistsError
from raymtl.run import layout
from raymtl.train.trial import TrialSpec

log = logging.getLogger(__name__)

ENSEMBLE_DIR, PLAN_FILE = layout.ENSEMBLE_DIR, layout.PLAN  # RUN/ensemble/plan.json
PLAN_KEYS = ("divisions", "repeats", "variants", "tasks")
PRESET_KEY = "preset"  # recorded beside the matrix by `raymtl ensemble`; not part of the matrix


def member_experiment(task: str) -> str:
    """The experiment whose trials are the ensemble members of `task`."""
    return f"finetune-{task}"


@dataclass(frozen=True)
class EnsemblePlan:
    """The member matrix. Values are stored as sorted tuples (variants and tasks in the order of
    `raymtl.config`), so two plans with the same matrix compare equal however they were written."""

    divisions: tuple[int, ...]
    repeats: tuple[int, ...]
    variants: tuple[str, ...]
    tasks: tuple[str, ...]

    def __post_init__(self) -> None:
        divisions = _int_values("divisions", self.divisions)
        bad = [d for d in divisions if d not in DIVISIONS]
        if bad:
            raise ConfigError(f"divisions must be among {list(DIVISIONS)}, got {bad}")
        repeats = _int_values("repeats", self.repeats)
        if any(r < 1 for r in repeats):
            raise ConfigError(f"repeats must be positive integers, got {list(repeats)}")
        variants = _str_values("variants", self.variants, VARIANTS)
        tasks = _str_values("tasks", self.tasks, TASKS)
        object.__setattr__(self, "divisions", tuple(sorted(divisions)))
        object.__setattr__(self, "repeats", tuple(sorted(repeats)))
        object.__setattr__(self, "variants", tuple(v for v in VARIANTS if v in variants))
        object.__setattr__(self, "tasks", tuple(t for t in TASKS if t in tasks))

    def groups(self) -> list[tuple[int, str]]:
        """(repeat, variant) pairs; each group holds one model per division."""
        return [(r, v) for v in self.variants for r in self.repeats]

    def members(self, task: str) -> list[TrialSpec]:
        """The finetune trials whose scores make up the ensemble of `task`, group by group."""
        if task not in self.tasks:
            raise ConfigError(f"task {task!r} is not in this plan; it has {', '.join(self.tasks)}")
        exp = member_experiment(task)
        return [TrialSpec(exp, d, r, v) for r, v in self.groups() for d in self.divisions]

    def to_dict(self) -> dict[str, list]:
        return {k: list(getattr(self, k)) for k in PLAN_KEYS}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "EnsemblePlan":
        """From `to_dict` output or a plan.json (whose extra "preset" key is ignored here)."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"an ensemble plan must be a mapping, got {type(values).__name__}")
        unknown = sorted(set(values) - set(PLAN_KEYS) - {PRESET_KEY})
        if unknown:
            raise ConfigError(f"unknown ensemble plan keys {unknown}; valid: {', '.join(PLAN_KEYS)}")
        absent = [k for k in PLAN_KEYS if k not in values]
        if absent:
            raise ConfigError(f"ensemble plan lacks {', '.join(absent)}")
        return cls(**{k: values[k] for k in PLAN_KEYS})

    def describe(self) -> str:
        return (
            f"divisions {list(self.divisions)}, repeats {list(self.repeats)}, "
            f"variants {list(self.variants)}, tasks {list(self.tasks)}"
        )


def _int_values(name: str, values: Sequence[int]) -> tuple[int, ...]:
    values = _sequence(name, values)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
        raise ConfigError(f"{name} must be integers, got {bad}")
    return values


def _str_values(name: str, values: Sequence[str], valid: Sequence[str]) -> tuple[str, ...]:
    values = _sequence(name, values)
    bad = [v for v in values if v not in valid]
    if bad:
        raise ConfigError(f"unknown {name} {bad}; valid: {', '.join(valid)}")
    return values


def _sequence(name: str, values) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise ConfigError(f"{name} must be a list, got {values!r}")
    if not values:
        raise ConfigError(f"{name} must not be empty")
    dupes = sorted({repr(v) for v in values if values.count(v) > 1})
    if dupes:
        raise ConfigError(f"{name} repeats {', '.join(dupes)}")
    return tuple(values)


# Paper §II-E: 4 divisions x 3 repeats x 2 variants = 24 classifiers per task.
PAPER_PLAN = EnsemblePlan(divisions=DIVISIONS, repeats=(1, 2, 3), variants=VARIANTS, tasks=TASKS)


def plan_path(run: str) -> str:
    _, path = storage.resolve(run)
    return layout.plan(path)


def read_plan(run: str) -> EnsemblePlan:
    """RUN/ensemble/plan.json, or `PAPER_PLAN` when the run has none."""
    fs, _ = storage.resolve(run)
    path = plan_path(run)
    if not storage.is_file(fs, path):
        log.info("%s not found: using the paper's matrix (%s)", path, PAPER_PLAN.describe())
        return PAPER_PLAN
    try:
        values = storage.read_json(fs, path)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"not valid JSON ({e})") from None
    try:
        return EnsemblePlan.from_dict(values)
    except ConfigError as e:
        raise InputFileError(path, str(e)) from None


def write_plan(run: str, plan: EnsemblePlan, *, preset: str | None = None, replace: bool = False) -> bool:
    """Record `plan` in RUN/ensemble/plan.json (atomically).

    Returns True when the file was written, False when it already held the same matrix (left as
    it is). A plan.json with a different matrix is replaced only with `replace=True`; otherwise
    this raises `OutputExistsError` naming both matrices.
    """
    fs, _ = storage.resolve(run)
    path = plan_path(run)
    if storage.is_file(fs, path):
        try:
            existing = EnsemblePlan.from_dict(storage.read_json(fs, path))
        except (ConfigError, json.JSONDecodeError, UnicodeDecodeError):
            existing = None  # unreadable: treated as different
        if existing == plan:
            return False
        if not replace:
            was = existing.describe() if existing is not None else "an unreadable plan"
            raise OutputExistsError(
                f"{path} records a different ensemble ({was}) from the one asked for ({plan.describe()}); "
                "use the same matrix, or replace the plan explicitly"
            )
        log.warning("replacing the ensemble plan in %s", path)
    values: dict[str, Any] = plan.to_dict()
    if preset is not None:
        values[PRESET_KEY] = preset
    storage.write_json(fs, path, values)
    return True
