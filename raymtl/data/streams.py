"""The Ray Datasets one ensemble member trains, validates and tests on (docs/method.md §8).

    FEATURES (v2: one row per clip, raymtl.data.stored)
        --read the split's partition files, needed columns only-->
        cut patches (and mix: MixupPairer in mixup_stream) --> iter_torch_batches

- `scene_patches` / `event_patches`: a division's split of TUT (the variant's channel images)
  or of ESC-50 as patch rows {patch, label, clip, image, patch_index}.
- `mixup_stream`: {x, y_asc, y_aec} mixup samples (MTL training and validation).
- `single_task_stream`: {x, y_<task>} un-mixed patches (baseline, direct, transfer, fine-tune).
- `test_patches`: a dataset's test rows with x and the identifying columns, for scoring.

A split is a set of partitions (dataset, subset, fold): `manifest.json` names their files, and a
stream reads those files and no others, only the columns it needs (left and right for any TUT
variant, mono for ESC-50). Each file is one block; the patches are cut from the clip rows in
the task that read them (for mixup, paired there too) and emitted in blocks of at most
`PATCHES_PER_BLOCK`, one training batch: `iter_torch_batches` then hands blocks on whole. With
a shuffle seed, a stream shuffles the order of the files every pass and the patches within each
file, so training needs no local shuffle buffer.

`materialize=True` (`materialize_scenes` for mixup) keeps the split's clip rows (int16, each
frame once: an eighth of the float32 patches' bytes) in the object store after the first read:
later passes only cut (and pair). `fits_in_object_store` says when it may. Streams given the
same `KeptSplits` keep a split's rows once between them.

`max_patches` bounds a stream for small presets: a row is kept when the hash of its key
(clip, image, patch_index) falls below max_patches / (rows in the split), so about
`max_patches` rows are kept, always the same ones, whatever the block layout.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Sequence

import numpy as np
import ray

from raymtl import schema, storage
from raymtl.config import TASKS, FeatureConfig
from raymtl.data import stored
from raymtl.data.features import ESC_IMAGES
from raymtl.data.mixup import MixupPairer, load_event_pool, pair_block
from raymtl.data.partitions import (
    block_order,
    check_split,
    clip_columns,
    expected_patches,
    images_of,
    patch_index,
    read_manifest,
    split_files,
)
from raymtl.errors import ConfigError, UserError

log = logging.getLogger(__name__)

_ROW_COLUMNS = (schema.PATCH, schema.LABEL, schema.CLIP, schema.IMAGE, schema.PATCH_INDEX)
READ_WITH_DATASOURCE_V2 = False  # see _read
# CPUs each read/cut task asks for, and each mixup actor. Their sum is at most 1 on purpose:
# a Train worker holds a whole CPU, and a data task asking for more than is left never starts
# (on 2 CPUs, 1 for the worker + 0.5 for the actor leaves 0.5: a 1-CPU read would wait forever).
# With FEATURES version 2 the read is light (uncompressed int16 clip rows) and the pairing actor
# does the work (cutting, mixing): it gets the larger share.
DATA_CPUS = 0.25
PAIRER_CPUS = 0.75
# mixup_stream(pairing="tasks"): the read, the cut and the pairing of a file in one task.
PAIR_TASK_CPUS = 0.5
# Patches per block a cut emits: one training batch (16 MiB). Measured at full size
# (benchmarks/bench_stream.py --block-patches): 1024-patch blocks, re-sliced into batches by
# iter_torch_batches, delivered less in the same conditions and held more object store memory.
PATCHES_PER_BLOCK = 256


def fits_in_object_store(n_bytes: int, share: float = 0.25) -> bool:
    """Whether `n_bytes` may be kept in this node's object store: at most `share` of the object
    store memory Ray set aside on this node (Ray sizes it from the node's real memory, 30% by
    default) and not more than is free now. The share leaves room for the blocks in flight and
    for the other members training on the same node."""

    node = ray.get_runtime_context().get_node_id()
    capacity = None
    for n in ray.nodes():
        if n.get("NodeID") == node:
            capacity = n.get("Resources", {}).get("object_store_memory")
    if capacity is None:
        capacity = ray.cluster_resources().get("object_store_memory", 0)
    free = ray.available_resources().get("object_store_memory", capacity)
    return n_bytes <= min(share * capacity, free)


class KeptSplits:
    """Clip rows read once and kept in the object store, one copy per (dataset, division, split,
    columns): the streams of one Train run that read the same split share it. A member's mixup
    stream and its ASC fine-tune both read TUT's training split; at the paper's size that is
    775 MB, kept once instead of twice."""

    def __init__(self):
        self._rows: dict[tuple, Any] = {}

    def __contains__(self, key: tuple) -> bool:
        return key in self._rows

    def rows(self, key: tuple, read) -> Any:
        """The kept rows of `key`, read (`read()`, a Dataset) and materialized on first use."""
        if key not in self._rows:
            self._rows[key] = read().materialize()
        return self._rows[key]


def split_key(dataset: str, division: int, split: str, columns: Sequence[str]) -> tuple:
    """What identifies a split's clip rows among the kept ones (`KeptSplits`)."""
    return (dataset, division, split, tuple(columns))


def rows_key(dataset: str, division: int, split: str, variant: str, with_dataset: bool = False) -> tuple:
    """`split_key` of the clip rows a stream of `variant` reads (`with_dataset`: test_patches')."""
    extra = (schema.DATASET,) if with_dataset else ()
    return split_key(dataset, division, split, clip_columns(dataset, images_of(dataset, variant), extra))


# ---------------------------------------------------------------------------------------------
# Reading and cutting
# ---------------------------------------------------------------------------------------------


def _read(
    features: str,
    dataset: str,
    division: int,
    split: str,
    columns: Sequence[str],
    shuffle_seed: int | None,
    num_cpus: float,
):
    """The clip rows of one split: its partitions' files only, `columns` only."""

    fs, _ = storage.resolve(features)
    files = split_files(features, dataset, division, split)
    if not files:
        raise UserError(
            f"{features}: no {dataset} clips in the {split} split of division {division} "
            "(were its files featurized?)"
        )
    shuffle = None
    if shuffle_seed is not None:
        # A different file order every pass (execution), reproducible from the seed.
        shuffle = ray.data.FileShuffleConfig(seed=shuffle_seed, reseed_after_execution=True)
    # Ray 2.60's default Parquet reader (DataSourceV2) starts a pool of 32 footer-reading actors
    # (RAY_DATA_PARQUET_FOOTER_NUM_ACTORS) on *every* pass over the data: seconds of start-up per
    # epoch on a small machine, more than the read itself. The V1 reader is given the file list
    # (no listing) and makes one block per file; the switch is scoped to this one call.
    ctx = ray.data.DataContext.get_current()
    v2 = ctx.use_datasource_v2
    ctx.use_datasource_v2 = READ_WITH_DATASOURCE_V2
    try:
        return ray.data.read_parquet(
            files,
            filesystem=fs,
            columns=list(columns),  # column pushdown: only these are decoded
            partitioning=None,  # the folders are named by manifest.json, not parsed from paths
            shuffle=shuffle,
            override_num_blocks=len(files),
            num_cpus=num_cpus,
        )
    finally:
        ctx.use_datasource_v2 = v2


def _cut_block(
    table,
    *,
    dataset: str,
    images: tuple[str, ...],
    keep_fraction: float,
    columns: tuple[str, ...],
    renames: dict[str, str],
    shuffle_seed: int | None,
    cfg: FeatureConfig,
) -> Iterator[dict[str, np.ndarray]]:
    """Arrow block of clip rows -> patch rows of `images` (`columns` only, renamed), in pieces
    of at most PATCHES_PER_BLOCK."""
    index, images_int16 = patch_index(table, dataset, images, cfg, keep_fraction)
    if shuffle_seed is not None:
        index = index.take(block_order(index, shuffle_seed))
    meta = {
        schema.LABEL: table.column(schema.LABEL).to_numpy().astype(np.int64),
        schema.CLIP: np.asarray(table.column(schema.CLIP).to_numpy(zero_copy_only=False), dtype=object),
    }
    if schema.DATASET in columns:
        meta[schema.DATASET] = np.asarray(
            table.column(schema.DATASET).to_numpy(zero_copy_only=False), dtype=object
        )
    image_names = np.asarray(images, dtype=object)
    for start in range(0, len(index), PATCHES_PER_BLOCK):
        part = index.take(slice(start, start + PATCHES_PER_BLOCK))
        out: dict[str, np.ndarray] = {}
        for c in columns:
            if c == schema.PATCH:
                out[c] = stored.cut(images_int16, images, part, cfg)  # (B, 128, 128) float32
            elif c == schema.IMAGE:
                out[c] = image_names[part.image]
            elif c == schema.PATCH_INDEX:
                out[c] = part.patch.astype(np.int32)
            else:
                out[c] = meta[c][part.row]
        yield {renames.get(k, k): v for k, v in out.items()}


def _stream(
    features: str,
    dataset: str,
    division: int,
    split: str,
    images: tuple[str, ...],
    columns: tuple[str, ...],
    renames: dict[str, str] | None = None,
    *,
    max_patches: int | None = None,
    variant: str = "triple",
    shuffle_seed: int | None = None,
    materialize: bool = False,
    kept: KeptSplits | None = None,
    num_cpus: float = DATA_CPUS,
):
    check_split(division, split)
    manifest = read_manifest(features)
    cfg = FeatureConfig(**manifest["features"])
    keep_fraction = _keep_fraction(features, dataset, division, split, variant, max_patches)
    extra = (schema.DATASET,) if schema.DATASET in columns else ()
    ds = _clip_rows(
        features,
        dataset,
        division,
        split,
        clip_columns(dataset, images, extra),
        shuffle_seed,
        num_cpus,
        materialize,
        kept,
    )
    return ds.map_batches(
        _cut_block,
        fn_kwargs=dict(
            dataset=dataset,
            images=images,
            keep_fraction=keep_fraction,
            columns=columns,
            renames=renames or {},
            shuffle_seed=shuffle_seed,
            cfg=cfg,
        ),
        batch_size=None,  # whole blocks (files): the cut is vectorised
        batch_format="pyarrow",
        zero_copy_batch=True,
        num_cpus=num_cpus,  # the same as the read's, so that Ray Data fuses the two into one task
    )


def _keep_fraction(features, dataset, division, split, variant, max_patches) -> float:
    if max_patches is None:
        return 1.0
    if max_patches <= 0:
        raise ConfigError(f"max_patches must be positive or None, got {max_patches!r}")
    total = expected_patches(features, dataset, division, split, variant)
    return 1.0 if total == 0 else min(1.0, max_patches / total)


def _clip_rows(
    features: str,
    dataset: str,
    division: int,
    split: str,
    columns: Sequence[str],
    shuffle_seed: int | None,
    num_cpus: float,
    materialize: bool,
    kept: KeptSplits | None,
):
    """The split's clip rows: read on every pass, or (`materialize`) read once and kept, in
    `kept` when given (shared with the other streams that keep the same rows); with a seed, the
    files (blocks) in a new order every pass either way."""

    if not materialize:
        return _read(features, dataset, division, split, columns, shuffle_seed, num_cpus)
    kept = kept if kept is not None else KeptSplits()
    key = split_key(dataset, division, split, columns)
    ds = kept.rows(key, lambda: _read(features, dataset, division, split, columns, None, num_cpus))
    if shuffle_seed is not None:  # transforms after materialize() re-run on every pass
        ds = ds.randomize_block_order(
            seed=ray.data.RandomSeedConfig(seed=shuffle_seed, reseed_after_execution=True)
        )
    return ds


# ---------------------------------------------------------------------------------------------
# The streams
# ---------------------------------------------------------------------------------------------


def scene_patches(
    features: str,
    division: int,
    split: str,
    variant: str,
    *,
    max_patches: int | None = None,
    shuffle_seed: int | None = None,
    num_cpus: float = DATA_CPUS,
):
    """TUT rows of `division`'s `split` whose channel image belongs to `variant`:
    {patch, label, clip, image, patch_index}."""
    images = images_of("tut2017", variant)
    return _stream(
        features,
        "tut2017",
        division,
        split,
        images,
        _ROW_COLUMNS,
        max_patches=max_patches,
        variant=variant,
        shuffle_seed=shuffle_seed,
        num_cpus=num_cpus,
    )


def event_patches(
    features: str,
    division: int,
    split: str,
    *,
    max_patches: int | None = None,
    shuffle_seed: int | None = None,
    num_cpus: float = DATA_CPUS,
):
    """ESC-50 rows (image "mono") of `division`'s `split`: {patch, label, clip, image, patch_index}."""
    return _stream(
        features,
        "esc50",
        division,
        split,
        ESC_IMAGES,
        _ROW_COLUMNS,
        max_patches=max_patches,
        shuffle_seed=shuffle_seed,
        num_cpus=num_cpus,
    )


def mixup_stream(
    features: str,
    division: int,
    split: str,
    variant: str,
    seed: int,
    epoch: Any,
    event_pool_ref: Any = None,
    *,
    max_patches: int | None = None,
    shuffle: bool = False,
    trace: bool = False,
    materialize_scenes: bool = False,
    kept: KeptSplits | None = None,
    batch_size: int | None = None,
    pairing: str = "tasks",
    concurrency: int | tuple[int, int] = 1,
    num_cpus: float | None = None,
    pairer_cpus: float = PAIRER_CPUS,
):
    """Mixup samples of `division`'s `split` ("train" or "validation"): {x, y_asc, y_aec}.

    `epoch` is an int (fixed pairs: validation) or an `EpochCounter` handle (fresh pairs every
    epoch: training). `event_pool_ref` is `load_event_pool(features, division, split)` or an
    ObjectRef of it; without it the pool is loaded and put in the object store here. `trace`
    adds the partner's (event_clip, event_patch_index) and the scene row's key (strings:
    not for `iter_torch_batches`). `materialize_scenes` reads the split's clip rows once, here,
    and keeps them in the object store: later epochs only cut and pair (see
    `fits_in_object_store`), in `kept` when given (shared with the Train run's other streams of
    the same rows). `shuffle` shuffles the files (blocks) every pass and the patches
    within each block (a permutation drawn from (seed, epoch)): no local shuffle buffer needed.
    The pairing actors receive whole blocks of clip rows, cut the scene patches and emit pieces
    of at most `batch_size` (default `PATCHES_PER_BLOCK`) mixup samples.

    `pairing="tasks"` (the default) reads, cuts and pairs a file in one Ray task
    (`mixup.pair_block`, `num_cpus` each, default `PAIR_TASK_CPUS`); `"actors"` reads in tasks
    (`num_cpus`, default `DATA_CPUS`) and pairs in a pool of `concurrency` `MixupPairer` actors
    (`pairer_cpus` each), started afresh every pass (benchmarks/bench_stream.py compares them).
    The stream needs these CPUs free beside the Train workers, or it waits for them forever.
    """

    if split == "test":
        raise ConfigError("test patches are never mixed (docs/method.md §3); use test_patches")
    check_split(division, split)
    manifest = read_manifest(features)
    images = images_of("tut2017", variant)
    keep_fraction = _keep_fraction(features, "tut2017", division, split, variant, max_patches)
    if event_pool_ref is None:
        event_pool_ref = ray.put(load_event_pool(features, division, split))
    shuffle_seed = seed if shuffle else None
    if pairing not in ("tasks", "actors"):
        raise ConfigError(f"unknown pairing {pairing!r}; valid: tasks, actors")
    if num_cpus is None:
        num_cpus = PAIR_TASK_CPUS if pairing == "tasks" else DATA_CPUS
    scenes = _clip_rows(
        features,
        "tut2017",
        division,
        split,
        clip_columns("tut2017", images),
        shuffle_seed,
        num_cpus,
        materialize_scenes,
        kept,
    )
    pairer_kwargs = dict(
        seed=seed,
        epoch=epoch,
        trace=trace,
        images=images,
        keep_fraction=keep_fraction,
        shuffle=shuffle,
        batch_size=batch_size or PATCHES_PER_BLOCK,
        features=FeatureConfig(**manifest["features"]),
    )
    common = dict(batch_size=None, batch_format="pyarrow", zero_copy_batch=True)  # whole blocks of clip rows
    if pairing == "tasks":
        # The same num_cpus as the read's, so that Ray Data fuses the two into one task.
        return scenes.map_batches(
            pair_block,
            fn_kwargs=dict(event_pool=event_pool_ref, **pairer_kwargs),
            num_cpus=num_cpus,
            **common,
        )
    if isinstance(concurrency, int):
        compute = ray.data.ActorPoolStrategy(size=concurrency)
    else:
        compute = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    return scenes.map_batches(
        MixupPairer,
        fn_constructor_kwargs=dict(event_pool=event_pool_ref, **pairer_kwargs),
        compute=compute,
        num_cpus=pairer_cpus,
        **common,
    )


def single_task_stream(
    features: str,
    task: str,
    division: int,
    split: str,
    variant: str,
    *,
    max_patches: int | None = None,
    shuffle_seed: int | None = None,
    with_ids: bool = False,
    materialize: bool = False,
    kept: KeptSplits | None = None,
    num_cpus: float = DATA_CPUS,
):
    """Un-mixed patches of one task: {x, y_<task>}. "asc" reads TUT (the variant's images),
    "aec" reads ESC-50 (mono; `variant` does not apply). `with_ids` adds the `clip` column
    (a string: for per-recording validation, not for `iter_torch_batches`). `shuffle_seed`
    shuffles files every pass and patches within a file; `materialize` keeps the clip rows (in
    `kept` when given: shared with the Train run's other streams of the same rows)."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    dataset = schema.TASK_DATASET[task]
    return _stream(
        features,
        dataset,
        division,
        split,
        images_of(dataset, variant),
        (schema.PATCH, schema.LABEL, schema.CLIP) if with_ids else (schema.PATCH, schema.LABEL),
        {schema.PATCH: schema.X, schema.LABEL: schema.TASK_LABEL[task]},
        max_patches=max_patches,
        variant=variant,
        shuffle_seed=shuffle_seed,
        materialize=materialize,
        kept=kept,
        num_cpus=num_cpus,
    )


TEST_COLUMNS = (schema.X, schema.DATASET, schema.CLIP, schema.IMAGE, schema.PATCH_INDEX, schema.LABEL)


def test_patches(
    features: str,
    dataset: str,
    division: int,
    variant: str,
    *,
    materialize: bool = False,
    kept: KeptSplits | None = None,
    num_cpus: float = DATA_CPUS,
):
    """The test rows of `dataset` ("tut2017" or "esc50") in `division`, for scoring:
    {x, dataset, clip, image, patch_index, label}. TUT: the evaluation set, the variant's images;
    ESC-50: fold `division`. `materialize` keeps the clip rows in the object store (in `kept` when given)."""
    columns = (schema.PATCH, schema.DATASET, schema.CLIP, schema.IMAGE, schema.PATCH_INDEX, schema.LABEL)
    return _stream(
        features,
        dataset,
        division,
        "test",
        images_of(dataset, variant),
        columns,
        {schema.PATCH: schema.X},
        variant=variant,
        materialize=materialize,
        kept=kept,
        num_cpus=num_cpus,
    )


test_patches.__test__ = False  # not a pytest test, despite its name
