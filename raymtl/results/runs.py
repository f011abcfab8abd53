"""Reading a RUN folder as it is, finished or still going, through pyarrow file systems.

Nothing here writes. What a RUN holds is `raymtl.run.layout`'s to say; this reads the manifest,
the plan (the paper's matrix when absent), each trial's result.json and metrics.jsonl, and the
reduce's summary (live progress: raymtl.results.progress).

A file that cannot be read does not stop the others: it is recorded as the trial's problem, so a
dashboard on a damaged or half-copied run still shows the rest.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from raymtl import schema, storage
from raymtl.config import Preset
from raymtl.ensemble.plan import PAPER_PLAN, EnsemblePlan
from raymtl.errors import ConfigError, InputFileError, UserError
from raymtl.run import layout, records
from raymtl.run.records import EnsembleSummary, RunManifest, TrialResult
from raymtl.train import trial as T

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRef:
    """One RUN given on the command line: requests choose it by `index` or `name`, never by path."""

    index: int
    name: str
    uri: str


def run_refs(uris: list[str]) -> list[RunRef]:
    """Names are the folders' base names; a clash gets the run's position appended (`RUN-2`)."""
    if not uris:
        raise UserError("give at least one RUN folder")
    bases = [uri.rstrip("/").rsplit("/", 1)[-1] or uri for uri in uris]
    refs = []
    for i, (uri, base) in enumerate(zip(uris, bases)):
        name = base if bases.count(base) == 1 else f"{base}-{i + 1}"
        refs.append(RunRef(index=i, name=name, uri=uri))
    return refs


@dataclass
class TrialFiles:
    """What one trial folder holds right now."""

    spec: T.TrialSpec
    result: TrialResult | None = None  # result.json: the trial is finished
    metrics: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl lines
    problem: str | None = None  # a file that exists but cannot be read
    updated: float | None = None  # newest mtime seen in the folder (s since epoch)


@dataclass
class RunFiles:
    """What one RUN folder holds right now."""

    ref: RunRef
    manifest: RunManifest | None  # None: absent or unreadable (logged)
    plan: EnsemblePlan
    plan_source: str  # "plan.json" or "paper default"
    trials: dict[str, TrialFiles]  # by trial name: the folders under RUN/trials/
    summary: EnsembleSummary | None  # RUN/ensemble/summary.json (None: not reduced, or unreadable)
    predictions_path: str | None  # RUN/ensemble/predictions.parquet, when present
    class_names: dict[str, list[str]]  # task -> names, index = label
    fs: pafs.FileSystem = field(repr=False, default=None)
    path: str = ""

    def preset(self) -> Preset | None:
        if self.manifest is None:
            return None
        try:
            return Preset.from_dict(self.manifest.preset)
        except (KeyError, TypeError, ConfigError):
            return None


def _mtime(info: pafs.FileInfo) -> float | None:
    return info.mtime.timestamp() if info.mtime is not None else None


class FinishedTrialCache:
    """Finished trials never change (result.json is written last and never overwritten), so a
    refreshing reader keeps them instead of reading them again every few seconds."""

    def __init__(self) -> None:
        self._trials: dict[tuple[str, str], TrialFiles] = {}

    def get(self, uri: str, name: str) -> TrialFiles | None:
        return self._trials.get((uri, name))

    def put(self, uri: str, trial: TrialFiles) -> None:
        if trial.result is not None and trial.problem is None:
            self._trials[(uri, trial.spec.name)] = trial


def read_run(ref: RunRef, cache: FinishedTrialCache | None = None) -> RunFiles:
    """Everything of RUN except scores and Ray progress. Raises UserError if RUN is not a run."""
    fs, path = storage.resolve(ref.uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.Directory:
        raise UserError(f"{ref.uri}: no such RUN folder")
    manifest_path, trials_path = layout.manifest(path), layout.trials_dir(path)
    if not storage.is_file(fs, manifest_path) and not storage.exists(fs, trials_path):
        raise UserError(f"{ref.uri}: not a RUN folder (no {layout.MANIFEST} and no {layout.TRIALS_DIR}/)")
    manifest = _read_manifest(fs, path) if storage.is_file(fs, manifest_path) else None
    plan, plan_source = _read_plan(fs, path)
    trials = {}
    for entry in fs.get_file_info(pafs.FileSelector(trials_path, allow_not_found=True)):
        if entry.type != pafs.FileType.Directory:
            continue
        name = entry.base_name
        spec = T.parse_trial_name(name)
        if spec is None:
            log.warning("%s: ignoring %s/%s (not a trial name)", ref.uri, layout.TRIALS_DIR, name)
            continue
        cached = cache.get(ref.uri, name) if cache else None
        trials[name] = cached or _read_trial(fs, path, spec)
        if cache and cached is None:
            cache.put(ref.uri, trials[name])
    summary = _read_summary(fs, path) if storage.is_file(fs, layout.summary(path)) else None
    predictions = layout.predictions(path)
    return RunFiles(
        ref=ref,
        manifest=manifest,
        plan=plan,
        plan_source=plan_source,
        trials=trials,
        summary=summary,
        predictions_path=predictions if storage.is_file(fs, predictions) else None,
        class_names=_class_names(manifest, summary, trials),
        fs=fs,
        path=path,
    )


def _read_manifest(fs, path: str) -> RunManifest | None:
    try:
        return records.read_manifest(fs, path)
    except (InputFileError, OSError, UnicodeDecodeError) as e:
        log.warning("%s: unreadable (%s)", layout.manifest(path), e)
        return None


def _read_summary(fs, path: str) -> EnsembleSummary | None:
    try:
        return records.read_summary(fs, path)
    except (InputFileError, OSError, UnicodeDecodeError) as e:
        log.warning("%s: unreadable (%s)", layout.summary(path), e)
        return None


def _read_json_or_none(fs, path: str) -> Any:
    if not storage.is_file(fs, path):
        return None
    try:
        return storage.read_json(fs, path)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        log.warning("%s: unreadable (%s)", path, e)
        return None


def _read_plan(fs, path: str) -> tuple[EnsemblePlan, str]:
    values = _read_json_or_none(fs, layout.plan(path))
    if values is None:
        return PAPER_PLAN, "paper default"
    try:
        return EnsemblePlan.from_dict(values), layout.PLAN
    except ConfigError as e:
        log.warning("%s: %s; taking the paper's matrix", layout.plan(path), e)
        return PAPER_PLAN, "paper default"


def _read_trial(fs, run_path: str, spec: T.TrialSpec) -> TrialFiles:
    trial = TrialFiles(spec=spec)
    tdir = layout.trial_dir(run_path, spec.name)
    files = fs.get_file_info(pafs.FileSelector(tdir, allow_not_found=True))
    times = [t for t in (_mtime(f) for f in files) if t is not None]
    trial.updated = max(times) if times else None
    names = {f.base_name for f in files if f.type == pafs.FileType.File}
    try:
        if layout.RESULT in names:
            trial.result = records.read_result(fs, run_path, spec.name)
        if layout.METRICS in names:
            text = storage.read_bytes(fs, layout.metrics(run_path, spec.name)).decode("utf-8")
            trial.metrics = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (InputFileError, ValueError, UnicodeDecodeError, OSError) as e:  # JSONDecodeError: a ValueError
        trial.result = None
        trial.problem = f"unreadable trial files ({e})"
        log.warning("%s: %s", tdir, trial.problem)
    return trial


def _class_names(
    manifest: RunManifest | None, summary: EnsembleSummary | None, trials: dict[str, TrialFiles]
) -> dict[str, list[str]]:
    """Per task, from FEATURES/manifest.json; where that cannot be read, `class <label>`."""
    names: dict[str, list[str]] = {}
    features = manifest.features if manifest else None
    if isinstance(features, str) and features:
        try:
            fs, path = storage.resolve(features)
            classes = _read_json_or_none(fs, storage.join(path, schema.FEATURES_MANIFEST)) or {}
            classes = classes.get("classes", {})
            for task, dataset in schema.TASK_DATASET.items():
                if isinstance(classes.get(dataset), list):
                    names[task] = [str(c) for c in classes[dataset]]
        except (OSError, ValueError) as e:  # an unreachable bucket, a malformed URI
            log.warning("class names: cannot read the features manifest at %s (%s)", features, e)
    for task in schema.TASK_DATASET:
        if task in names:
            continue
        n = _n_classes(task, summary, trials)
        if n:
            names[task] = [f"class {i}" for i in range(n)]
    return names


def _n_classes(task: str, summary: EnsembleSummary | None, trials: dict[str, TrialFiles]) -> int | None:
    if summary is not None and task in summary.tasks and summary.tasks[task].n_classes:
        return summary.tasks[task].n_classes
    for t in trials.values():
        if t.result is not None and task in t.result.n_classes:
            return t.result.n_classes[task]
    return None
