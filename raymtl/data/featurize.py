"""Featurization on Ray Data: files -> soundfile read -> log-mel -> channel images -> patches -> Parquet.

The output folder holds Parquet parts (one row per patch, columns in `raymtl.schema`), a
`manifest.json` (feature settings, class lists, counts), a `report.json` (the summary printed at
the end) and `rejects.csv` (file,reason). It is written under `<out>.partial` and renamed when
complete, so a finished FEATURES folder is always whole; it is never overwritten unless asked.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

import raymtl
from raymtl import schema, storage
from raymtl.config import FeatureConfig
from raymtl.data.audio import load_clip
from raymtl.data.esc50 import parse_esc50
from raymtl.data.features import LogMel, channel_images, patches
from raymtl.data.records import ClipRecord, Reject
from raymtl.data.tut2017 import parse_tut2017
from raymtl.errors import AudioError, InputFileError, OutputExistsError

log = logging.getLogger(__name__)

FORMAT = "raymtl-features"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FeaturizeReport:
    out: str
    clips: int
    patches: int
    rejects: int
    notes: int  # clips resampled, padded or cut
    seconds: float
    bytes_written: int
    audio_seconds: float

    def summary(self) -> str:
        return (
            f"featurized {self.clips} clips ({self.audio_seconds / 60:.1f} min of audio) into "
            f"{self.patches} patches in {self.seconds:.1f} s; {self.rejects} rejected, "
            f"{self.notes} resampled/padded/cut; {self.bytes_written / 2**20:.1f} MiB written to {self.out}"
        )


class FeaturizeLog:
    """A Ray actor collecting rejects and notes from the featurizer workers (a side channel:
    Ray Data has no second output)."""

    def __init__(self) -> None:
        self.rejects: list[tuple[str, str]] = []
        self.notes: list[tuple[str, str]] = []

    def reject(self, file: str, reason: str) -> None:
        self.rejects.append((file, reason))

    def note(self, file: str, note: str) -> None:
        self.notes.append((file, note))

    def get(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        return self.rejects, self.notes


def _patch_table(rows: list[dict[str, Any]], stacks: list[np.ndarray]) -> pa.Table:
    from ray.data.extensions import ArrowTensorArray

    def col(name: str) -> list:
        return [r[name] for r in rows]

    return pa.table(
        {
            schema.DATASET: pa.array(col(schema.DATASET), pa.string()),
            schema.SUBSET: pa.array(col(schema.SUBSET), pa.string()),
            schema.CLIP: pa.array(col(schema.CLIP), pa.string()),
            schema.SOURCE: pa.array(col(schema.SOURCE), pa.string()),
            schema.FOLD: pa.array(col(schema.FOLD), pa.int32()),
            schema.LABEL: pa.array(col(schema.LABEL), pa.int32()),
            schema.CLASS_NAME: pa.array(col(schema.CLASS_NAME), pa.string()),
            schema.IMAGE: pa.array(col(schema.IMAGE), pa.string()),
            schema.PATCH_INDEX: pa.array(col(schema.PATCH_INDEX), pa.int32()),
            schema.PATCH: ArrowTensorArray.from_numpy(
                np.concatenate(stacks) if stacks else np.zeros((0, 128, 128), np.float32)
            ),
        }
    )


class ClipFeaturizer:
    """Ray Data callable class: a batch of clip records -> a table of patch rows."""

    def __init__(self, cfg: FeatureConfig, log_actor, strict: bool = False):
        self.cfg = cfg
        self.log_actor = log_actor
        self.strict = strict
        self.logmel = LogMel(cfg)
        self.logmel(np.zeros(cfg.sample_rate_hz, np.float32))  # pay librosa's lazy imports now

    def _clip_patches(self, rec: ClipRecord) -> tuple[list[dict], list[np.ndarray]]:
        cfg = self.cfg
        is_tut = rec.dataset == "tut2017"
        audio = load_clip(
            rec.path,
            channels=2 if is_tut else 1,
            sample_rate_hz=cfg.sample_rate_hz,
            duration_s=cfg.tut_duration_s if is_tut else cfg.esc_duration_s,
            exact_duration=is_tut,
            tolerance_s=cfg.tut_duration_tolerance_s,
            display_name=rec.path,
        )
        for note in audio.notes:
            self.log_actor.note.remote(rec.path, note)
        rows, stacks = [], []
        base = {k: v for k, v in rec.to_dict().items() if k != "path"}
        for image, img in channel_images(audio.samples, self.logmel).items():
            p = patches(img, cfg)
            stacks.append(p)
            rows.extend({**base, schema.IMAGE: image, schema.PATCH_INDEX: i} for i in range(len(p)))
        return rows, stacks

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        import ray

        rows: list[dict] = []
        stacks: list[np.ndarray] = []
        for i in range(len(batch["clip"])):
            fold = batch["fold"][i]
            rec = ClipRecord(
                dataset=str(batch["dataset"][i]),
                subset=str(batch["subset"][i]),
                clip=str(batch["clip"][i]),
                path=str(batch["path"][i]),
                source=str(batch["source"][i]),
                fold=None if fold is None or fold != fold else int(fold),
                label=int(batch["label"][i]),
                class_name=str(batch["class_name"][i]),
            )
            try:
                r, s = self._clip_patches(rec)
            except AudioError as e:
                # Synchronous, so the reject is recorded before this task can finish.
                ray.get(self.log_actor.reject.remote(e.file, e.reason))
                if self.strict:
                    raise
                continue
            rows.extend(r)
            stacks.extend(s)
        return _patch_table(rows, stacks)


def is_finished(out: str) -> bool:
    fs, path = storage.resolve(out)
    return storage.is_file(fs, storage.join(path, schema.FEATURES_MANIFEST))


def _rejects_csv(rejects: list[Reject]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "reason"])
    w.writerows((r.file, r.reason) for r in rejects)
    return buf.getvalue()


def featurize(
    esc: str,
    tut_dev: str,
    tut_eval: str,
    out: str,
    *,
    esc_subset: str = "all",
    strict: bool = False,
    overwrite: bool = False,
    cfg: FeatureConfig = FeatureConfig(),
    concurrency: int | None = None,
    clips_per_batch: int = 4,
) -> FeaturizeReport:
    """Featurize both datasets into `out`. Raises `InputFileError` (strict mode, first bad file),
    `LayoutError` (unusable dataset folder) or `OutputExistsError`."""
    import ray

    from raymtl.ray_session import ensure_ray

    t0 = time.perf_counter()
    fs, out_path = storage.resolve(out)
    if storage.exists(fs, out_path) and not overwrite:
        what = "a finished FEATURES folder" if is_finished(out) else "a folder"
        raise OutputExistsError(f"{out} already exists ({what}); pass --overwrite to replace it")

    esc_layout = parse_esc50(esc, esc_subset)
    tut_layout = parse_tut2017(tut_dev, tut_eval)
    rejects = list(esc_layout.rejects) + list(tut_layout.rejects)
    if strict and rejects:
        raise InputFileError(rejects[0].file, rejects[0].reason)
    clips = list(esc_layout.clips) + list(tut_layout.clips)
    log.info("featurizing %d clips (%d rejected by the metadata checks) into %s", len(clips), len(rejects), out)

    partial = out_path + ".partial"
    storage.delete_dir(fs, partial)  # left by an interrupted run; never a finished result
    ensure_ray()
    log_actor = ray.remote(num_cpus=0)(FeaturizeLog).remote()
    n_workers = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
    ds = ray.data.from_items([c.to_dict() for c in clips], override_num_blocks=max(1, len(clips) // clips_per_batch))
    ds = ds.map_batches(
        ClipFeaturizer,
        fn_constructor_kwargs={"cfg": cfg, "log_actor": log_actor, "strict": strict},
        batch_size=clips_per_batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=n_workers),
    )
    try:
        ds.write_parquet(partial, filesystem=fs, min_rows_per_file=2048)
    except Exception:
        audio_rejects, _ = ray.get(log_actor.get.remote())
        storage.delete_dir(fs, partial)
        if strict and audio_rejects:
            raise InputFileError(*audio_rejects[0]) from None
        raise
    audio_rejects, notes = ray.get(log_actor.get.remote())
    ray.kill(log_actor)
    rejects += [Reject(f, r) for f, r in audio_rejects]

    rejected_paths = {f for f, _ in audio_rejects}
    kept = [c for c in clips if c.path not in rejected_paths]
    patch_count = _count_rows(fs, partial)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "raymtl_version": raymtl.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "features": dataclasses.asdict(cfg),
        "esc_subset": esc_subset,
        "inputs": {"esc": str(esc), "tut_dev": str(tut_dev), "tut_eval": str(tut_eval)},
        "classes": {"esc50": list(esc_layout.classes), "tut2017": list(tut_layout.classes)},
        "clips": _clip_counts(kept),
        "patches": patch_count,
        "columns": list(schema.FEATURE_COLUMNS),
    }
    audio_s = sum(cfg.tut_duration_s if c.dataset == "tut2017" else cfg.esc_duration_s for c in kept)
    storage.write_text(fs, storage.join(partial, schema.FEATURES_REJECTS), _rejects_csv(rejects))
    storage.write_json(fs, storage.join(partial, schema.FEATURES_MANIFEST), manifest)
    report = FeaturizeReport(
        out=str(out),
        clips=len(kept),
        patches=patch_count,
        rejects=len(rejects),
        notes=len({f for f, _ in notes}),
        seconds=round(time.perf_counter() - t0, 2),
        bytes_written=storage.total_bytes(fs, partial),
        audio_seconds=audio_s,
    )
    storage.write_json(
        fs,
        storage.join(partial, schema.FEATURES_REPORT),
        {**dataclasses.asdict(report), "notes_detail": [{"file": f, "note": n} for f, n in notes]},
    )
    _swap_in(fs, partial, out_path)
    for f, n in notes:
        log.info("note: %s: %s", f, n)
    for r in rejects:
        log.warning("rejected %s: %s", r.file, r.reason)
    return report


def _count_rows(fs, path: str) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(fs.open_input_file(i.path)).metadata.num_rows for i in _parquet_files(fs, path))


def _parquet_files(fs, path: str):
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return sorted((i for i in infos if i.path.endswith(".parquet")), key=lambda i: i.path)


def _clip_counts(clips: list[ClipRecord]) -> dict[str, dict[str, dict[str, int]]]:
    """dataset -> subset -> fold (as a string, "none" for the TUT evaluation set) -> clips."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for c in clips:
        by_fold = out.setdefault(c.dataset, {}).setdefault(c.subset, {})
        key = "none" if c.fold is None else str(c.fold)
        by_fold[key] = by_fold.get(key, 0) + 1
    return out


def _swap_in(fs, partial: str, out_path: str) -> None:
    """Rename the finished partial folder to its final name (replacing an old one if asked)."""
    if storage.exists(fs, out_path):
        old = out_path + ".old"
        storage.delete_dir(fs, old)
        storage.move_dir(fs, out_path, old)
        storage.move_dir(fs, partial, out_path)
        storage.delete_dir(fs, old)
    else:
        storage.move_dir(fs, partial, out_path)
