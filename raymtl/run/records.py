"""The RUN's finished records as typed values: `RunManifest` (RUN/manifest.json), `TrialResult`
(RUN/trials/<trial>/result.json) and `EnsembleSummary` (RUN/ensemble/summary.json). Writers build
them and call `to_dict`; readers call `read_manifest` / `read_result` / `read_summary` and use
attributes, never keys.

Each file carries its format and version. A file without one was written before versions
existed, in the same shape as version 1, and reads as version 1; a newer version is refused with
a message naming the upgrade.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from raymtl import storage
from raymtl.errors import InputFileError
from raymtl.run import layout
from raymtl.run.progress import Placement

RUN_FORMAT, RUN_VERSION = "raymtl-run", 1
RESULT_FORMAT, RESULT_VERSION = "raymtl-trial-result", 1
SUMMARY_FORMAT, SUMMARY_VERSION = "raymtl-ensemble-summary", 1


def _version(d: dict[str, Any], latest: int, path: str) -> None:
    version = d.get("version", 1)
    if not isinstance(version, int) or version > latest:
        raise InputFileError(
            path, f"format version {version!r} is newer than this raymtl reads ({latest}); upgrade raymtl"
        )


@dataclass(frozen=True)
class RunManifest:
    """What a RUN was made with; the first writer wins, later runs must match it."""

    preset: dict[str, Any]  # raymtl.config.Preset.to_dict()
    features: str  # the FEATURES folder (absolute path or URI)
    created: str  # "%Y-%m-%dT%H:%M:%S%z"
    raymtl_version: str

    @property
    def preset_name(self) -> str:
        return str(self.preset.get("name"))

    def to_dict(self) -> dict[str, Any]:
        return {"format": RUN_FORMAT, "version": RUN_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = layout.MANIFEST) -> "RunManifest":
        _version(d, RUN_VERSION, path)
        try:
            return cls(
                preset=dict(d["preset"]),
                features=str(d.get("features") or ""),
                created=str(d.get("created") or ""),
                raymtl_version=str(d.get("raymtl_version") or ""),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InputFileError(path, f"not a RUN manifest ({e!r})") from None


@dataclass(frozen=True)
class TrialResult:
    """A finished trial: written last into its folder, so its presence means finished."""

    trial: str
    experiment: str
    division: int
    repeat: int
    variant: str
    preset: str  # the preset's name
    targets: tuple[str, ...]  # the tasks it trained a network for
    test_accuracy: dict[str, float]  # per target: per-recording accuracy of the selected network
    val_accuracy: dict[str, float]  # ... its best validation accuracy
    best_epoch: dict[str, int]  # ... the epoch selected
    epochs: dict[str, int]  # ... epochs planned
    seed: int
    stage1: dict[str, str | None]  # per target: the model file it was fine-tuned from
    models: dict[str, str]  # per target: its model file
    n_classes: dict[str, int]
    seconds: float  # the stage's own time in its Train worker, over restarts
    device: str  # CPU | GPU
    finished: str  # "%Y-%m-%dT%H:%M:%S%z"
    raymtl_version: str
    resumed_after_epoch: tuple[int, ...] = ()  # worker restarts from a checkpoint
    placement: Placement | None = None  # where it finished training (older results: unknown)
    # Every (re)start of the trial's worker: node_id, node_ip, device, resources, from_epoch, started.
    placements: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["targets"], d["resumed_after_epoch"] = list(self.targets), list(self.resumed_after_epoch)
        d["placements"] = [dict(p) for p in self.placements]
        return {"format": RESULT_FORMAT, "version": RESULT_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = layout.RESULT) -> "TrialResult":
        _version(d, RESULT_VERSION, path)
        try:
            placement = d.get("placement")
            return cls(
                trial=str(d["trial"]),
                experiment=str(d["experiment"]),
                division=int(d["division"]),
                repeat=int(d["repeat"]),
                variant=str(d["variant"]),
                preset=str(d["preset"]),
                targets=tuple(d["targets"]),
                test_accuracy={str(t): float(a) for t, a in d["test_accuracy"].items()},
                val_accuracy={str(t): float(a) for t, a in d["val_accuracy"].items()},
                best_epoch={str(t): int(e) for t, e in d["best_epoch"].items()},
                epochs={str(t): int(e) for t, e in d["epochs"].items()},
                seed=int(d["seed"]),
                stage1=dict(d.get("stage1") or {}),
                models=dict(d.get("models") or {}),
                n_classes={str(t): int(n) for t, n in (d.get("n_classes") or {}).items()},
                seconds=float(d.get("seconds") or 0.0),
                device=str(d.get("device") or ""),
                finished=str(d.get("finished") or ""),
                raymtl_version=str(d.get("raymtl_version") or ""),
                resumed_after_epoch=tuple(int(e) for e in d.get("resumed_after_epoch") or ()),
                placement=Placement(**placement) if placement else None,
                placements=tuple(dict(p) for p in d.get("placements") or ()),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputFileError(path, f"not a trial result ({e!r})") from None


@dataclass(frozen=True)
class MemberAccuracy:
    """The single members' per-recording test accuracies (population std)."""

    mean: float | None
    std: float | None
    n: int
    per_member: dict[str, float]  # trial -> accuracy


@dataclass(frozen=True)
class TaskSummary:
    """One task's fused ensemble (raymtl.ensemble.reduce)."""

    n_planned: int
    n_members: int
    members: tuple[str, ...]  # the trials fused
    missing: tuple[str, ...]  # planned members left out
    missing_reasons: dict[str, str]
    ensemble_accuracy: float | None  # None: no member finished
    n_recordings: int
    n_patches: int
    n_classes: int | None
    member_accuracy: MemberAccuracy
    table1: dict[str, dict[str, Any]]  # per variant and "all": {mean, std, n_repeats, per_repeat}
    # {combinations: [{triple_repeat, quadruple_repeat, members, accuracy}], mean}
    eight_member: dict[str, Any]
    # [{groups, members, combinations, total_combinations, mean, min, max}]
    by_size: tuple[dict[str, Any], ...]
    note: str | None = None  # why nothing was fused

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["members"], d["missing"], d["by_size"] = list(self.members), list(self.missing), list(self.by_size)
        if self.note is None:
            del d["note"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TaskSummary":
        m = d["member_accuracy"]
        return cls(
            n_planned=int(d["n_planned"]),
            n_members=int(d["n_members"]),
            members=tuple(d["members"]),
            missing=tuple(d["missing"]),
            missing_reasons=dict(d.get("missing_reasons") or {}),
            ensemble_accuracy=None if d["ensemble_accuracy"] is None else float(d["ensemble_accuracy"]),
            n_recordings=int(d["n_recordings"]),
            n_patches=int(d.get("n_patches") or 0),
            n_classes=None if d.get("n_classes") is None else int(d["n_classes"]),
            member_accuracy=MemberAccuracy(
                m.get("mean"), m.get("std"), int(m.get("n") or 0), dict(m.get("per_member") or {})
            ),
            table1=dict(d.get("table1") or {}),
            eight_member=dict(d.get("eight_member") or {}),
            by_size=tuple(d.get("by_size") or ()),
            note=d.get("note"),
        )


@dataclass(frozen=True)
class EnsembleSummary:
    """`raymtl reduce`'s result: the plan it fused and each task's ensemble."""

    plan: dict[str, Any]  # raymtl.ensemble.plan.EnsemblePlan.to_dict()
    allow_partial: bool
    created: str  # "%Y-%m-%dT%H:%M:%S%z"
    std: str  # the standard deviation convention, in words
    combination_cap: int  # subsets evaluated per ensemble size, at most
    tasks: dict[str, TaskSummary]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SUMMARY_FORMAT,
            "version": SUMMARY_VERSION,
            "plan": self.plan,
            "allow_partial": self.allow_partial,
            "created": self.created,
            "std": self.std,
            "combination_cap": self.combination_cap,
            "tasks": {t: s.to_dict() for t, s in self.tasks.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = layout.SUMMARY) -> "EnsembleSummary":
        _version(d, SUMMARY_VERSION, path)
        try:
            return cls(
                plan=dict(d.get("plan") or {}),
                allow_partial=bool(d.get("allow_partial")),
                created=str(d.get("created") or ""),
                std=str(d.get("std") or ""),
                combination_cap=int(d.get("combination_cap") or 0),
                tasks={str(t): TaskSummary.from_dict(s) for t, s in d["tasks"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputFileError(path, f"not an ensemble summary ({e!r})") from None


def read_manifest(fs: pafs.FileSystem, run_path: str) -> RunManifest:
    path = layout.manifest(run_path)
    return RunManifest.from_dict(_json(fs, path), path)


def read_result(fs: pafs.FileSystem, run_path: str, trial: str) -> TrialResult:
    path = layout.result(run_path, trial)
    return TrialResult.from_dict(_json(fs, path), path)


def write_result(fs: pafs.FileSystem, run_path: str, result: TrialResult) -> None:
    """Never over a finished result (a FileExistsError)."""
    storage.write_json(fs, layout.result(run_path, result.trial), result.to_dict(), overwrite=False)


def read_summary(fs: pafs.FileSystem, run_path: str) -> EnsembleSummary:
    path = layout.summary(run_path)
    return EnsembleSummary.from_dict(_json(fs, path), path)


def write_summary(fs: pafs.FileSystem, run_path: str, summary: EnsembleSummary) -> None:
    """Replaces an earlier reduce's summary (reduce is a pure function of the trials)."""
    storage.write_json(fs, layout.summary(run_path), summary.to_dict())


def write_manifest(fs: pafs.FileSystem, run_path: str, manifest: RunManifest) -> None:
    storage.write_json(fs, layout.manifest(run_path), manifest.to_dict(), overwrite=False)


def _json(fs: pafs.FileSystem, path: str) -> dict[str, Any]:
    try:
        d = storage.read_json(fs, path)
    except ValueError as e:
        raise InputFileError(path, f"not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise InputFileError(path, "not a JSON object")
    return d
