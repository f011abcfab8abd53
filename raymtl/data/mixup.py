"""Mixup based multitask samples (paper Eq. 1-3; docs/method.md §3) as a Ray Data transform.

For every scene patch x_S (label y_S) of a division's TUT train (validation) split, an event
patch x_E (label y_E) is drawn at random from the same division's ESC train (validation)
split, and the sample is x = 0.5 * x_S + 0.5 * x_E with both labels. Test patches are never
mixed.

How a partner is chosen. The ESC patches of the split form the *event pool*, sorted by
(clip, patch_index) so its order does not depend on Parquet files or block order. A scene row's
partner is

    pool index = splitmix64(key_hash(clip, image, patch_index) XOR epoch_seed(seed, epoch)) mod N

where `key_hash` is a stable 64-bit string hash (BLAKE2b, never Python's salted `hash()`) and
N the pool size. Featurize computes every patch's key once and stores it (`patch_keys`,
`raymtl.data.stored`), so the stream looks keys up instead of hashing strings row by row; the
partners are the same as hashing them here. So the pairing is a pure function of (run seed,
epoch, scene row, pool): reproducible, and independent of batching, block order and the number
of actors, which Ray Data is free to change between runs. Different rows get independent,
uniform partners whatever the ratio of scene to event patches (about 30:1 on the real data: each
event patch is used ~30 times an epoch).

How the transform knows the epoch. "Partners are drawn afresh every epoch" needs the epoch
inside `MixupPairer`, but a Ray Data transform is built once (when the Dataset is defined, or
when Train hands out a shard) and is then re-executed on every pass over the data: it has no
argument that changes per pass, and the actors Ray Data starts for it are not reachable from
the training loop. So `epoch` is either

- an `int`: a fixed epoch, e.g. for validation pairs, which stay the same all run; or
- an `EpochCounter` actor handle: a tiny Ray actor the training loop `set`s to the epoch
  number *before* it starts iterating that epoch. The pairer `get`s it once per batch. Each
  iteration of a Dataset re-executes the map, so every epoch gets fresh partners. Every Train
  worker may call `set` with the same value (it is idempotent); a new pass only starts once all
  of the previous pass's blocks are produced, so no batch of epoch e reads e + 1.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray

from raymtl import schema, storage
from raymtl.config import FeatureConfig
from raymtl.data import stored
from raymtl.data.keys import key_hash, splitmix64
from raymtl.data.partitions import block_order, clip_columns, patch_index, read_manifest, split_files
from raymtl.errors import UserError

log = logging.getLogger(__name__)

# Output columns beside schema.X and the two task labels (traceability and tests).
EVENT_CLIP = "event_clip"
EVENT_PATCH_INDEX = "event_patch_index"


def epoch_seed(seed: int, epoch: int) -> np.uint64:
    """One 64-bit value per (run seed, epoch); distinct seeds and epochs give unrelated values."""
    s = splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    return splitmix64(s ^ np.uint64(epoch & 0xFFFFFFFFFFFFFFFF))[0]


def partner_indices(keys: np.ndarray, seed: int, epoch: int, pool_size: int) -> np.ndarray:
    """(B,) int64 pool indices for rows with key hashes `keys` (see the module docstring)."""
    if pool_size <= 0:
        raise ValueError("the event pool is empty")
    h = splitmix64(np.asarray(keys, dtype=np.uint64) ^ epoch_seed(seed, epoch))
    # Modulo bias is at most pool_size / 2**64: negligible.
    return (h % np.uint64(pool_size)).astype(np.int64)


class EpochCounter:
    """The current epoch, shared between the training loop and the mixup actors.

    Create with `ray.remote(EpochCounter).options(num_cpus=0).remote(start)` or
    `EpochCounter.start()`; the training loop calls `counter.set.remote(epoch)` (and waits
    for it) before iterating each epoch."""

    def __init__(self, epoch: int = 0):
        self._epoch = int(epoch)

    def set(self, epoch: int) -> int:
        self._epoch = int(epoch)
        return self._epoch

    def get(self) -> int:
        return self._epoch

    @staticmethod
    def start(epoch: int = 0):
        """A new counter actor (no CPU reserved: it only holds an int)."""

        return ray.remote(EpochCounter).options(num_cpus=0).remote(epoch)


def load_event_pool(features: str, division: int, split: str) -> dict[str, np.ndarray]:
    """The ESC patches of `division`'s `split`, in (clip, patch_index) order, read here with
    pyarrow from the split's partition files only (a few MB a fold: no Ray Data pass).

    Returns {"patch": (N, 128, 128) float32, "label": (N,) int64, "clip": (N,) str,
    "patch_index": (N,) int64}. Raises `UserError` if the split has no ESC patches."""

    cfg = FeatureConfig(**read_manifest(features)["features"])
    fs, _ = storage.resolve(features)
    files = split_files(features, "esc50", division, split)
    columns = clip_columns("esc50", ("mono",))
    tables = [pq.read_table(fs.open_input_file(f), columns=columns) for f in files]
    table = pa.concat_tables(tables).combine_chunks() if tables else None
    if table is None or table.num_rows == 0:
        raise UserError(
            f"{features}: no ESC-50 patches in the {split} split of division {division}; "
            "mixup needs event patches to pair with (were the ESC-50 files featurized?)"
        )
    index, images = patch_index(table, "esc50", ("mono",), cfg)
    clip = np.asarray(table.column(schema.CLIP).to_numpy(zero_copy_only=False), dtype=str)[index.row]
    order = np.lexsort((index.patch, clip))
    index = index.take(order)
    pool = {
        "patch": stored.cut(images, ("mono",), index, cfg),
        "label": table.column(schema.LABEL).to_numpy().astype(np.int64)[index.row],
        "clip": clip[order],
        "patch_index": index.patch.astype(np.int64),
    }
    log.info("event pool of division %d, %s split: %d patches", division, split, len(order))
    return pool


def check_pool(pool: Mapping[str, np.ndarray]) -> None:
    missing = {"patch", "label", "clip", "patch_index"} - set(pool)
    if missing:
        raise ValueError(f"event pool lacks {sorted(missing)}")
    n = len(pool["label"])
    if n == 0:
        raise UserError("the event pool is empty: mixup needs event patches to pair with")
    for k in ("patch", "clip", "patch_index"):
        if len(pool[k]) != n:
            raise ValueError(f"event pool column {k!r} has {len(pool[k])} rows, label has {n}")


class MixupPairer:
    """Ray Data callable class: scene patch rows -> mixup samples with both labels.

    Used as ``ds.map_batches(MixupPairer, fn_constructor_kwargs=dict(event_pool=ref, seed=s,
    epoch=e), batch_format="numpy", compute=...)``. `event_pool` is `load_event_pool`'s dict or
    an ObjectRef of it (fetched once per actor, zero-copy from the object store); `epoch` an int
    or an `EpochCounter` handle. With `trace`, the output also names each row's partner
    (`event_clip`, `event_patch_index`) and keeps the scene row's key; strings cannot go
    through `iter_torch_batches`, so training streams leave it off.

    A batch is either patch rows (numpy: {patch, label, clip, image, patch_index}, e.g. a
    `take_batch` of `scene_patches`) or, as `mixup_stream` feeds it, a pyarrow block of FEATURES
    clip rows: then the pairer cuts the `images` patches itself (keeping `keep_fraction` of them
    by key, `raymtl.data.partitions.subsample_mask`), in a permuted order when `shuffle`, and
    yields pieces of at most `batch_size` samples.
    """

    def __init__(
        self,
        event_pool: Any,
        seed: int,
        epoch: Any = 0,
        trace: bool = True,
        *,
        images: tuple[str, ...] = ("left", "right", "sum"),
        keep_fraction: float = 1.0,
        shuffle: bool = False,
        batch_size: int = 1024,
        features: Any = None,
    ):
        if isinstance(event_pool, ray.ObjectRef):
            event_pool = ray.get(event_pool)
        check_pool(event_pool)
        self.pool = event_pool
        self.seed = int(seed)
        self.epoch = epoch
        self.trace = trace
        self.images = tuple(images)
        self.keep_fraction = keep_fraction
        self.shuffle = shuffle
        self.batch_size = int(batch_size)
        self.cfg = features or FeatureConfig()

    def current_epoch(self) -> int:
        if isinstance(self.epoch, (int, np.integer)):
            return int(self.epoch)

        return int(ray.get(self.epoch.get.remote()))

    def __call__(self, batch: Any):
        if isinstance(batch, Mapping):
            scene = np.asarray(batch[schema.PATCH], dtype=np.float32)  # (B, 128, 128)
            keys = key_hash(batch[schema.CLIP], batch[schema.IMAGE], batch[schema.PATCH_INDEX])
            ids = {c: np.asarray(batch[c]) for c in (schema.CLIP, schema.IMAGE, schema.PATCH_INDEX)}
            return self._mix(scene.copy(), keys, np.asarray(batch[schema.LABEL]), ids, self.current_epoch())
        return self._from_clip_rows(batch)

    def _from_clip_rows(self, table) -> Iterator[dict[str, np.ndarray]]:
        """A pyarrow block of FEATURES clip rows -> pieces of mixup samples."""
        epoch = self.current_epoch()
        index, images = patch_index(table, "tut2017", self.images, self.cfg, self.keep_fraction)
        if self.shuffle:
            index = index.take(block_order(index, self.seed, epoch))
        label = table.column(schema.LABEL).to_numpy().astype(np.int64)
        clip = (
            np.asarray(table.column(schema.CLIP).to_numpy(zero_copy_only=False), dtype=object)
            if self.trace
            else None
        )
        names = np.asarray(self.images, dtype=object)
        for start in range(0, len(index), self.batch_size):
            part = index.take(slice(start, start + self.batch_size))
            scene = stored.cut(images, self.images, part, self.cfg)  # (B, 128, 128) float32, ours to reuse
            ids = None
            if self.trace:
                ids = {
                    schema.CLIP: clip[part.row],
                    schema.IMAGE: names[part.image],
                    schema.PATCH_INDEX: part.patch.astype(np.int32),
                }
            yield self._mix(scene, part.key, label[part.row], ids, epoch)

    def _mix(
        self, scene: np.ndarray, keys: np.ndarray, scene_label, ids, epoch: int
    ) -> dict[str, np.ndarray]:
        """Eq. 1 in place on `scene` (B, 128, 128), a float32 array the caller gives up."""
        idx = partner_indices(keys, self.seed, epoch, len(self.pool["label"]))
        # x = 0.5 * scene + 0.5 * event: both products are exact (a power of two), so this is
        # one rounding of the sum, then an exact halving; bit for bit the same, two passes fewer.
        x = scene
        x += self.pool["patch"][idx]
        x *= np.float32(0.5)
        out = {
            schema.X: x,
            schema.TASK_LABEL["asc"]: np.asarray(scene_label).astype(np.int64),
            schema.TASK_LABEL["aec"]: self.pool["label"][idx].astype(np.int64),
        }
        if self.trace:
            out[EVENT_CLIP] = self.pool["clip"][idx]
            out[EVENT_PATCH_INDEX] = self.pool["patch_index"][idx].astype(np.int64)
            out.update(ids)
        return out


_POOLS: dict[str, Any] = {}  # event pools fetched by this worker process, by ObjectRef


def pair_block(table, *, event_pool: Any, **pairer_kwargs) -> Iterator[dict[str, np.ndarray]]:
    """`MixupPairer` as a plain function for Ray Data *tasks*: a block of FEATURES clip rows ->
    pieces of mixup samples. The event pool (an ObjectRef) is fetched once per worker process
    and kept; Ray reuses its worker processes across tasks and epochs, where an actor pool is
    started afresh on every pass over the data (seconds each epoch on a small machine)."""

    if isinstance(event_pool, ray.ObjectRef):
        key = event_pool.hex()
        if key not in _POOLS:
            _POOLS.clear()  # one member's pool at a time: a new ref is a new stream
            _POOLS[key] = ray.get(event_pool)
        event_pool = _POOLS[key]
    return MixupPairer(event_pool=event_pool, **pairer_kwargs)(table)
