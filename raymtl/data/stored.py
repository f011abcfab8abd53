"""How FEATURES (format version 2) stores the log-mel images, and how patches come back out.

One Parquet row per clip, not per patch. A clip's channel images are stored once each, whole:

- ESC-50: `mono`, (128, 216) for a 5 s clip;
- TUT: `left` and `right`, (128, 431) for a 10 s segment. `sum` and `diff` are not stored: the
  paper takes them on the two log-mel images, so the stream derives them exactly as featurize
  did (left + right, left - right, in float32).

Each image is int16 fixed point of the dB values, 1/128 dB a step (`DB_STEP`), C order
(n_mels, frames), in a binary column: decoding it is one `np.frombuffer`, no per-row Python.
Rounding to the step costs at most 1/256 dB (0.0039 dB) on a stored image and 1/128 dB on a
derived one (tests/data/test_stored.py bounds both). The stream cuts the 128-frame patches at
hop 32 itself, so a frame is read once instead of four times.

`patch_keys` holds each patch's mixup key, `key_hash(clip, image, patch_index)` (BLAKE2b,
`raymtl.data.mixup`), computed once by featurize for every image of the clip (sum and diff
included) in `KEYED_IMAGES` order, patch-major within an image: the pairing and the subsample
look them up instead of hashing strings per row.

Files are grouped in one folder per partition: (dataset, subset, fold), named by
`partition_name`; `manifest.json` lists each partition's files and clips, so a stream opens the
files of its split and nothing else, without listing or scanning the folder (docs/formats.md).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from raymtl.config import FeatureConfig
from raymtl.data.keys import key_hash

FORMAT = "raymtl-features"
FORMAT_VERSION = 2

DB_STEP = 2.0**-7  # dB per int16 step: +-256 dB of range, 1/256 dB worst rounding error
_STEP32 = np.float32(DB_STEP)  # a power of two: dequantizing is exact in float32

STORED_IMAGES = {"esc50": ("mono",), "tut2017": ("left", "right")}
KEYED_IMAGES = {"esc50": ("mono",), "tut2017": ("left", "right", "sum", "diff")}

# Parquet columns beside the clip's metadata (raymtl.schema's DATASET ... CLASS_NAME).
N_FRAMES = "n_frames"  # int32: frames of every image of the clip
PATCH_KEYS = "patch_keys"  # list<uint64>: len(KEYED_IMAGES[dataset]) * patches per image


def quantize(db: np.ndarray) -> tuple[np.ndarray, int]:
    """float dB -> (int16 steps of DB_STEP, how many values fell outside +-256 dB and were clipped)."""
    q = np.rint(np.asarray(db, dtype=np.float64) / DB_STEP)
    lo, hi = np.iinfo(np.int16).min, np.iinfo(np.int16).max
    clipped = int(np.count_nonzero((q < lo) | (q > hi)))
    return np.clip(q, lo, hi).astype(np.int16), clipped


def dequantize(q: np.ndarray) -> np.ndarray:
    """int16 steps -> float32 dB (exact)."""
    return q.astype(np.float32) * _STEP32


def encode(q: np.ndarray) -> bytes:
    """An int16 (n_mels, frames) image -> the bytes of its Parquet cell (little-endian, C order)."""
    return np.ascontiguousarray(q, dtype="<i2").tobytes()


def decode(column, n_mels: int, n_frames: int) -> np.ndarray:
    """A binary column of `encode`d images of one shape -> (rows, n_mels, n_frames) int16.

    Zero-copy when the column is one chunk (a Parquet row group, a materialized block)."""

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n, size = len(arr), n_mels * n_frames * 2
    if n == 0:
        return np.zeros((0, n_mels, n_frames), np.int16)
    if arr.null_count:
        raise ValueError("a channel image is missing (null) in a FEATURES row")
    offsets = np.frombuffer(
        arr.buffers()[1], dtype=np.int64 if pa.types.is_large_binary(arr.type) else np.int32
    )
    offsets = offsets[arr.offset : arr.offset + n + 1]
    if not (np.diff(offsets) == size).all():
        raise ValueError(f"channel images of unequal size in one block (expected {size} bytes each)")
    data = np.frombuffer(arr.buffers()[2], dtype="<i2", count=n * n_mels * n_frames, offset=int(offsets[0]))
    return data.reshape(n, n_mels, n_frames)


def partition_name(dataset: str, subset: str, fold: int | None) -> str:
    """The folder of a partition: "esc50-fold-1", "tut2017-dev-fold-3", "tut2017-eval"."""
    if dataset == "esc50":
        return f"esc50-fold-{fold}"
    if subset == "eval":
        return "tut2017-eval"
    return f"tut2017-{subset}-fold-{fold}"


def patch_keys(clip: str, images: Sequence[str], n_patches: int) -> np.ndarray:
    """(len(images) * n_patches,) uint64 mixup keys of one clip's patches, image-major."""
    n = len(images) * n_patches
    return key_hash(
        [clip] * n,
        np.repeat(np.asarray(images, dtype=object), n_patches),
        np.tile(np.arange(n_patches), len(images)),
    )


def key_matrix(column, n_keys: int) -> np.ndarray:
    """The `patch_keys` column of a block -> (rows, n_keys) uint64."""

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
    if len(flat) != len(arr) * n_keys:
        raise ValueError(f"patch_keys: expected {n_keys} keys a row")
    return flat.reshape(len(arr), n_keys)


class PatchIndex:
    """Which patches of a block of clip rows a stream emits: one entry per patch.

    `row` (clip row), `image` (index into `images`), `patch` (patch index) and `key` (its mixup
    key), all (M,), clip-major, then image, then patch: the order of FEATURES version 1."""

    def __init__(self, row: np.ndarray, image: np.ndarray, patch: np.ndarray, key: np.ndarray):
        self.row, self.image, self.patch, self.key = row, image, patch, key

    @classmethod
    def of(cls, keys: np.ndarray, dataset: str, images: Sequence[str], n_patches: int) -> PatchIndex:
        """Every patch of the `images` of each row; `keys` is `key_matrix`'s (rows, n_keys)."""
        n_rows = len(keys)
        k = len(images)
        row = np.repeat(np.arange(n_rows), k * n_patches)
        image = np.tile(np.repeat(np.arange(k), n_patches), n_rows)
        patch = np.tile(np.arange(n_patches), n_rows * k)
        slot = np.array([KEYED_IMAGES[dataset].index(im) for im in images], dtype=np.int64)
        key = keys[row, slot[image] * n_patches + patch] if n_rows else np.zeros(0, np.uint64)
        return cls(row, image, patch, key)

    def __len__(self) -> int:
        return len(self.row)

    def take(self, sel: np.ndarray) -> PatchIndex:
        return PatchIndex(self.row[sel], self.image[sel], self.patch[sel], self.key[sel])


def cut(
    stored: dict[str, np.ndarray],
    images: Sequence[str],
    index: PatchIndex,
    cfg: FeatureConfig = FeatureConfig(),
) -> np.ndarray:
    """The patches `index` names -> (M, n_mels, patch_frames) float32.

    `stored` maps stored image names to `decode`d (rows, n_mels, frames) int16 arrays; sum and
    diff are made from left and right as featurize made them (float32 left +/- right)."""
    n_mels = next(iter(stored.values())).shape[1]
    out = np.empty((len(index), n_mels, cfg.patch_frames), dtype=np.float32)
    windows = {
        name: np.lib.stride_tricks.sliding_window_view(a, cfg.patch_frames, axis=2)[
            :, :, :: cfg.patch_hop_frames
        ]
        for name, a in stored.items()
    }  # (rows, n_mels, n_patches, patch_frames) views

    def window(name: str, sel: np.ndarray) -> np.ndarray:
        return dequantize(windows[name][index.row[sel], :, index.patch[sel]])  # (m, n_mels, patch_frames)

    for i, name in enumerate(images):
        sel = np.flatnonzero(index.image == i)
        if not len(sel):
            continue
        if name in stored:
            out[sel] = window(name, sel)
        elif name == "sum":
            out[sel] = window("left", sel) + window("right", sel)
        elif name == "diff":
            out[sel] = window("left", sel) - window("right", sel)
        else:
            raise ValueError(f"channel image {name!r} is neither stored nor derived from left and right")
    return out
