"""Live progress records: what a RUN says about work still going on.

    RUN/trials/<trial>/progress.json        written by the Train worker that trains the trial:
                                            at its start, after every epoch and as a heartbeat
    RUN/ensemble/members/d<K>-r<R>-<variant>.json
                                            an ensemble member's state, written by the grid:
                                            queued (by the driver), running, done or failed (by
                                            the member's Tune trial)

These are our own formats (format version below), written atomically through pyarrow file
systems, so the results store, the dashboard and the terminal read the same files on local disk,
NFS or S3, and nothing depends on the files Ray keeps for itself.

A progress record stays after its trial finished (result.json is what marks it finished); a
record whose `updated` is old belongs to a worker or driver that died.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from raymtl import storage
from raymtl.errors import UserError
from raymtl.run import layout

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PROGRESS_FILE = layout.PROGRESS
HEARTBEAT_S = 60.0  # a running trial rewrites its record at least this often

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
MEMBER_STATES = (QUEUED, RUNNING, DONE, FAILED)


def member_key(division: int, repeat: int, variant: str) -> str:
    return f"d{division}-r{repeat}-{variant}"


def _check_version(d: dict[str, Any], what: str) -> None:
    version = d.get("version")
    if version != FORMAT_VERSION:
        raise UserError(
            f"{what}: progress format version {version!r}; this raymtl reads version {FORMAT_VERSION}"
        )


@dataclass(frozen=True)
class Placement:
    """Where a process runs: the host and process, and Ray's node when inside Ray."""

    host: str
    pid: int
    node_id: str | None = None
    node_ip: str | None = None
    device: str | None = None  # cpu | cuda:N, for a Train worker

    @classmethod
    def of_process(cls, node_id: str | None = None, node_ip: str | None = None, device: str | None = None):
        """This process, on the given Ray node (raymtl.ray_session.placement fills those in)."""
        return cls(socket.gethostname(), os.getpid(), node_id, node_ip, device)


@dataclass(frozen=True)
class TrialProgress:
    """One trial's record: every epoch's metrics so far, and its last sign of life."""

    trial: str
    stage: str  # the network kind it trains (mtl-ic, fusion, ...)
    epochs_planned: dict[str, int]  # per target task
    epochs: tuple[dict[str, Any], ...]  # the metrics each epoch reported, in order
    started: float  # s since the Unix epoch
    updated: float  # the last write (an epoch or a heartbeat)
    placement: Placement
    resumed_after_epoch: tuple[int, ...] = ()  # worker restarts from a checkpoint

    @property
    def epochs_done(self) -> int:
        return len(self.epochs)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "raymtl-trial-progress", "version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrialProgress":
        _check_version(d, f"progress of {d.get('trial')}")
        return cls(
            trial=str(d["trial"]),
            stage=str(d["stage"]),
            epochs_planned={str(k): int(v) for k, v in d["epochs_planned"].items()},
            epochs=tuple(dict(m) for m in d["epochs"]),
            started=float(d["started"]),
            updated=float(d["updated"]),
            placement=Placement(**d["placement"]),
            resumed_after_epoch=tuple(int(e) for e in d.get("resumed_after_epoch", ())),
        )


@dataclass(frozen=True)
class MemberRecord:
    """An ensemble member's state as the grid last wrote it."""

    division: int
    repeat: int
    variant: str
    state: str  # queued | running | done | failed
    updated: float
    error: str | None = None  # the last line of the failure, for failed
    placement: Placement | None = None  # the Tune trial's process, once it runs

    def __post_init__(self) -> None:
        if self.state not in MEMBER_STATES:
            raise ValueError(f"member state must be one of {MEMBER_STATES}, got {self.state!r}")

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.division, self.repeat, self.variant)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "raymtl-member", "version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MemberRecord":
        _check_version(d, "ensemble member record")
        placement = d.get("placement")
        return cls(
            division=int(d["division"]),
            repeat=int(d["repeat"]),
            variant=str(d["variant"]),
            state=str(d["state"]),
            updated=float(d["updated"]),
            error=d.get("error"),
            placement=Placement(**placement) if placement else None,
        )


# -- writing ---------------------------------------------------------------------------------


def write_member(
    run: str,
    division: int,
    repeat: int,
    variant: str,
    state: str,
    error: str | None = None,
    placement: Placement | None = None,
    updated: float | None = None,
) -> MemberRecord:
    """Record a member's state (`updated`: now, unless given)."""
    when = time.time() if updated is None else updated
    record = MemberRecord(division, repeat, variant, state, when, error, placement)
    fs, path = storage.resolve(run)
    storage.write_json(fs, layout.member(path, member_key(division, repeat, variant)), record.to_dict())
    return record


def write_trial_progress(run: str, record: TrialProgress) -> None:
    fs, path = storage.resolve(run)
    storage.write_json(fs, layout.progress(path, record.trial), record.to_dict())


class TrialProgressWriter:
    """Keeps one trial's progress.json current: `epoch()` after each epoch, and a heartbeat
    thread between them (a paper-size epoch can take longer than the stale rule's patience).
    Failures to write are logged, never raised: progress must not stop training."""

    _live: "set[TrialProgressWriter]" = set()  # this process's writers whose heartbeat runs

    def __init__(
        self,
        run: str,
        trial: str,
        stage: str,
        epochs_planned: dict[str, int],
        history: list[dict[str, Any]],
        resumed_after_epoch=(),
        placement: Placement | None = None,
        heartbeat_s: float = HEARTBEAT_S,
    ):
        self._run = run
        now = time.time()
        self._record = TrialProgress(
            trial=trial,
            stage=stage,
            epochs_planned=dict(epochs_planned),
            epochs=tuple(history),
            started=now,
            updated=now,
            placement=placement or Placement.of_process(),
            resumed_after_epoch=tuple(resumed_after_epoch),
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._write()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True)
        self._thread.start()
        TrialProgressWriter._live.add(self)

    @classmethod
    def stop_all(cls) -> None:
        """Stop every heartbeat of this process (its stage failed)."""
        for writer in list(cls._live):
            writer.stop()

    @property
    def record(self) -> TrialProgress:
        return self._record

    def epoch(self, metrics: dict[str, Any]) -> None:
        with self._lock:
            self._record = dataclasses.replace(self._record, epochs=(*self._record.epochs, dict(metrics)))
        self._write()

    def close(self) -> None:
        """The last write, when the trial is recorded."""
        self.stop()
        self._write()

    def stop(self) -> None:
        """No more heartbeats (a stage that failed must not look alive)."""
        self._stop.set()
        self._thread.join(timeout=5)
        TrialProgressWriter._live.discard(self)

    def _beat(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self._write()

    def _write(self) -> None:
        with self._lock:
            self._record = dataclasses.replace(self._record, updated=time.time())
            try:
                write_trial_progress(self._run, self._record)
            except OSError as e:
                log.warning("%s: progress not written (%s)", self._record.trial, e)


# -- reading ---------------------------------------------------------------------------------


def _read(fs: pafs.FileSystem, path: str, parse):
    """A record, or None when it is absent or cannot be read (logged: progress is best effort
    and never stops the results from loading)."""
    try:
        return parse(storage.read_json(fs, path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, UserError) as e:
        log.warning("%s: progress record skipped (%s)", path, e)
        return None


def read_trial_progress(fs: pafs.FileSystem, run_path: str, trials: list[str]) -> dict[str, TrialProgress]:
    out = {}
    for trial in trials:
        record = _read(fs, layout.progress(run_path, trial), TrialProgress.from_dict)
        if record is not None:
            out[trial] = record
    return out


def read_members(fs: pafs.FileSystem, run_path: str) -> dict[tuple[int, int, str], MemberRecord]:
    infos = fs.get_file_info(pafs.FileSelector(layout.members_dir(run_path), allow_not_found=True))
    out = {}
    for info in sorted(infos, key=lambda i: i.path):
        if info.type == pafs.FileType.File and info.base_name.endswith(".json"):
            record = _read(fs, info.path, MemberRecord.from_dict)
            if record is not None:
                out[record.key] = record
    return out
