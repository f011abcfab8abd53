"""Where each trial and each ensemble member stands: done, running, failed or missing.

A trial is
- **done** when its result.json is there (written last, so nothing after it can fail);
- **failed** when its files cannot be read, when the grid recorded its member failed, or when it
  started (its progress record or files) but nothing has moved for `stale_after_s` (a killed
  driver leaves exactly that behind; rerunning `raymtl ensemble` resumes it);
- **running** when its progress record has a heartbeat within `stale_after_s`;
- **missing** otherwise: planned but not started (or queued in Tune).

An ensemble member of task T is the pair of trials (mtl-ic, finetune-T) of one (division, repeat,
variant): done when finetune-T is, failed or running when either stage is, and running too while
the grid runs the member and its next stage is starting up (Train takes ~25 s to start a stage).
"""

from __future__ import annotations

from dataclasses import dataclass

from raymtl.config import Preset
from raymtl.ensemble.plan import member_experiment
from raymtl.results.progress import MemberStatus, TrialProgress
from raymtl.results.runs import TrialFiles
from raymtl.run import progress as RP
from raymtl.run.records import TrialResult
from raymtl.train import trial as T
from raymtl.train.experiments import get_experiment

DONE, RUNNING, FAILED, MISSING = "done", "running", "failed", "missing"
STATES = (DONE, RUNNING, FAILED, MISSING)
STALE_AFTER_S = 3600.0  # no report for this long: taken as dead (a paper epoch takes minutes)


@dataclass(frozen=True)
class TrialState:
    state: str
    reason: str  # a few words for people ("" when done)
    epochs_done: int
    epochs_planned: int | None
    updated: float | None  # last sign of life, s since the epoch


def planned_epochs(spec: T.TrialSpec, preset: Preset | None) -> int | None:
    if preset is None:
        return None
    exp = get_experiment(spec.experiment)
    return max(preset.train.epochs(exp.stage, t) for t in exp.targets)


def trial_state(
    spec: T.TrialSpec,
    files: TrialFiles | None,
    progress: TrialProgress | None,
    member: MemberStatus | None,
    preset: Preset | None,
    now: float,
    stale_after_s: float = STALE_AFTER_S,
) -> TrialState:
    planned = planned_epochs(spec, preset)
    if files is not None and files.result is not None:
        return TrialState(DONE, "", len(files.metrics), planned, files.updated)
    epochs = max(progress.epochs) + 1 if progress and progress.epochs else 0
    times = [t for t in ((progress.updated if progress else None), (files.updated if files else None)) if t]
    updated = max(times) if times else None
    if files is not None and files.problem:
        return TrialState(FAILED, files.problem, epochs, planned, updated)
    if member is not None and member.status == RP.FAILED:
        return TrialState(FAILED, f"member failed: {member.error}", epochs, planned, updated)
    if updated is not None:
        idle = now - updated
        if idle <= stale_after_s:
            return TrialState(RUNNING, f"epoch {epochs}/{planned or '?'}", epochs, planned, updated)
        return TrialState(FAILED, f"no progress for {idle / 60:.0f} min", epochs, planned, updated)
    if member is not None and member.status == RP.QUEUED:
        return TrialState(MISSING, "queued in Tune", 0, planned, None)
    return TrialState(MISSING, "not started", 0, planned, None)


@dataclass(frozen=True)
class MemberState:
    state: str
    reason: str
    stage: str  # the experiment the member is at (the failed or running one; finetune-T when done)
    epoch: int  # epochs done in that stage
    epochs: int | None  # epochs planned for that stage
    seconds: float | None  # training time of its finished stages
    finished: str | None  # when finetune-T finished
    updated: float | None


def member_state(
    task: str,
    division: int,
    repeat: int,
    variant: str,
    trials: dict[str, TrialState],
    results: dict[str, TrialResult],
    member: MemberStatus | None,
    now: float,
    stale_after_s: float = STALE_AFTER_S,
) -> MemberState:
    """`trials` and `results`: state and result by trial name (for at least this member's)."""
    final = member_experiment(task)
    experiments = (get_experiment(final).init_from, final)  # (mtl-ic, finetune-T)
    stages = [T.TrialSpec(e, division, repeat, variant).name for e in experiments]
    states = [trials.get(name) for name in stages]
    seconds = [results[n].seconds for n in stages if n in results]
    total = float(sum(seconds)) if seconds else None
    times = [s.updated for s in states if s and s.updated]
    updated = max(times) if times else None
    last = stages[-1]
    if states[-1] is not None and states[-1].state == DONE:
        s = states[-1]
        return MemberState(
            DONE,
            "",
            experiments[-1],
            s.epochs_done,
            s.epochs_planned,
            total,
            results[last].finished if last in results else None,
            updated,
        )
    for wanted in (FAILED, RUNNING):
        for exp, s in zip(experiments, states):
            if s is not None and s.state == wanted:
                return MemberState(
                    wanted, f"{exp}: {s.reason}", exp, s.epochs_done, s.epochs_planned, total, None, updated
                )
    # Neither stage has reported: Tune may be starting the next one.
    nxt = next(i for i, s in enumerate(states) if s is None or s.state != DONE)
    stage = experiments[nxt]
    planned = states[nxt].epochs_planned if states[nxt] else None
    member_live = (
        member is not None
        and member.status == RP.RUNNING
        and member.updated
        and now - member.updated <= stale_after_s
    )
    if member_live:
        return MemberState(RUNNING, f"{stage}: starting", stage, 0, planned, total, None, updated)
    reason = states[nxt].reason if states[nxt] else "not started"
    return MemberState(MISSING, f"{stage}: {reason}", stage, 0, planned, total, None, updated)
