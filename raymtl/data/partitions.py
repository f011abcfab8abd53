"""A FEATURES folder (format version 2, raymtl.data.stored) as the streams and the mixup pairing
read it: its manifest, which partition files a division's split reads, the stored images a
variant is made from, and the patches of a block of clip rows (which to emit, in what order).
Ray-free: the streams (raymtl.data.streams) build Ray Datasets on it.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from raymtl import schema, storage
from raymtl.config import TASKS, VARIANTS, FeatureConfig
from raymtl.data import stored
from raymtl.data.features import ESC_IMAGES, VARIANT_IMAGES
from raymtl.data.keys import splitmix64
from raymtl.data.splits import SPLITS, check_division, split_of
from raymtl.errors import ConfigError, UserError

DATASETS = ("tut2017", "esc50")
_SUBSAMPLE_SALT = np.uint64(0x5EED5A3B1E0F7A11)  # keeps the subsample unrelated to mixup partners


# ---------------------------------------------------------------------------------------------
# The manifest
# ---------------------------------------------------------------------------------------------


def read_manifest(features: str) -> dict[str, Any]:
    """manifest.json of a finished FEATURES folder of this format version; `UserError` otherwise
    (a version-1 folder: the message gives the featurize command that rewrites it)."""
    fs, path = storage.resolve(features)
    manifest_path = storage.join(path, schema.FEATURES_MANIFEST)
    if not storage.is_file(fs, manifest_path):
        raise UserError(
            f"{features}: not a finished FEATURES folder (no {schema.FEATURES_MANIFEST}); run featurize"
        )
    manifest = storage.read_json(fs, manifest_path)
    version = manifest.get("format_version")
    if manifest.get("format") != stored.FORMAT or version != stored.FORMAT_VERSION:
        raise UserError(
            f"{features}: FEATURES format version {version}, but this raymtl reads version "
            f"{stored.FORMAT_VERSION} (one row per clip, partitioned by split; docs/formats.md). "
            f"Rewrite it from the audio with: {rewrite_command(features, manifest)}"
        )
    return manifest


def rewrite_command(features: str, manifest: dict[str, Any]) -> str:
    """The `raymtl featurize` command that writes `features` again from the same audio."""
    inputs = manifest.get("inputs", {})
    cmd = (
        f"raymtl featurize --esc {inputs.get('esc', 'ESC50_DIR')} "
        f"--tut-dev {inputs.get('tut_dev', 'TUT_DEV_DIR')} "
        f"--tut-eval {inputs.get('tut_eval', 'TUT_EVAL_DIR')} --out {features} --overwrite"
    )
    if manifest.get("esc_subset", "all") != "all":
        cmd += f" --esc-subset {manifest['esc_subset']}"
    return cmd


def class_counts(features: str) -> dict[str, int]:
    """{"asc": number of TUT scene classes, "aec": number of ESC classes}, from manifest.json."""
    classes = read_manifest(features)["classes"]
    return {task: len(classes[schema.TASK_DATASET[task]]) for task in TASKS}


def images_of(dataset: str, variant: str) -> tuple[str, ...]:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    if dataset == "tut2017":
        return VARIANT_IMAGES[variant]
    if dataset == "esc50":
        return ESC_IMAGES
    raise ConfigError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")


def stored_for(images: Sequence[str]) -> tuple[str, ...]:
    """The stored images a set of channel images is made from (sum and diff: left and right)."""
    need = {"sum": ("left", "right"), "diff": ("left", "right")}
    return tuple(dict.fromkeys(s for im in images for s in need.get(im, (im,))))


def split_partitions(
    manifest: dict[str, Any], dataset: str, division: int, split: str
) -> list[dict[str, Any]]:
    """The partitions of manifest.json that make up `dataset`'s `split` in `division`."""
    return [
        p
        for _, p in sorted(manifest["partitions"].items())
        if p["dataset"] == dataset and split_of(dataset, p["subset"], p["fold"], division) == split
    ]


def expected_patches(features: str, dataset: str, division: int, split: str, variant: str = "triple") -> int:
    """Rows a split should hold according to manifest.json: clips x images x patches per image."""
    manifest = read_manifest(features)
    cfg = FeatureConfig(**manifest["features"])
    duration = cfg.tut_duration_s if dataset == "tut2017" else cfg.esc_duration_s
    per_image = cfg.n_patches(cfg.n_frames(duration))
    clips = 0
    for subset, by_fold in manifest["clips"].get(dataset, {}).items():
        for fold, n in by_fold.items():
            if split_of(dataset, subset, None if fold == "none" else int(fold), division) == split:
                clips += n
    return clips * len(images_of(dataset, variant)) * per_image


def stored_bytes(features: str, dataset: str, division: int, split: str, variant: str = "triple") -> int:
    """Bytes of the clip rows a split's stream reads (its stored images), from manifest.json."""
    manifest = read_manifest(features)
    cfg = FeatureConfig(**manifest["features"])
    duration = cfg.tut_duration_s if dataset == "tut2017" else cfg.esc_duration_s
    per_image = cfg.n_mels * cfg.n_frames(duration) * 2  # int16
    clips = sum(p["clips"] for p in split_partitions(manifest, dataset, division, split))
    return clips * len(stored_for(images_of(dataset, variant))) * per_image


def check_split(division: int, split: str) -> None:
    check_division(division)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")


def split_files(features: str, dataset: str, division: int, split: str) -> list[str]:
    """Paths of the Parquet files that hold `dataset`'s `split` in `division` (and no others)."""
    manifest = read_manifest(features)
    _, path = storage.resolve(features)
    return [
        storage.join(path, f)
        for p in split_partitions(manifest, dataset, division, split)
        for f in p["files"]
    ]


def clip_columns(dataset: str, images: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    base = (schema.CLIP, schema.LABEL, stored.N_FRAMES, stored.PATCH_KEYS, *stored_for(images), *extra)
    return list(dict.fromkeys(base))


def subsample_mask(keys: np.ndarray, keep_fraction: float) -> np.ndarray:
    """Rows kept by `max_patches`: those whose key hash (`key_hash`) falls below `keep_fraction`."""
    if keep_fraction >= 1:
        return np.ones(len(keys), dtype=bool)
    h = splitmix64(np.asarray(keys, dtype=np.uint64) ^ _SUBSAMPLE_SALT)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 < keep_fraction


def patch_index(
    table, dataset: str, images: Sequence[str], cfg: FeatureConfig, keep_fraction: float = 1.0
) -> tuple[stored.PatchIndex, dict[str, np.ndarray]]:
    """A block of clip rows (one frame count) -> (the patches to emit, the decoded stored images)."""
    n_frames = table.column(stored.N_FRAMES).to_numpy()
    if len(n_frames) and (n_frames != n_frames[0]).any():
        raise ValueError(
            f"clips of unequal length in one {dataset} block: {sorted(set(n_frames.tolist()))} frames"
        )
    frames = int(n_frames[0]) if len(n_frames) else cfg.n_frames(cfg.esc_duration_s)
    n_patches = cfg.n_patches(frames)
    keys = stored.key_matrix(table.column(stored.PATCH_KEYS), len(stored.KEYED_IMAGES[dataset]) * n_patches)
    index = stored.PatchIndex.of(keys, dataset, images, n_patches)
    if keep_fraction < 1:
        index = index.take(np.flatnonzero(subsample_mask(index.key, keep_fraction)))
    images_int16 = {
        name: stored.decode(table.column(name), cfg.n_mels, frames) for name in stored_for(images)
    }
    return index, images_int16


def block_order(index: stored.PatchIndex, seed: int, epoch: int = 0) -> np.ndarray:
    """A permutation of a block's patches, seeded by (seed, epoch, the block's first key)."""
    if not len(index):
        return np.arange(0)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, epoch & 0xFFFFFFFF, int(index.key[0]) & 0xFFFFFFFF])
    return rng.permutation(len(index))
