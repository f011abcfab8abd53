"""Loading the trained models of a RUN for prediction, and scoring patches with them.

Two ways to answer (`--model`):

- `mtl`: ONE stage-1 multitask network (layers 1-16 of both branches, both heads) answers the
  scene and the events in one forward pass. A mtl-ic trial holds two such networks, one per
  target task (model-asc.pt: alpha 0.7, trained for ASC's epochs and selected on ASC
  validation; model-aec.pt: alpha 0.6, selected on AEC validation). The rule: the ASC-target
  network (`--mtl-target aec` for the other) of the finished mtl-ic trial with the highest
  validation accuracy for that target (result.json), ties to the lower division, then repeat,
  then triple before quadruple; `--trial NAME` names the trial instead. Without mtl-ic trials,
  plain mtl trials are used the same way. The scene images are those of the trial's variant.
- `ensemble`: the fine-tuned fusion members of each task, fused as `raymtl reduce` fuses them:
  per patch the members' softmax scores are summed (a member scores the images of its variant:
  `diff` only the quadruple members), then the recording votes. Members are those that
  RUN/ensemble/summary.json lists for the task (what reduce fused) or, before a reduce, every
  finished `finetune-<task>` trial. New audio is in no member's test split, so every member
  votes (reduce lets an ESC clip be scored only by its division's members).

Class names, first found: the checkpoint (`extra["class_names"]`, written by trials run since
predict exists), the FEATURES folder the RUN was trained on (RUN/manifest.json names it), or the
published vocabularies when the class counts are theirs (15 TUT 2017 scenes; 50 ESC-50 classes,
or the 10 of ESC-10): featurize takes the class lists from the metadata in the published order,
so those are the same lists. A RUN can therefore be used without its FEATURES folder.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pyarrow.fs as pafs
import torch

from raymtl import storage
from raymtl.config import TASKS, VARIANTS, FeatureConfig, Preset
from raymtl.data.classes import ESC10_TARGETS, ESC50_CLASSES, TUT2017_SCENES
from raymtl.data.features import IMAGES, VARIANT_IMAGES
from raymtl.ensemble.plan import member_experiment
from raymtl.errors import InputFileError, UserError
from raymtl.models import load_model
from raymtl.run import layout, records
from raymtl.run.records import RunManifest, TrialResult
from raymtl.schema import FEATURES_MANIFEST, TASK_DATASET
from raymtl.serving.patches import EVENT_IMAGE, PatchSet, Scores
from raymtl.train import trial as T

log = logging.getLogger(__name__)

MODEL_KINDS = ("mtl", "ensemble")
STAGE1_EXPERIMENTS = ("mtl-ic", "mtl")  # in order of preference for --model mtl
MULTITASK_KINDS = ("mtl", "mtl-ic")  # checkpoint kinds with both heads
CLASS_NAMES_KEY = "class_names"  # in a checkpoint's `extra`: {"asc": [...], "aec": [...]}
PUBLISHED_CLASSES = {
    "asc": {len(TUT2017_SCENES): list(TUT2017_SCENES)},
    "aec": {
        len(ESC50_CLASSES): list(ESC50_CLASSES),
        len(ESC10_TARGETS): [ESC50_CLASSES[i] for i in sorted(ESC10_TARGETS)],
    },
}


@dataclass
class Member:
    """One loaded network and where it came from."""

    trial: str
    file: str  # the model file (local path or URI)
    spec: T.TrialSpec
    net: Any  # torch.nn.Module in eval mode
    meta: dict[str, Any]  # load_model's meta
    val_accuracy: float | None

    @property
    def variant(self) -> str:
        return self.spec.variant

    def describe(self, run_path: str) -> dict[str, Any]:
        rel = self.file[len(run_path) :].lstrip("/") if self.file.startswith(run_path) else self.file
        return {
            "trial": self.trial,
            "file": rel,
            "kind": self.meta["kind"],
            "target": self.meta["task"],
            "variant": self.variant,
            "val_accuracy": self.val_accuracy,
        }


@dataclass
class ModelSet:
    """The networks that answer, the feature settings and the class names."""

    kind: str  # "mtl" | "ensemble"
    run: str
    run_path: str
    features: FeatureConfig
    class_names: dict[str, list[str]]
    class_names_source: str
    scene_members: list[Member]
    event_members: list[Member]
    device: Any = None  # torch.device
    batch_size: int = 256  # patches per forward pass
    rule: str = ""
    _scene_images: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:

        self.device = self.device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        wanted = {im for m in self.scene_members for im in VARIANT_IMAGES[m.variant]}
        self._scene_images = tuple(im for im in IMAGES if im in wanted)  # left, right, sum[, diff]

    @property
    def scene_images(self) -> tuple[str, ...]:
        return self._scene_images

    @property
    def n_classes(self) -> dict[str, int]:
        return {t: len(self.class_names[t]) for t in TASKS}

    def describe(self) -> dict[str, Any]:
        """The "model" object of the JSON answer."""
        return {
            "kind": self.kind,
            "run": os.path.basename(self.run_path.rstrip("/")),
            "rule": self.rule,
            "scene_models": [m.describe(self.run_path) for m in self.scene_members],
            "event_models": [m.describe(self.run_path) for m in self.event_members],
            "images": {"scene": list(self.scene_images), "events": [EVENT_IMAGE]},
            "n_classes": {"scene": self.n_classes["asc"], "events": self.n_classes["aec"]},
            "class_names_from": self.class_names_source,
        }

    # ------------------------------------------------------------ scoring

    def forward(self, net, x: np.ndarray) -> dict[str, np.ndarray]:
        """Softmax scores of every head of `net` for patches (N, 128, 128), in batches."""

        out: dict[str, list[np.ndarray]] = {}
        cuda = self.device.type == "cuda"
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=cuda):
            for i in range(0, len(x), self.batch_size):
                logits = net(
                    torch.as_tensor(np.ascontiguousarray(x[i : i + self.batch_size]), device=self.device)
                )
                for t, v in logits.items():
                    out.setdefault(t, []).append(v.float().softmax(dim=1).cpu().numpy())
        return {t: np.concatenate(v) for t, v in out.items()}

    def score(self, sets: Sequence[PatchSet]) -> list[Scores]:
        """Scores of many PatchSets (segments, files or requests) at once: each network runs
        over all of their patches together, then the results are split back."""
        sets = list(sets)
        if not sets:
            return []
        scene = np.concatenate([s.scene for s in sets])  # (N, 128, 128)
        scene_image = np.concatenate([s.scene_image for s in sets])  # (N,)
        events = np.concatenate([s.events for s in sets])  # (M, 128, 128)
        p = self.n_classes
        scene_sum = np.zeros((len(scene), p["asc"]))
        scene_n = np.zeros(len(scene), dtype=np.int64)
        event_sum = np.zeros((len(events), p["aec"]))
        event_n = np.zeros(len(events), dtype=np.int64)
        if self.kind == "mtl":
            # One network, one pass over the scene and the event patches together, both heads.
            (member,) = self.scene_members
            out = self.forward(member.net, np.concatenate([scene, events]))
            scene_sum += out["asc"][: len(scene)]
            event_sum += out["aec"][len(scene) :]
            scene_n += 1
            event_n += 1
        else:
            for m in self.scene_members:
                mask = np.isin(scene_image, VARIANT_IMAGES[m.variant])
                if mask.any():
                    scene_sum[mask] += self.forward(m.net, scene[mask])["asc"]
                    scene_n[mask] += 1
            for m in self.event_members:
                event_sum += self.forward(m.net, events)["aec"]
                event_n += 1
        if (scene_n == 0).any() or (event_n == 0).any():
            raise RuntimeError("a patch that no model scored")  # scene_images comes from the members
        out_list, i, j = [], 0, 0
        for s in sets:
            a, b = len(s.scene), len(s.events)
            out_list.append(
                Scores(scene_sum[i : i + a], scene_n[i : i + a], event_sum[j : j + b], event_n[j : j + b])
            )
            i, j = i + a, j + b
        return out_list


# ---------------------------------------------------------------- the RUN folder


@dataclass(frozen=True)
class TrialInfo:
    spec: T.TrialSpec
    run: str  # the RUN's URI or local path
    result: TrialResult

    @property
    def name(self) -> str:
        return self.spec.name

    def model_uri(self, task: str) -> str:
        """Its model file of `task` (`s3://...` for a RUN on S3)."""
        _, run_path = storage.resolve(self.run)
        return storage.uri_of(self.run, layout.model(run_path, self.name, task))

    def val_accuracy(self, task: str) -> float | None:
        return self.result.val_accuracy.get(task)

    def sort_key(self, task: str) -> tuple:
        """Best validation first; ties: lower division, repeat, then triple before quadruple."""
        acc = self.val_accuracy(task)
        return (
            -(acc if acc is not None else -1.0),
            self.spec.division,
            self.spec.repeat,
            VARIANTS.index(self.spec.variant),
        )


def read_run(run: str) -> tuple[Any, str, RunManifest]:
    """(file system, path, its manifest); a UserError when RUN is not a run folder."""
    fs, path = storage.resolve(run)
    if not storage.is_file(fs, layout.manifest(path)):
        raise UserError(f"{run}: not a RUN folder (no {layout.MANIFEST}); train one with `raymtl ensemble`")
    return fs, path, records.read_manifest(fs, path)


def run_features(manifest: RunManifest) -> FeatureConfig:
    """The RUN's feature settings (its preset's), which predict must use unchanged."""
    return Preset.from_dict(manifest.preset).features


def finished_trials(run: str) -> list[TrialInfo]:
    """Every finished trial of RUN (a result.json), in name order."""

    fs, path = storage.resolve(run)
    trials_dir = layout.trials_dir(path)
    if not storage.exists(fs, trials_dir):
        return []
    out = []
    for info in sorted(fs.get_file_info(pafs.FileSelector(trials_dir)), key=lambda i: i.base_name):
        spec = T.parse_trial_name(info.base_name)
        if info.type != pafs.FileType.Directory or spec is None:
            continue  # a folder that is no trial of ours
        if storage.is_file(fs, layout.result(path, spec.name)):
            out.append(TrialInfo(spec, run, records.read_result(fs, path, spec.name)))
    return out


def _has_model(trial: TrialInfo, task: str) -> bool:
    fs, path = storage.resolve(trial.model_uri(task))
    return storage.is_file(fs, path)


def select_mtl(run: str, target: str = "asc", trial: str | None = None) -> TrialInfo:
    """The stage-1 trial whose `target` network answers `--model mtl` (module docstring)."""
    if target not in TASKS:
        raise UserError(f"unknown --mtl-target {target!r}; valid: {', '.join(TASKS)}")
    trials = [t for t in finished_trials(run) if _has_model(t, target)]
    if trial is not None:
        named = [t for t in trials if t.name == trial]
        if not named:
            raise UserError(f"{run}: no finished trial {trial!r} with a model-{target}.pt")
        return named[0]
    for experiment in STAGE1_EXPERIMENTS:
        candidates = [t for t in trials if t.spec.experiment == experiment]
        if candidates:
            return min(candidates, key=lambda t: t.sort_key(target))
    raise UserError(
        f"{run}: no finished {' or '.join(STAGE1_EXPERIMENTS)} trial with a model-{target}.pt; "
        "train one (`raymtl ensemble` or `raymtl train --experiment mtl-ic`) or use --model ensemble"
    )


def ensemble_members(run: str, task: str) -> list[TrialInfo]:
    """The fine-tuned members of `task` that `--model ensemble` fuses (module docstring)."""
    fs, path = storage.resolve(run)
    by_name = {t.name: t for t in finished_trials(run)}
    summary_path = layout.summary(path)
    names = None
    if storage.is_file(fs, summary_path):
        reduced = records.read_summary(fs, path).tasks.get(task)
        names = list(reduced.members) if reduced is not None else None
    if names is None:
        names = [n for n, t in by_name.items() if t.spec.experiment == member_experiment(task)]
    members = []
    for n in names:
        if n not in by_name or not _has_model(by_name[n], task):
            raise UserError(f"{run}: ensemble member {n} has no finished model-{task}.pt")
        members.append(by_name[n])
    if not members:
        raise UserError(
            f"{run}: no fine-tuned {task} members (finetune-{task} trials); "
            "run `raymtl ensemble` or use --model mtl"
        )
    return members


def best_member(run: str, task: str, trial: str | None = None) -> TrialInfo:
    """One fine-tuned member of `task`: the best-validating one (ties as in select_mtl), or `trial`."""
    members = ensemble_members(run, task)
    if trial is None:
        return min(members, key=lambda t: t.sort_key(task))
    named = [t for t in members if t.name == trial]
    if not named:
        raise UserError(
            f"{trial!r} is not a fine-tuned {task} member of {run}; "
            f"members: {', '.join(t.name for t in members)}"
        )
    return named[0]


def load_member(trial: TrialInfo, task: str, device=None) -> Member:
    path = trial.model_uri(task)
    fs, fs_path = storage.resolve(path)
    net, meta = load_model(io.BytesIO(storage.read_bytes(fs, fs_path)), map_location=device or "cpu")
    return Member(trial.name, path, trial.spec, net, meta, trial.val_accuracy(task))


# ---------------------------------------------------------------- class names


def class_names(manifest: RunManifest, metas: Sequence[dict[str, Any]]) -> tuple[dict[str, list[str]], str]:
    """({"asc": [...], "aec": [...]}, where they came from); see the module docstring."""
    counts = _class_counts(metas)
    for meta in metas:
        names = (meta.get("extra") or {}).get(CLASS_NAMES_KEY)
        if names and _fits(names, counts):
            return {t: list(names[t]) for t in TASKS}, "checkpoint"
    features = manifest.features
    if features:
        try:
            fs, path = storage.resolve(features)
            fm = storage.join(path, FEATURES_MANIFEST)
            if storage.is_file(fs, fm):
                classes = storage.read_json(fs, fm).get("classes", {})
                names = {t: classes.get(TASK_DATASET[t]) for t in TASKS}
                if _fits(names, counts):
                    return {t: list(names[t]) for t in TASKS}, f"features manifest {features}"
                log.warning("%s: class lists do not match the models' class counts %s", fm, counts)
        except (OSError, ValueError) as e:  # an unreachable FEATURES folder: use the next source
            log.debug("cannot read the class names from %s: %s", features, e)
    names = {t: PUBLISHED_CLASSES[t].get(counts[t]) for t in TASKS}
    if _fits(names, counts):
        return names, "published class lists"
    raise UserError(
        f"no class names for {counts['asc']} scene and {counts['aec']} event classes: the checkpoints do not "
        f"store them and the FEATURES folder {features!r} is not readable"
    )


def _class_counts(metas: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for meta in metas:
        for t, p in meta["n_classes"].items():
            if counts.setdefault(t, p) != p:
                raise InputFileError(
                    str(meta.get("extra", {}).get("trial", "a model")),
                    f"{p} {t} classes where others have {counts[t]}",
                )
    missing = [t for t in TASKS if t not in counts]
    if missing:
        raise UserError(f"the models give no class count for {', '.join(missing)}")
    return counts


def _fits(names: Any, counts: dict[str, int]) -> bool:
    return isinstance(names, dict) and all(
        isinstance(names.get(t), (list, tuple)) and len(names[t]) == counts[t] for t in TASKS
    )


# ---------------------------------------------------------------- the one way in


def load_models(
    run: str, kind: str = "mtl", *, mtl_target: str = "asc", trial: str | None = None, device=None
) -> ModelSet:
    """The ModelSet that answers `raymtl predict RUN --model KIND` (module docstring)."""
    if kind not in MODEL_KINDS:
        raise UserError(f"unknown --model {kind!r}; valid: {', '.join(MODEL_KINDS)}")
    _, run_path, manifest = read_run(run)
    features = run_features(manifest)
    if kind == "mtl":
        info = select_mtl(run, mtl_target, trial)
        member = load_member(info, mtl_target, device)
        if member.meta["kind"] not in MULTITASK_KINDS:
            raise UserError(f"{info.name}: a {member.meta['kind']} network has no heads for both tasks")
        scene, events = [member], [member]
        how = (
            "named by --trial" if trial else "best validation accuracy for its target among the mtl-ic trials"
        )
        rule = f"one stage-1 multitask network, target {mtl_target} ({how}); both heads in one forward pass"
    else:
        if trial is not None:
            raise UserError(
                "--trial picks the multitask network of --model mtl; the ensemble uses every member"
            )
        scene = [load_member(t, "asc", device) for t in ensemble_members(run, "asc")]
        events = [load_member(t, "aec", device) for t in ensemble_members(run, "aec")]
        rule = (
            "the fine-tuned members of each task: per patch the members' softmax scores are summed "
            "(each member scores the images of its variant), then the recording votes, as raymtl reduce"
        )
    metas = [m.meta for m in scene + events]
    names, source = class_names(manifest, metas)
    models = ModelSet(kind, run, run_path, features, names, source, scene, events, device=device, rule=rule)
    for m in scene + events:
        m.net.to(models.device)
    log.info(
        "predict with %s: %s (class names from %s)",
        kind,
        ", ".join(sorted({m.trial for m in scene + events})),
        source,
    )
    return models
