"""Live progress of unfinished trials, read from Ray's own storage under RUN/ray/.

Two sources, both written by Ray while a run goes on (checked against Ray 2.60):

- `RUN/ray/<Train run>/checkpoint_manager_snapshot.json`: Ray Train's record of the run's kept
  checkpoints; each carries the metrics reported with it (the trial, epoch, loss, accuracies).
  A `raymtl train` run is named after its trial; an ensemble member's run, which trains all the
  member's trials, `member-d<K>-r<R>-<variant>` (raymtl.train.trial.member_run_name).
- `RUN/ray/grid/`: the ensemble's Tune experiment (raymtl/ensemble/grid.py names it "grid").
  `experiment_state-<time>.json` holds each Tune trial's status (PENDING, RUNNING, TERMINATED,
  ERROR) and its member coordinates; each Tune trial folder's `result.json` has one line per
  epoch reported through `TuneReportCallback`, with its `trial` (older runs: the Train run named
  in `checkpoint_path` is the trial).

These are Ray's internal formats, not ours: anything unexpected is skipped with a debug log, so
progress is best effort and never stops the results from loading.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from raymtl import storage
from raymtl.train import trial as T

log = logging.getLogger(__name__)

RAY_DIR = "ray"
GRID_DIR = "grid"
SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"
_STATE_PREFIX = "experiment_state-"
_TUNE_RESULT = "result.json"


@dataclass
class TrialProgress:
    """Per-epoch metrics reported so far by one Train run, and when it last reported."""

    epochs: dict[int, dict[str, Any]] = field(default_factory=dict)  # epoch -> metrics
    updated: float | None = None

    def add(self, metrics: dict[str, Any], when: float | None) -> None:
        epoch = metrics.get("epoch")
        if isinstance(epoch, int):
            self.epochs[epoch] = {**self.epochs.get(epoch, {}), **metrics}
        if when is not None and (self.updated is None or when > self.updated):
            self.updated = when


@dataclass(frozen=True)
class MemberStatus:
    """Tune's view of one ensemble member (all its stages)."""

    status: str  # PENDING | RUNNING | PAUSED | TERMINATED | ERROR
    error: str | None  # first line of Tune's error file, for ERROR
    updated: float | None  # when Tune last saved its experiment state


def _mtime(fs, path: str) -> float | None:
    info = fs.get_file_info(path)
    return info.mtime.timestamp() if info.type == pafs.FileType.File and info.mtime else None


def _json(fs, path: str) -> Any:
    try:
        return storage.read_json(fs, path)
    except (OSError, ValueError) as e:
        log.debug("%s: skipped (%s)", path, e)
        return None


def train_progress(fs, run_path: str, trials: list[str]) -> dict[str, TrialProgress]:
    """Progress of the named trials from the checkpoint snapshots (the kept epochs only) of their
    own Train runs and of their members' Train runs."""
    wanted = set(trials)
    runs = dict.fromkeys(trials)
    for name in trials:
        spec = T.parse_trial_name(name)
        if spec is not None:
            runs[T.member_run_name(spec.division, spec.repeat, spec.variant)] = None
    out: dict[str, TrialProgress] = {}
    for run_name in runs:
        path = storage.join(run_path, RAY_DIR, run_name, SNAPSHOT_FILE)
        snap = _json(fs, path)
        if not isinstance(snap, dict):
            continue
        updated = _mtime(fs, path)
        results = list(snap.get("checkpoint_results") or []) + [snap.get("latest_checkpoint_result")]
        for r in results:
            if not (isinstance(r, dict) and isinstance(r.get("metrics"), dict)):
                continue
            trial = str(r["metrics"].get("trial", run_name))
            if trial in wanted:  # the snapshot's time: the Train run's last sign of life
                out.setdefault(trial, TrialProgress()).add(r["metrics"], updated)
    return out


def _latest_state(fs, grid: str) -> tuple[str | None, float | None]:
    files = fs.get_file_info(pafs.FileSelector(grid, allow_not_found=True))
    states = sorted(
        f.path for f in files if f.base_name.startswith(_STATE_PREFIX) and f.base_name.endswith(".json")
    )
    if not states:
        return None, None
    return states[-1], _mtime(fs, states[-1])  # names end in the session's start time: sortable


def tune_members(fs, run_path: str) -> tuple[dict[tuple[int, int, str], MemberStatus], dict[tuple, str]]:
    """(member (division, repeat, variant) -> status, member -> its Tune trial folder)."""
    grid = storage.join(run_path, RAY_DIR, GRID_DIR)
    path, updated = _latest_state(fs, grid)
    if path is None:
        return {}, {}
    state = _json(fs, path)
    statuses, folders = {}, {}
    for entry in (state or {}).get("trial_data", []) if isinstance(state, dict) else []:
        try:
            trial, run_meta = json.loads(entry[0]), json.loads(entry[1])
            m = trial["evaluated_params"]["member"]
            key = (int(m["division"]), int(m["repeat"]), str(m["variant"]))
            status = str(trial["status"])
            folder = storage.join(grid, str(trial["relative_logdir"]))
        except (TypeError, KeyError, ValueError, IndexError) as e:
            log.debug("%s: a Tune trial entry skipped (%s)", path, e)
            continue
        error = None
        if status == "ERROR":
            error = _first_line(fs, run_meta.get("error_filename"), folder) or "the Tune trial failed"
        statuses[key] = MemberStatus(status=status, error=error, updated=updated)
        folders[key] = folder
    return statuses, folders


def _first_line(fs, name: Any, folder: str) -> str | None:
    if not isinstance(name, str) or not name:
        return None
    path = name if name.startswith("/") or "://" in name else storage.join(folder, name)
    try:
        text = storage.read_bytes(fs, path).decode("utf-8", "replace")
    except OSError:
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else None  # a traceback ends with the exception


def tune_epochs(fs, folder: str) -> dict[str, TrialProgress]:
    """Every epoch a member's Tune trial reported, per Train run (from `checkpoint_path`)."""
    path = storage.join(folder, _TUNE_RESULT)
    if not storage.is_file(fs, path):
        return {}
    try:
        text = storage.read_bytes(fs, path).decode("utf-8", "replace")
    except OSError:
        return {}
    out: dict[str, TrialProgress] = {}
    for line in text.splitlines():
        try:
            r = json.loads(line)
            trial = str(r.get("trial") or str(r["checkpoint_path"]).rstrip("/").rsplit("/", 2)[-2])
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            continue
        when = r.get("timestamp")
        metrics = {k: v for k, v in r.items() if k != "config"}
        out.setdefault(trial, TrialProgress()).add(
            metrics, float(when) if isinstance(when, (int, float)) else None
        )
    return out
