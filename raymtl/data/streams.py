"""The Ray Datasets one ensemble member trains, validates and tests on (docs/method.md §8).

    FEATURES (Parquet) --read (needed columns only)--> division/split/image filter
        --> MixupPairer (mixup_stream) or a rename (single_task_stream) --> iter_torch_batches

- `scene_patches` / `event_patches`: a division's split of TUT (the variant's channel images)
  or of ESC-50, with the columns `MixupPairer` needs.
- `mixup_stream`: {x, y_asc, y_aec} mixup samples (MTL training and validation).
- `single_task_stream`: {x, y_<task>} un-mixed patches (baseline, direct, transfer, fine-tune).
- `test_patches`: a dataset's test rows with x and the identifying columns, for scoring.

Rows are filtered by a vectorised `map_batches` over whole blocks (Arrow in, Arrow out), fused
by Ray Data with the Parquet read, so rejected rows never reach the object store. Row order is
the files' order (clip by clip); training should shuffle locally, e.g.
``iter_torch_batches(local_shuffle_buffer_size=...)``, and may ask for ``shuffle=True`` here,
which shuffles the Parquet files per pass.

`max_patches` bounds a stream for small presets: a row is kept when the hash of its key
(clip, image, patch_index) falls below max_patches / (rows in the split), so about
`max_patches` rows are kept, always the same ones, whatever the block layout.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from raymtl import schema, storage
from raymtl.config import TASKS, VARIANTS, FeatureConfig
from raymtl.data.features import ESC_IMAGES, VARIANT_IMAGES
from raymtl.data.mixup import MixupPairer, key_hash, load_event_pool, splitmix64
from raymtl.data.splits import SPLITS, check_division, split_mask, split_of
from raymtl.errors import ConfigError, UserError

log = logging.getLogger(__name__)

DATASETS = ("tut2017", "esc50")
_SPLIT_COLUMNS = (schema.DATASET, schema.SUBSET, schema.FOLD)
_ROW_COLUMNS = (schema.PATCH, schema.LABEL, schema.CLIP, schema.IMAGE, schema.PATCH_INDEX)
READ_WITH_DATASOURCE_V2 = False  # see _read
# CPUs each read/filter task asks for, and each mixup actor. Their sum is at most 1 on purpose:
# a Train worker holds a whole CPU, and a data task asking for more than is left never starts
# (on 2 CPUs, 1 for the worker + 0.5 for the actor leaves 0.5: a 1-CPU read would wait forever).
# Reads get most of it (decoding Parquet is the work); two reads at 0.5 each on a core measured
# slower than one. The two values must differ: with equal resources Ray Data fuses the filter
# into the actor instead of into the read, and whole unfiltered files cross the object store.
DATA_CPUS = 0.75
PAIRER_CPUS = 0.25
_SUBSAMPLE_SALT = np.uint64(0x5EED5A3B1E0F7A11)  # keeps the subsample unrelated to mixup partners


# ---------------------------------------------------------------------------------------------
# The manifest
# ---------------------------------------------------------------------------------------------


def read_manifest(features: str) -> dict[str, Any]:
    fs, path = storage.resolve(features)
    manifest_path = storage.join(path, schema.FEATURES_MANIFEST)
    if not storage.is_file(fs, manifest_path):
        raise UserError(
            f"{features}: not a finished FEATURES folder (no {schema.FEATURES_MANIFEST}); run featurize"
        )
    return storage.read_json(fs, manifest_path)


def class_counts(features: str) -> dict[str, int]:
    """{"asc": number of TUT scene classes, "aec": number of ESC classes}, from manifest.json."""
    classes = read_manifest(features)["classes"]
    return {task: len(classes[schema.TASK_DATASET[task]]) for task in TASKS}


def _images(dataset: str, variant: str) -> tuple[str, ...]:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    if dataset == "tut2017":
        return VARIANT_IMAGES[variant]
    if dataset == "esc50":
        return ESC_IMAGES
    raise ConfigError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")


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
    return clips * len(_images(dataset, variant)) * per_image


# ---------------------------------------------------------------------------------------------
# Reading and filtering
# ---------------------------------------------------------------------------------------------


def _check(division: int, split: str) -> None:
    check_division(division)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")


def _read(features: str, columns: Sequence[str], shuffle_seed: int | None, num_cpus: float):
    import ray

    read_manifest(features)  # fail early, with a message, on a folder that is not FEATURES
    fs, path = storage.resolve(features)
    shuffle = None
    if shuffle_seed is not None:
        # A different file order every pass (execution), reproducible from the seed.
        shuffle = ray.data.FileShuffleConfig(seed=shuffle_seed, reseed_after_execution=True)
    # Ray 2.60's default Parquet reader (DataSourceV2) starts a pool of 32 footer-reading actors
    # (RAY_DATA_PARQUET_FOOTER_NUM_ACTORS) on *every* pass over the data: seconds of start-up per
    # epoch on a small machine, more than the read itself. The V1 reader lists on the driver
    # once; the switch is scoped to this one call. One block per Parquet file (featurize writes
    # ~130 MB files): V1 would otherwise split them into >= 200 tiny blocks, which stops Ray Data
    # from fusing the filter into the read task.
    ctx = ray.data.DataContext.get_current()
    v2 = ctx.use_datasource_v2
    ctx.use_datasource_v2 = READ_WITH_DATASOURCE_V2
    try:
        ds = ray.data.read_parquet(
            path,
            filesystem=fs,
            shuffle=shuffle,
            override_num_blocks=max(1, _count_parts(fs, path)),
            num_cpus=num_cpus,
        )
    finally:
        ctx.use_datasource_v2 = v2
    return ds.select_columns(list(columns))  # pushed down into the Parquet scan


def _count_parts(fs, path: str) -> int:
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return sum(1 for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet"))


def subsample_mask(clips, images, patch_indices, keep_fraction: float) -> np.ndarray:
    """Rows kept by `max_patches`: those whose key hash falls below `keep_fraction`."""
    if keep_fraction >= 1:
        return np.ones(len(clips), dtype=bool)
    h = splitmix64(key_hash(clips, images, patch_indices) ^ _SUBSAMPLE_SALT)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 < keep_fraction


def _filter_block(
    table,
    *,
    dataset: str,
    split: str,
    division: int,
    images: tuple[str, ...],
    keep_fraction: float,
    columns: tuple[str, ...],
    renames: dict[str, str],
):
    """Arrow block -> the rows of (dataset, split, division, images), `columns` only, renamed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    meta = {c: table.column(c).to_numpy(zero_copy_only=False) for c in _SPLIT_COLUMNS}
    image = table.column(schema.IMAGE).to_numpy(zero_copy_only=False)
    mask = split_mask(meta, dataset, split, division) & np.isin(image, images)
    if keep_fraction < 1 and mask.any():
        keep = np.zeros_like(mask)
        rows = np.flatnonzero(mask)
        clip = table.column(schema.CLIP).take(pa.array(rows)).to_numpy(zero_copy_only=False)
        patch_index = table.column(schema.PATCH_INDEX).take(pa.array(rows)).to_numpy(zero_copy_only=False)
        keep[rows] = subsample_mask(clip, image[rows], patch_index, keep_fraction)
        mask = keep
    out = table.filter(pa.array(mask)).select(list(columns))
    if schema.LABEL in columns:
        i = out.schema.get_field_index(schema.LABEL)
        out = out.set_column(i, schema.LABEL, pc.cast(out.column(i), pa.int64()))
    if renames:
        out = out.rename_columns([renames.get(n, n) for n in out.column_names])
    return out


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
    num_cpus: float = DATA_CPUS,
):
    _check(division, split)
    keep_fraction = 1.0
    if max_patches is not None:
        if max_patches <= 0:
            raise ConfigError(f"max_patches must be positive or None, got {max_patches!r}")
        total = expected_patches(features, dataset, division, split, variant)
        keep_fraction = 1.0 if total == 0 else min(1.0, max_patches / total)
    read_columns = tuple(
        dict.fromkeys((*_SPLIT_COLUMNS, schema.IMAGE, schema.CLIP, schema.PATCH_INDEX, *columns))
    )
    ds = _read(features, read_columns, shuffle_seed, num_cpus)
    return ds.map_batches(
        _filter_block,
        fn_kwargs=dict(
            dataset=dataset,
            split=split,
            division=division,
            images=images,
            keep_fraction=keep_fraction,
            columns=columns,
            renames=renames or {},
        ),
        batch_size=None,  # whole blocks: the filter is vectorised
        batch_format="pyarrow",
        zero_copy_batch=True,
        num_cpus=num_cpus,  # the same as the read's, so that Ray Data fuses the two into one task
    )


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
    images = _images("tut2017", variant)
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
    batch_size: int | None = 256,
    concurrency: int | tuple[int, int] = 1,
    num_cpus: float = DATA_CPUS,
    pairer_cpus: float = PAIRER_CPUS,
):
    """Mixup samples of `division`'s `split` ("train" or "validation"): {x, y_asc, y_aec}.

    `epoch` is an int (fixed pairs: validation) or an `EpochCounter` handle (fresh pairs every
    epoch: training). `event_pool_ref` is `load_event_pool(features, division, split)` or an
    ObjectRef of it; without it the pool is loaded and put in the object store here. `trace`
    adds the partner's (event_clip, event_patch_index) and the scene row's key (strings:
    not for `iter_torch_batches`). `materialize_scenes` reads and filters the scene patches once,
    here, and keeps them in the object store: later epochs only re-run the pairing (worth it
    when they fit in memory). `concurrency` sizes the pairing actor pool; `num_cpus` is
    what each read task asks for, `pairer_cpus` each pairing actor (see `DATA_CPUS`): the stream
    needs their sum free beside the Train workers, or it waits for CPUs forever.
    """
    import ray

    if split == "test":
        raise ConfigError("test patches are never mixed (docs/method.md §3); use test_patches")
    _check(division, split)
    if event_pool_ref is None:
        event_pool_ref = ray.put(load_event_pool(features, division, split))
    scenes = scene_patches(
        features,
        division,
        split,
        variant,
        max_patches=max_patches,
        shuffle_seed=seed if shuffle else None,
        num_cpus=num_cpus,
    )
    if materialize_scenes:
        scenes = scenes.materialize()  # transforms after this re-run on every pass; the read does not
    if isinstance(concurrency, int):
        compute = ray.data.ActorPoolStrategy(size=concurrency)
    else:
        compute = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    return scenes.map_batches(
        MixupPairer,
        fn_constructor_kwargs=dict(event_pool=event_pool_ref, seed=seed, epoch=epoch, trace=trace),
        batch_size=batch_size,
        batch_format="numpy",
        compute=compute,
        num_cpus=pairer_cpus,
        udf_modifying_row_count=False,
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
    num_cpus: float = DATA_CPUS,
):
    """Un-mixed patches of one task: {x, y_<task>}. "asc" reads TUT (the variant's images),
    "aec" reads ESC-50 (mono; `variant` does not apply). `with_ids` adds the `clip` column
    (a string: for per-recording validation, not for `iter_torch_batches`)."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    dataset = schema.TASK_DATASET[task]
    return _stream(
        features,
        dataset,
        division,
        split,
        _images(dataset, variant),
        (schema.PATCH, schema.LABEL, schema.CLIP) if with_ids else (schema.PATCH, schema.LABEL),
        {schema.PATCH: schema.X, schema.LABEL: schema.TASK_LABEL[task]},
        max_patches=max_patches,
        variant=variant,
        shuffle_seed=shuffle_seed,
        num_cpus=num_cpus,
    )


TEST_COLUMNS = (schema.X, schema.DATASET, schema.CLIP, schema.IMAGE, schema.PATCH_INDEX, schema.LABEL)


def test_patches(features: str, dataset: str, division: int, variant: str, *, num_cpus: float = DATA_CPUS):
    """The test rows of `dataset` ("tut2017" or "esc50") in `division`, for scoring:
    {x, dataset, clip, image, patch_index, label}. TUT: the evaluation set, the variant's images;
    ESC-50: fold `division`."""
    columns = (schema.PATCH, schema.DATASET, schema.CLIP, schema.IMAGE, schema.PATCH_INDEX, schema.LABEL)
    return _stream(
        features,
        dataset,
        division,
        "test",
        _images(dataset, variant),
        columns,
        {schema.PATCH: schema.X},
        variant=variant,
        num_cpus=num_cpus,
    )


test_patches.__test__ = False  # not a pytest test, despite its name
