"""Live progress of unfinished trials and ensemble members, as the results store uses it.

The records themselves are ours (`raymtl.run.progress`): each training trial's progress.json
(its epochs so far and a heartbeat) and each ensemble member's record (queued, running, done,
failed). This module turns them into what the status rules need (`raymtl.results.status`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from raymtl.run import progress as RP


@dataclass
class TrialProgress:
    """Per-epoch metrics reported so far by one trial, and when it last showed life."""

    epochs: dict[int, dict[str, Any]] = field(default_factory=dict)  # epoch -> metrics
    updated: float | None = None

    @classmethod
    def of(cls, record: RP.TrialProgress) -> "TrialProgress":
        epochs = {int(m["epoch"]): dict(m) for m in record.epochs if isinstance(m.get("epoch"), int)}
        return cls(epochs, record.updated)


@dataclass(frozen=True)
class MemberStatus:
    """The grid's view of one ensemble member (all its stages)."""

    status: str  # queued | running | done | failed (raymtl.run.progress)
    error: str | None  # the failure's last line, for failed
    updated: float | None  # when the grid last wrote the member's record


def train_progress(fs, run_path: str, trials: list[str]) -> dict[str, TrialProgress]:
    """Progress of the named trials that have a progress record."""
    return {name: TrialProgress.of(r) for name, r in RP.read_trial_progress(fs, run_path, trials).items()}


def member_statuses(fs, run_path: str) -> dict[tuple[int, int, str], MemberStatus]:
    """(division, repeat, variant) -> the member's status, for members the grid has recorded."""
    return {
        key: MemberStatus(r.state, r.error, r.updated) for key, r in RP.read_members(fs, run_path).items()
    }
