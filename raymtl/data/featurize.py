"""Featurization on Ray Data: files -> soundfile read -> log-mel -> channel images -> Parquet.

The output folder (FEATURES format version 2, `raymtl.data.stored`, docs/formats.md) holds one
folder of Parquet parts per partition (dataset, subset, fold), one row per clip with its stored
channel images and mixup keys; a `manifest.json` (feature settings, class lists, counts, each
partition's files), a `report.json` (the summary printed at the end) and `rejects.csv`
(file,reason). It is written under `<out>.partial` and renamed when complete, so a finished
FEATURES folder is always whole; it is never overwritten unless asked.
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
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray

import raymtl
from raymtl import schema, storage
from raymtl.config import FeatureConfig
from raymtl.data import stored
from raymtl.data.audio import load_clip
from raymtl.data.esc50 import parse_esc50
from raymtl.data.features import IMAGES, LogMel, channel_images
from raymtl.data.records import ClipRecord, Reject
from raymtl.data.tut2017 import parse_tut2017
from raymtl.errors import AudioError, InputFileError, OutputExistsError
from raymtl.live import count_progress
from raymtl.ray_session import ensure_ray

log = logging.getLogger(__name__)

FORMAT = stored.FORMAT
FORMAT_VERSION = stored.FORMAT_VERSION
PART = "part"  # the partition column: Ray writes one folder per value and leaves it out of the files
STORED = {im for images in stored.STORED_IMAGES.values() for im in images}
# Parquet compression, chosen by measurement at full size (benchmarks/bench_stream.py): the int16
# images barely compress (their low bits are noise), and an uncompressed page decodes as a copy.
COMPRESSION = "none"
# Bytes of clip rows per Parquet file: one block of a stream each.
FILE_BYTES = 64 * 2**20
SHUFFLE_SEED = 0  # clips are written in a seeded random order within a partition (see featurize)


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
    """A Ray actor collecting rejects, notes and the count of clips read from the featurizer
    workers (a side channel: Ray Data has no second output, and the driver blocks in the write)."""

    def __init__(self) -> None:
        self.rejects: list[tuple[str, str]] = []
        self.notes: list[tuple[str, str]] = []
        self.clips_read = 0  # featurized or rejected

    def reject(self, file: str, reason: str) -> None:
        self.rejects.append((file, reason))

    def note(self, file: str, note: str) -> None:
        self.notes.append((file, note))

    def read(self, clips: int) -> None:
        self.clips_read += clips

    def count(self) -> int:
        return self.clips_read

    def get(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        return self.rejects, self.notes


def _clip_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Clip rows -> a FEATURES version 2 table (`raymtl.data.stored`): the clip's metadata, its
    stored channel images (binary int16, null where the dataset has no such image) and its
    precomputed mixup keys. `part` names the partition folder the row is written to."""

    def col(name: str) -> list:
        return [r.get(name) for r in rows]

    columns = {
        schema.DATASET: pa.array(col(schema.DATASET), pa.string()),
        schema.SUBSET: pa.array(col(schema.SUBSET), pa.string()),
        schema.CLIP: pa.array(col(schema.CLIP), pa.string()),
        schema.SOURCE: pa.array(col(schema.SOURCE), pa.string()),
        schema.FOLD: pa.array(col(schema.FOLD), pa.int32()),
        schema.LABEL: pa.array(col(schema.LABEL), pa.int32()),
        schema.CLASS_NAME: pa.array(col(schema.CLASS_NAME), pa.string()),
        stored.N_FRAMES: pa.array(col(stored.N_FRAMES), pa.int32()),
    }
    for image in IMAGES:
        if image in STORED:
            columns[image] = pa.array(col(image), pa.binary())
    columns[stored.PATCH_KEYS] = pa.array(col(stored.PATCH_KEYS), pa.list_(pa.uint64()))
    columns[PART] = pa.array(col(PART), pa.string())
    return pa.table(columns)


class ClipFeaturizer:
    """Ray Data callable class: a batch of clip records -> a table of clip rows (format version 2)."""

    def __init__(self, cfg: FeatureConfig, log_actor, strict: bool = False):
        self.cfg = cfg
        self.log_actor = log_actor
        self.strict = strict
        self.logmel = LogMel(cfg)
        self.logmel(np.zeros(cfg.sample_rate_hz, np.float32))  # pay the first call's imports now

    def _clip_row(self, rec: ClipRecord) -> dict[str, Any]:
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
        row: dict[str, Any] = {k: v for k, v in rec.to_dict().items() if k != "path"}
        images = channel_images(audio.samples, self.logmel)
        n_frames = next(iter(images.values())).shape[1]
        clipped = 0
        for name in stored.STORED_IMAGES[rec.dataset]:
            q, n = stored.quantize(images[name])
            row[name] = stored.encode(q)
            clipped += n
        if clipped:
            self.log_actor.note.remote(rec.path, f"{clipped} log-mel values beyond +-256 dB clipped")
        row[stored.N_FRAMES] = n_frames
        row[stored.PATCH_KEYS] = stored.patch_keys(
            rec.clip, stored.KEYED_IMAGES[rec.dataset], cfg.n_patches(n_frames)
        )
        row[PART] = stored.partition_name(rec.dataset, rec.subset, rec.fold)
        return row

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:

        rows: list[dict] = []
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
                rows.append(self._clip_row(rec))
            except AudioError as e:
                # Synchronous, so the reject is recorded before this task can finish.
                ray.get(self.log_actor.reject.remote(e.file, e.reason))
                if self.strict:
                    raise
                continue
        self.log_actor.read.remote(len(batch["clip"]))  # for the progress bar; no need to wait
        return _clip_table(rows)


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
    log.info(
        "featurizing %d clips (%d rejected by the metadata checks) into %s", len(clips), len(rejects), out
    )

    partial = out_path + ".partial"
    storage.delete_dir(fs, partial)  # left by an interrupted run; never a finished result
    ensure_ray()
    log_actor = ray.remote(num_cpus=0)(FeaturizeLog).remote()
    n_workers = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
    # Partition by partition, so that a write task mostly sees one partition and writes one file
    # of it; within a partition in a seeded random order, so that a file (a block of the stream)
    # holds a mix of classes and recordings rather than one recording's consecutive segments.
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(clips))
    ordered = sorted(
        (clips[i] for i in order), key=lambda c: stored.partition_name(c.dataset, c.subset, c.fold)
    )
    ds = ray.data.from_items(
        [c.to_dict() for c in ordered], override_num_blocks=max(1, len(clips) // clips_per_batch)
    )
    ds = ds.map_batches(
        ClipFeaturizer,
        fn_constructor_kwargs={"cfg": cfg, "log_actor": log_actor, "strict": strict},
        batch_size=clips_per_batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=n_workers),
    )
    try:
        with count_progress(
            "featurize", len(clips), unit="clips", poll=lambda: ray.get(log_actor.count.remote(), timeout=10)
        ) as progress:
            ds.write_parquet(
                partial,
                filesystem=fs,
                partition_cols=[PART],
                min_bytes_per_file=FILE_BYTES,
                partitioning_flavor=None,  # folders named by the value alone: "tut2017-dev-fold-1"
                compression=COMPRESSION,
            )
            progress.update(len(clips))  # written, so every clip was read (the last counts may be in flight)
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
    partitions = _partitions(fs, partial, cfg)
    patch_count = sum(p["patches"] for p in partitions.values())
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
        "storage": {
            "rows": "one per clip",
            "images": {d: list(v) for d, v in stored.STORED_IMAGES.items()},
            "dtype": "int16",
            "db_step": stored.DB_STEP,
            "keyed_images": {d: list(v) for d, v in stored.KEYED_IMAGES.items()},
            "compression": COMPRESSION,
        },
        "columns": list(schema.STORED_COLUMNS),
        "partitions": partitions,
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


def _partitions(fs, path: str, cfg: FeatureConfig) -> dict[str, dict[str, Any]]:
    """Partition folder -> {dataset, subset, fold, clips, patches (every channel image, sum and
    diff included), files (relative to the FEATURES folder)}, from the files' small columns."""

    out: dict[str, dict[str, Any]] = {}
    for info in _parquet_files(fs, path):
        rel = info.path[len(path.rstrip("/")) + 1 :]
        t = pq.read_table(
            fs.open_input_file(info.path),
            columns=[schema.DATASET, schema.SUBSET, schema.FOLD, stored.N_FRAMES],
        )
        if t.num_rows == 0:
            continue
        dataset = t[schema.DATASET][0].as_py()
        part = out.setdefault(
            rel.split("/", 1)[0],
            {
                "dataset": dataset,
                "subset": t[schema.SUBSET][0].as_py(),
                "fold": t[schema.FOLD][0].as_py(),
                "clips": 0,
                "patches": 0,
                "files": [],
            },
        )
        per_image = [cfg.n_patches(int(f)) for f in t[stored.N_FRAMES].to_numpy()]
        part["clips"] += t.num_rows
        part["patches"] += len(stored.KEYED_IMAGES[dataset]) * sum(per_image)
        part["files"].append(rel)
    return dict(sorted(out.items()))


def _parquet_files(fs, path: str):
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
