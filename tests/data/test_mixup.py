"""Mixup pairing (paper Eq. 1-3): exact arithmetic, both labels, partners from the right split,
reproducible and independent of batching, fresh every epoch, uniform over the event pool."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chisquare

from raymtl import schema
from raymtl.data.mixup import (
    EVENT_CLIP,
    EVENT_PATCH_INDEX,
    EpochCounter,
    MixupPairer,
    key_hash,
    load_event_pool,
    partner_indices,
)
from raymtl.data.streams import mixup_stream, scene_patches
from raymtl.errors import ConfigError, UserError
from tests.data.stored_rows import patch_meta

SEED = 7
Y_ASC, Y_AEC = schema.TASK_LABEL["asc"], schema.TASK_LABEL["aec"]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def read_meta(features: Path):
    """Every patch's metadata (no patches), from the Parquet clip rows with pyarrow."""
    return patch_meta(features)


def collect(ds) -> dict[str, np.ndarray]:
    parts = [b for b in ds.iter_batches(batch_size=None, batch_format="numpy") if len(next(iter(b.values())))]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def scene_keys(rows) -> list[tuple[str, str, int]]:
    return list(
        zip(rows[schema.CLIP].tolist(), rows[schema.IMAGE].tolist(), rows[schema.PATCH_INDEX].tolist())
    )


def pairs(rows) -> dict[tuple[str, str, int], tuple[str, int]]:
    """Scene row key -> (event clip, event patch index)."""
    events = zip(rows[EVENT_CLIP].tolist(), rows[EVENT_PATCH_INDEX].tolist())
    out = dict(zip(scene_keys(rows), events))
    assert len(out) == len(rows[EVENT_CLIP]), "a scene row appeared twice"
    return out


def esc_fold(clip: str) -> int:
    return int(clip.split("-", 1)[0])  # ESC-50 file names are "{fold}-{src}-{take}-{target}.wav"


def synthetic_pool(n_classes: int, per_class: int, side: int = 4) -> dict[str, np.ndarray]:
    n = n_classes * per_class
    rng = np.random.default_rng(0)
    return {
        "patch": rng.normal(-40, 20, (n, side, side)).astype(np.float32),
        "label": np.repeat(np.arange(n_classes), per_class).astype(np.int64),
        "clip": np.array([f"{1 + i % 5}-{i // per_class}-A-{i // per_class}.wav" for i in range(n)]),
        "patch_index": np.tile(np.arange(per_class), n_classes).astype(np.int64),
    }


def synthetic_scenes(
    n_clips: int, side: int = 4, images=("left", "right", "sum", "diff")
) -> dict[str, np.ndarray]:
    keys = [(f"audio/a{c:03d}_0_10.wav", im, p) for c in range(n_clips) for im in images for p in range(10)]
    rng = np.random.default_rng(1)
    return {
        schema.PATCH: rng.normal(-40, 20, (len(keys), side, side)).astype(np.float32),
        schema.LABEL: np.array([int(k[0][7:10]) % 15 for k in keys], dtype=np.int32),
        schema.CLIP: np.array([k[0] for k in keys], dtype=object),
        schema.IMAGE: np.array([k[1] for k in keys], dtype=object),
        schema.PATCH_INDEX: np.array([k[2] for k in keys], dtype=np.int32),
    }


def subset(batch, idx):
    return {k: v[idx] for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------
# In memory: the pairer alone
# ---------------------------------------------------------------------------------------------


def test_key_hash_is_stable_across_processes_and_versions():
    # A golden value: Python's salted hash() would change it on every run.
    assert key_hash(["audio/a001_0_10.wav"], ["left"], [3]).tolist() == [12232981756052737961]
    assert partner_indices(
        key_hash(["audio/a001_0_10.wav", "x"], ["left", "sum"], [3, 4]), 0, 0, 450
    ).tolist() == [
        52,
        258,
    ]


def test_pairer_mixes_exactly_and_keeps_both_labels():
    pool = synthetic_pool(n_classes=5, per_class=3, side=8)
    scenes = synthetic_scenes(n_clips=4, side=8)
    out = MixupPairer(event_pool=pool, seed=SEED, epoch=0)(scenes)
    # Recover each partner's pool row from its traced key.
    where = {(c, p): i for i, (c, p) in enumerate(zip(pool["clip"], pool["patch_index"]))}
    idx = np.array([where[(c, p)] for c, p in zip(out[EVENT_CLIP], out[EVENT_PATCH_INDEX])])
    expected = np.float32(0.5) * scenes[schema.PATCH] + np.float32(0.5) * pool["patch"][idx]
    assert out[schema.X].dtype == np.float32 and np.array_equal(out[schema.X], expected)
    assert out[Y_ASC].dtype == np.int64 and np.array_equal(out[Y_ASC], scenes[schema.LABEL])
    assert out[Y_AEC].dtype == np.int64 and np.array_equal(out[Y_AEC], pool["label"][idx])
    assert len(set(idx.tolist())) > 10  # partners are spread over the pool, not one patch


def test_partners_do_not_depend_on_batching_or_row_order():
    pool = synthetic_pool(n_classes=10, per_class=3)
    scenes = synthetic_scenes(n_clips=20)
    pairer = MixupPairer(event_pool=pool, seed=SEED, epoch=3)
    whole = pairs(pairer(scenes))
    perm = np.random.default_rng(2).permutation(len(scenes[schema.LABEL]))
    pieces = {}
    for chunk in np.array_split(perm, 7):  # uneven batches, shuffled rows
        pieces.update(pairs(pairer(subset(scenes, chunk))))
    assert pieces == whole
    # A fresh pairer (another actor) with the same seed and epoch agrees too.
    assert pairs(MixupPairer(event_pool=pool, seed=SEED, epoch=3)(scenes)) == whole


def test_new_epochs_and_new_seeds_draw_new_partners():
    pool = synthetic_pool(n_classes=50, per_class=3)
    scenes = synthetic_scenes(n_clips=100)
    base = pairs(MixupPairer(event_pool=pool, seed=SEED, epoch=0)(scenes))

    def changed(seed, epoch):
        other = pairs(MixupPairer(event_pool=pool, seed=seed, epoch=epoch)(scenes))
        return np.mean([other[k] != base[k] for k in base])

    # Same partner again by chance: 1 / 150.
    assert changed(SEED, 1) > 0.95 and changed(SEED, 2) > 0.95 and changed(SEED + 1, 0) > 0.95
    assert changed(SEED, 0) == 0


def test_partner_labels_are_uniform_with_a_pool_much_smaller_than_the_scenes():
    # ESC-like pool (50 classes x 3 patches) against 1500 TUT clips x 4 images x 10 patches:
    # 400 scene patches per event patch.
    pool = synthetic_pool(n_classes=50, per_class=3)
    scenes = synthetic_scenes(n_clips=1500, side=1)
    pool["patch"] = pool["patch"][:, :1, :1]
    for epoch in (0, 1):
        out = MixupPairer(event_pool=pool, seed=SEED, epoch=epoch, trace=False)(scenes)
        by_label = np.bincount(out[Y_AEC], minlength=50)
        assert chisquare(by_label).pvalue > 1e-3
        assert np.abs(by_label / by_label.mean() - 1).max() < 0.15  # expected 1200 each
        keys = key_hash(scenes[schema.CLIP], scenes[schema.IMAGE], scenes[schema.PATCH_INDEX])
        by_patch = np.bincount(partner_indices(keys, SEED, epoch, 150), minlength=150)
        assert chisquare(by_patch).pvalue > 1e-3 and by_patch.min() > 0


def test_empty_pool_is_refused():
    pool = synthetic_pool(1, 1)
    empty = {k: v[:0] for k, v in pool.items()}
    with pytest.raises(UserError):
        MixupPairer(event_pool=empty, seed=0, epoch=0)


# ---------------------------------------------------------------------------------------------
# On the tiny features, through Ray Data
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def meta(tiny_features):
    return read_meta(tiny_features)


@pytest.fixture(scope="module")
def pool_train(tiny_features):
    return load_event_pool(str(tiny_features), 1, "train")


@pytest.fixture(scope="module")
def pool_ref(pool_train, ray_session):
    return ray_session.put(pool_train)


@pytest.fixture(scope="module")
def scenes_train(tiny_features):
    return collect(scene_patches(str(tiny_features), 1, "train", "triple"))


@pytest.fixture(scope="module")
def mixed_epoch0(tiny_features, pool_ref):
    ds = mixup_stream(str(tiny_features), 1, "train", "triple", SEED, 0, pool_ref, trace=True, batch_size=100)
    return collect(ds)


def test_event_pool_is_the_division_train_split_in_a_fixed_order(pool_train, meta):
    # Division 1: ESC test = fold 1, validation = fold 2, train = folds 3-5.
    esc = meta[meta.dataset == "esc50"]
    assert {esc_fold(c) for c in pool_train["clip"]} == {3, 4, 5}
    assert (
        len(pool_train["label"])
        == (esc.fold.isin([3, 4, 5])).sum()
        == 3 * esc[esc.fold >= 3]["clip"].nunique()
    )
    keys = list(zip(pool_train["clip"].tolist(), pool_train["patch_index"].tolist()))
    assert keys == sorted(keys)
    assert pool_train["patch"].shape == (len(keys), 128, 128) and pool_train["patch"].dtype == np.float32
    assert pool_train["label"].dtype == np.int64
    truth = dict(zip(esc["clip"], esc.label))
    assert all(truth[c] == y for c, y in zip(pool_train["clip"], pool_train["label"]))


def test_pairer_on_a_take_batch_of_scene_patches(tiny_features, pool_train):
    batch = scene_patches(str(tiny_features), 1, "train", "triple").take_batch(32, batch_format="numpy")
    out = MixupPairer(event_pool=pool_train, seed=SEED, epoch=0)(batch)
    assert out[schema.X].shape == (32, 128, 128) and out[schema.X].dtype == np.float32
    assert out[Y_ASC].dtype == np.int64 and out[Y_AEC].dtype == np.int64
    assert np.array_equal(out[Y_ASC], batch[schema.LABEL])
    assert {esc_fold(c) for c in out[EVENT_CLIP]} <= {3, 4, 5}


def test_mixup_stream_pairs_within_the_division_train_split_exactly(
    mixed_epoch0, scenes_train, pool_train, meta
):
    rows = mixed_epoch0
    # Every training scene patch exactly once, none other.
    assert sorted(scene_keys(rows)) == sorted(scene_keys(scenes_train))
    tut_fold = dict(zip(meta[meta.dataset == "tut2017"]["clip"], meta[meta.dataset == "tut2017"].fold))
    assert {tut_fold[c] for c in rows[schema.CLIP]} == {2, 3, 4}  # TUT train of division 1
    assert {esc_fold(c) for c in rows[EVENT_CLIP]} <= {3, 4, 5}  # ESC train of division 1
    # x = 0.5 * scene + 0.5 * event, labels of both.
    scene_at = {k: i for i, k in enumerate(scene_keys(scenes_train))}
    pool_at = {
        k: i for i, k in enumerate(zip(pool_train["clip"].tolist(), pool_train["patch_index"].tolist()))
    }
    si = np.array([scene_at[k] for k in scene_keys(rows)])
    ei = np.array([pool_at[k] for k in zip(rows[EVENT_CLIP].tolist(), rows[EVENT_PATCH_INDEX].tolist())])
    half = np.float32(0.5)
    assert np.array_equal(
        rows[schema.X], half * scenes_train[schema.PATCH][si] + half * pool_train["patch"][ei]
    )
    assert np.array_equal(rows[Y_ASC], scenes_train[schema.LABEL][si])
    assert np.array_equal(rows[Y_AEC], pool_train["label"][ei])
    assert len(set(ei.tolist())) > len(pool_train["label"]) / 2  # partners spread over the pool


def test_pairs_do_not_depend_on_batch_size_actors_or_file_order(
    tiny_features, pool_ref, pool_train, mixed_epoch0, scenes_train
):
    ds = mixup_stream(
        str(tiny_features),
        1,
        "train",
        "triple",
        SEED,
        0,
        pool_ref,
        trace=True,
        batch_size=37,
        pairing="actors",
        concurrency=2,
        shuffle=True,
    )
    assert pairs(collect(ds)) == pairs(mixed_epoch0)
    # ... and the same as the pairer called in this process on the rows in reverse order.
    reverse = subset(scenes_train, np.arange(len(scenes_train[schema.LABEL]))[::-1])
    assert pairs(MixupPairer(event_pool=pool_train, seed=SEED, epoch=0)(reverse)) == pairs(mixed_epoch0)


@pytest.mark.parametrize("materialize_scenes", [False, True], ids=["streamed", "materialized"])
def test_epoch_counter_draws_fresh_partners_on_each_pass(
    materialize_scenes, tiny_features, pool_ref, pool_train, mixed_epoch0, scenes_train, ray_session
):
    counter = EpochCounter.start(0)
    ds = mixup_stream(
        str(tiny_features),
        1,
        "train",
        "triple",
        SEED,
        counter,
        pool_ref,
        trace=True,
        materialize_scenes=materialize_scenes,
    )
    first = pairs(collect(ds))
    ray_session.get(counter.set.remote(1))
    second = pairs(collect(ds))  # the same Dataset, iterated again
    assert first == pairs(mixed_epoch0)
    assert first.keys() == second.keys()
    assert np.mean([first[k] != second[k] for k in first]) > 0.9  # 1 / 450 stay by chance
    assert second == pairs(MixupPairer(event_pool=pool_train, seed=SEED, epoch=1)(scenes_train))
    ray_session.kill(counter)


def test_validation_pairs_come_from_the_validation_splits(tiny_features, meta):
    rows = collect(mixup_stream(str(tiny_features), 1, "validation", "triple", SEED, 0, trace=True))
    tut = meta[meta.dataset == "tut2017"]
    tut_fold = dict(zip(tut["clip"], tut.fold))
    assert {tut_fold[c] for c in rows[schema.CLIP]} == {1}  # fold1_evaluate.txt
    assert {esc_fold(c) for c in rows[EVENT_CLIP]} == {2}  # ESC validation fold of division 1
    assert len(rows[schema.X]) == tut[(tut.subset == "dev") & (tut.fold == 1)]["clip"].nunique() * 3 * 10


def test_test_patches_are_never_mixed(tiny_features):
    with pytest.raises(ConfigError, match="never mixed"):
        mixup_stream(str(tiny_features), 1, "test", "triple", SEED, 0)


def test_load_event_pool_without_esc_patches_raises(tiny_features, tmp_path):
    only_tut = tmp_path / "features"
    shutil.copytree(tiny_features, only_tut)
    manifest = json.loads((only_tut / schema.FEATURES_MANIFEST).read_text())
    manifest["partitions"] = {k: p for k, p in manifest["partitions"].items() if p["dataset"] != "esc50"}
    (only_tut / schema.FEATURES_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="no ESC-50 patches"):
        load_event_pool(str(only_tut), 1, "train")
