"""The study: every experiment of the paper's Table I and §III-E as one Tune grid (`raymtl study`).

Each (division, repeat, variant) gets the chains of the selected experiments
(raymtl.train.chains): one Train run per chain, dependent trials in order inside it, chains in
parallel, placed and scaled out as the ensemble's members are (raymtl.ensemble.grid). The study
shares the RUN with `raymtl ensemble`: a trial either has finished is never trained again, and
the `[mtl-ic, finetune-asc, finetune-aec]` chain is the ensemble member of the same coordinates
(same Train run name, same member record), so one resumes what the other began.

`RUN/study/plan.json` records the last study's matrix and experiments, for the reader:

    {"divisions": [1, 2, 3, 4], "repeats": [1, 2, 3], "variants": ["triple"],
     "experiments": ["baseline-asc", ..., "transfer-aec"], "preset": "paper"}
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Sequence

from raymtl import storage
from raymtl.config import TASKS, Preset, get_preset
from raymtl.ensemble.grid import GridOptions, member_chain, train_chains
from raymtl.ensemble.lock import RunLock
from raymtl.ensemble.plan import EnsemblePlan
from raymtl.errors import ConfigError
from raymtl.run import layout
from raymtl.train import chains as C
from raymtl.train.experiments import EXPERIMENTS
from raymtl.train.runner import ensure_run_manifest

log = logging.getLogger(__name__)

PAPER_VARIANTS = ("triple",)  # Table I is the triple variant's (paper §III-C)


@dataclass(frozen=True)
class StudyPlan:
    """The study's matrix and experiments (prerequisites added, in the paper's order)."""

    divisions: tuple[int, ...]
    repeats: tuple[int, ...]
    variants: tuple[str, ...] = PAPER_VARIANTS
    experiments: tuple[str, ...] = tuple(EXPERIMENTS)

    def __post_init__(self) -> None:
        # The matrix is checked and ordered as the ensemble's is.
        matrix = EnsemblePlan(self.divisions, self.repeats, self.variants, TASKS)
        if isinstance(self.experiments, str) or not self.experiments:
            raise ConfigError(f"experiments must be a non-empty list, got {self.experiments!r}")
        object.__setattr__(self, "divisions", matrix.divisions)
        object.__setattr__(self, "repeats", matrix.repeats)
        object.__setattr__(self, "variants", matrix.variants)
        object.__setattr__(self, "experiments", C.with_prerequisites(self.experiments))

    def chains(self) -> list[dict[str, Any]]:
        """Every chain at every coordinate, repeat by repeat (the first repeat's Table I first)."""
        member = list(member_chain(1, 1, "triple", TASKS)["experiments"])
        return [
            {
                "experiments": list(chain),
                "division": d,
                "repeat": r,
                "variant": v,
                "member": list(chain) == member,
            }
            for r in self.repeats
            for v in self.variants
            for d in self.divisions
            for chain in C.chains(self.experiments)
        ]

    def n_trials(self) -> int:
        return len(self.experiments) * len(self.divisions) * len(self.repeats) * len(self.variants)

    def to_dict(self) -> dict[str, list]:
        return {k: list(getattr(self, k)) for k in ("divisions", "repeats", "variants", "experiments")}

    def describe(self) -> str:
        return (
            f"{len(self.experiments)} experiments ({', '.join(self.experiments)}) x divisions "
            f"{list(self.divisions)} x repeats {list(self.repeats)} x variants {list(self.variants)}"
        )


@dataclass(frozen=True)
class StudyReport:
    run: str
    trials: int  # planned
    chains: int  # planned (a Train run each, or one per coordinate when packed: grid.pack_by_coordinates)
    finished_before: int  # chains
    train_runs: int  # Train runs started now (chains with a trial left), failed ones included
    trials_trained: int
    failed: list[str]
    seconds: float

    def summary(self) -> str:
        failed = f"; FAILED: {', '.join(self.failed)}" if self.failed else ""
        return (
            f"study in {self.run}: {self.trials} trials in {self.chains} chains; {self.finished_before} "
            f"chains already done; {self.trials_trained} trials trained now in {self.train_runs} Train "
            f"runs, {self.seconds:.0f} s{failed}"
        )


def write_study_plan(run: str, plan: StudyPlan, preset: str) -> None:
    """Record `plan` in RUN/study/plan.json (atomically), replacing an earlier study's."""
    fs, path = storage.resolve(run)
    storage.write_json(fs, layout.study_plan(path), {**plan.to_dict(), "preset": preset})


def run_study(
    features: str,
    run: str,
    preset: Preset | str,
    plan: StudyPlan,
    options: GridOptions = GridOptions(),
) -> StudyReport:
    """Train every trial of `plan` not yet finished in `run`. Refuses (`RunLockedError`) while
    another driver trains the same RUN."""
    t0 = time.perf_counter()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    features, run = storage.absolute(features), storage.absolute(run)  # trials run in other folders
    ensure_run_manifest(run, preset, features)
    log.info("study: %s", plan.describe())
    with RunLock(run):  # one driver per RUN, shared with `raymtl ensemble`
        write_study_plan(run, plan, preset.name)
        chains = plan.chains()
        out = train_chains(features, run, preset, chains, options, layout.STUDY, "study")
    return StudyReport(
        run,
        plan.n_trials(),
        out.chains,
        out.finished_before,
        out.trained + len(out.failed),
        out.trials_trained,
        out.failed,
        time.perf_counter() - t0,
    )


def parse_experiments(text: str | None) -> Sequence[str]:
    """`--experiments a,b`: the names given (checked), or every experiment when None/empty."""
    if not text:
        return tuple(EXPERIMENTS)
    names = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in names if e not in EXPERIMENTS]
    if unknown:
        raise ConfigError(f"unknown experiments {unknown}; valid: {', '.join(EXPERIMENTS)}")
    return names
