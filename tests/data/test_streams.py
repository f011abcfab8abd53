"""The member's Ray Datasets: the right rows of each division and split, as many as the manifest
implies, the columns training and scoring read, subsampling, and clear errors."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from raymtl import schema
from raymtl.data.mixup import EVENT_CLIP, EVENT_PATCH_INDEX
from raymtl.data.partitions import class_counts, expected_patches, split_files, stored_bytes
from raymtl.data.streams import (
    TEST_COLUMNS,
    KeptSplits,
    event_patches,
    fits_in_object_store,
    mixup_stream,
    rows_key,
    scene_patches,
    single_task_stream,
    test_patches,
)
from raymtl.errors import ConfigError, UserError
from tests.data.stored_rows import clip_rows, files, stored_image
from tests.data.stored_rows import manifest as stored_manifest
from tests.data.test_mixup import read_meta

Y_ASC, Y_AEC = schema.TASK_LABEL["asc"], schema.TASK_LABEL["aec"]


def _clips(meta, dataset, subset=None, folds=None) -> int:
    """Distinct clips of `dataset` (optionally one subset, some folds) in the features."""
    m = meta[meta.dataset == dataset]
    if subset is not None:
        m = m[m.subset == subset]
    if folds is not None:
        m = m[m.fold.isin(folds)]
    return m["clip"].nunique()


def _collect(ds) -> dict[str, np.ndarray]:
    parts = [b for b in ds.iter_batches(batch_size=None, batch_format="numpy") if len(next(iter(b.values())))]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@pytest.fixture(scope="module")
def meta(tiny_features):
    return read_meta(tiny_features)


@pytest.fixture(scope="module")
def manifest(tiny_features):
    return json.loads((tiny_features / schema.FEATURES_MANIFEST).read_text())


# (stream, its arguments, (dataset, subset, folds) of its clips, images per clip, patches per image)
COUNT_CASES = {
    "tut-train-triple-d1": (scene_patches, (1, "train", "triple"), ("tut2017", "dev", [2, 3, 4]), 3, 10),
    "tut-train-quadruple-d1": (
        scene_patches,
        (1, "train", "quadruple"),
        ("tut2017", "dev", [2, 3, 4]),
        4,
        10,
    ),
    "tut-validation-triple-d3": (scene_patches, (3, "validation", "triple"), ("tut2017", "dev", [3]), 3, 10),
    "esc-test-d1": (event_patches, (1, "test"), ("esc50", None, [1]), 1, 3),
    "esc-validation-d4": (event_patches, (4, "validation"), ("esc50", None, [5]), 1, 3),
}


@pytest.mark.parametrize("case", list(COUNT_CASES))
def test_stream_row_counts_match_the_manifest(case, tiny_features, meta, manifest):
    fn, args, (dataset, subset, folds), images, per_image = COUNT_CASES[case]
    ds = fn(str(tiny_features), *args)
    clips = _clips(meta, dataset, subset, folds)
    from_manifest = sum(
        n
        for sub, by_fold in manifest["clips"][dataset].items()
        for f, n in by_fold.items()
        if (subset is None or sub == subset) and f != "none" and int(f) in folds
    )
    assert clips == from_manifest > 0
    variant = args[2] if len(args) > 2 else "triple"
    split = args[1]
    assert (
        ds.count()
        == clips * images * per_image
        == expected_patches(str(tiny_features), dataset, args[0], split, variant)
    )


def test_scene_patches_hold_the_variants_images_of_the_split(tiny_features, meta):
    rows = _collect(scene_patches(str(tiny_features), 2, "train", "quadruple").drop_columns([schema.PATCH]))
    assert set(rows) == {schema.LABEL, schema.CLIP, schema.IMAGE, schema.PATCH_INDEX}
    assert Counter(rows[schema.IMAGE]) == {
        im: len(rows[schema.IMAGE]) // 4 for im in ("left", "right", "sum", "diff")
    }
    tut = meta[meta.dataset == "tut2017"]
    fold = dict(zip(tut["clip"], tut.fold))
    assert {fold[c] for c in rows[schema.CLIP]} == {1, 3, 4}  # division 2 trains on the other folds
    label = dict(zip(tut["clip"], tut.label))
    assert all(label[c] == y for c, y in zip(rows[schema.CLIP], rows[schema.LABEL]))
    assert rows[schema.LABEL].dtype == np.int64


def test_single_task_stream_gives_the_stored_patches_unmixed(tiny_features, meta):
    rows = _collect(single_task_stream(str(tiny_features), "aec", 1, "train", "quadruple"))
    assert set(rows) == {schema.X, Y_AEC}
    assert rows[schema.X].shape[1:] == (128, 128) and rows[schema.X].dtype == np.float32
    assert rows[Y_AEC].dtype == np.int64
    # The same patches as windows of the stored images of ESC folds 3-5 read with plain pyarrow,
    # compared by (label, checksum).
    table = clip_rows(tiny_features)
    keep = (np.asarray(table[schema.DATASET]) == "esc50") & np.isin(table[schema.FOLD].to_numpy(), [3, 4, 5])
    expected = []
    for row in table.filter(pa.array(keep)).to_pylist():
        image = stored_image(row, "mono")
        for p in range(3):
            window = image[:, 32 * p : 32 * p + 128].astype(np.float64)
            expected.append((row[schema.LABEL], window.sum().round(3)))
    got = sorted(
        zip(
            rows[Y_AEC].tolist(),
            rows[schema.X].reshape(len(rows[Y_AEC]), -1).astype(np.float64).sum(1).round(3),
        )
    )
    assert got == sorted(expected)


def test_test_patches_carry_what_scoring_needs(tiny_features, meta):
    tut = _collect(test_patches(str(tiny_features), "tut2017", 3, "quadruple"))
    assert set(tut) == set(TEST_COLUMNS)
    assert (
        len(tut[schema.X]) == _clips(meta, "tut2017", "eval") * 4 * 10
    )  # the evaluation set, every division
    assert set(tut[schema.DATASET]) == {"tut2017"} and set(tut[schema.PATCH_INDEX]) == set(range(10))
    evals = set(meta[(meta.dataset == "tut2017") & (meta.subset == "eval")]["clip"])
    assert set(tut[schema.CLIP]) == evals
    esc = _collect(
        test_patches(str(tiny_features), "esc50", 3, "triple").select_columns([schema.CLIP, schema.IMAGE])
    )
    assert {int(c.split("-")[0]) for c in esc[schema.CLIP]} == {3} and set(esc[schema.IMAGE]) == {"mono"}
    assert len(esc[schema.CLIP]) == _clips(meta, "esc50", folds=[3]) * 3


def test_streams_feed_iter_torch_batches_as_training_consumes_them(tiny_features, ray_session):
    # A small stand-in event pool (the real one is tested in test_mixup.py): no extra Ray Data pass.
    rng = np.random.default_rng(0)
    pool = {
        "patch": rng.normal(-40, 20, (20, 128, 128)).astype(np.float32),
        "label": np.arange(20, dtype=np.int64) % 50,
        "clip": np.array([f"3-{i}-A-{i}.wav" for i in range(20)]),
        "patch_index": np.zeros(20, dtype=np.int64),
    }
    ds = mixup_stream(str(tiny_features), 1, "train", "triple", 0, 0, ray_session.put(pool), max_patches=400)
    n = 0
    for batch in ds.iter_torch_batches(batch_size=256):
        assert set(batch) == {schema.X, Y_ASC, Y_AEC}
        assert batch[schema.X].dtype == torch.float32 and batch[schema.X].shape[1:] == (128, 128)
        assert batch[Y_ASC].dtype == torch.int64 and batch[Y_AEC].dtype == torch.int64
        assert 0 <= int(batch[Y_ASC].min()) and int(batch[Y_ASC].max()) < 15 and int(batch[Y_AEC].max()) < 50
        n += len(batch[schema.X])
    assert 250 < n < 550  # about max_patches of the 1350 training patches


def test_max_patches_keeps_about_that_many_rows_and_always_the_same(tiny_features):
    def keys(ds):
        rows = _collect(ds.select_columns([schema.CLIP, schema.IMAGE, schema.PATCH_INDEX]))
        return set(zip(rows[schema.CLIP], rows[schema.IMAGE], rows[schema.PATCH_INDEX].tolist()))

    small = keys(scene_patches(str(tiny_features), 1, "train", "triple", max_patches=300))
    again = keys(scene_patches(str(tiny_features), 1, "train", "triple", max_patches=300, shuffle_seed=5))
    assert small == again
    assert 200 < len(small) < 400  # binomial around 300 of 1350 (sd ~15)
    assert len({k[0] for k in small}) > 20  # spread over clips


def test_class_counts_come_from_the_manifest(tiny_features, tmp_path):
    assert class_counts(str(tiny_features)) == {"asc": 15, "aec": 50}
    esc10 = tmp_path / "features"
    esc10.mkdir()
    manifest = json.loads((tiny_features / schema.FEATURES_MANIFEST).read_text())
    manifest["classes"]["esc50"] = manifest["classes"]["esc50"][:10]
    (esc10 / schema.FEATURES_MANIFEST).write_text(json.dumps(manifest))
    assert class_counts(str(esc10)) == {"asc": 15, "aec": 10}


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda f: scene_patches(f, 1, "train", "stereo"), "variant"),
        (lambda f: scene_patches(f, 5, "train", "triple"), "division"),
        (lambda f: scene_patches(f, 1, "dev", "triple"), "split"),
        (lambda f: event_patches(f, 1, "train", max_patches=0), "max_patches"),
        (lambda f: single_task_stream(f, "sed", 1, "train", "triple"), "task"),
        (lambda f: test_patches(f, "audioset", 1, "triple"), "dataset"),
    ],
)
def test_bad_arguments_are_config_errors(call, match, tiny_features):
    with pytest.raises(ConfigError, match=match):
        call(str(tiny_features))


def test_a_folder_that_is_not_features_is_a_user_error(tmp_path, tiny_features):
    half_done = tmp_path / "features"
    half_done.mkdir()
    shutil.copy(files(tiny_features)[0], half_done / "part-0.parquet")  # no manifest
    with pytest.raises(UserError, match="manifest.json"):
        scene_patches(str(half_done), 1, "train", "triple")
    with pytest.raises(UserError, match="manifest.json"):
        class_counts(str(tmp_path / "missing"))


def test_a_version_1_folder_is_refused_with_the_command_that_rewrites_it(tmp_path, tiny_features):
    old = tmp_path / "features-v1"
    old.mkdir()
    manifest = json.loads((tiny_features / schema.FEATURES_MANIFEST).read_text())
    manifest["format_version"] = 1
    del manifest["partitions"]
    (old / schema.FEATURES_MANIFEST).write_text(json.dumps(manifest))
    inputs = manifest["inputs"]
    command = (
        f"raymtl featurize --esc {inputs['esc']} --tut-dev {inputs['tut_dev']} "
        f"--tut-eval {inputs['tut_eval']} "
        f"--out {old} --overwrite"
    )
    for call in (
        lambda f: scene_patches(f, 1, "train", "triple"),
        lambda f: mixup_stream(f, 1, "train", "triple", 0, 0),
        lambda f: class_counts(f),
    ):
        with pytest.raises(UserError, match="format version 1") as e:
            call(str(old))
        assert command in str(e.value)
    # Through the CLI: exit 2 and the same message, no traceback.
    from raymtl.cli import main

    code = main(
        [
            "train",
            "--experiment",
            "mtl-ic",
            "--division",
            "1",
            "--repeat",
            "1",
            "--variant",
            "triple",
            "--features",
            str(old),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2


def test_a_stream_opens_only_the_files_of_its_split(tiny_features):
    by_part = {name: p for name, p in stored_manifest(tiny_features)["partitions"].items()}
    assert set(by_part) == {
        *(f"esc50-fold-{k}" for k in range(1, 6)),
        *(f"tut2017-dev-fold-{k}" for k in range(1, 5)),
        "tut2017-eval",
    }

    def opened(dataset, division, split):
        return {
            str(Path(f).relative_to(tiny_features)).split("/")[0]
            for f in split_files(str(tiny_features), dataset, division, split)
        }

    assert opened("tut2017", 2, "train") == {"tut2017-dev-fold-1", "tut2017-dev-fold-3", "tut2017-dev-fold-4"}
    assert opened("tut2017", 2, "validation") == {"tut2017-dev-fold-2"}
    assert opened("tut2017", 4, "test") == {"tut2017-eval"}
    assert opened("esc50", 1, "train") == {"esc50-fold-3", "esc50-fold-4", "esc50-fold-5"}
    assert opened("esc50", 4, "validation") == {"esc50-fold-5"} and opened("esc50", 4, "test") == {
        "esc50-fold-4"
    }
    # The partitions' clips and patches add up to the manifest's totals, and each file holds its
    # partition's clips only.
    manifest = stored_manifest(tiny_features)
    assert sum(p["patches"] for p in by_part.values()) == manifest["patches"]
    for name, p in by_part.items():
        t = pa.concat_tables(
            pq.read_table(tiny_features / f, columns=["dataset", "subset", "fold"]) for f in p["files"]
        )
        assert t.num_rows == p["clips"] > 0
        assert set(t["dataset"].to_pylist()) == {p["dataset"]} and set(t["fold"].to_pylist()) == {p["fold"]}


def test_materialized_and_shuffled_streams_give_the_same_rows_in_another_order(tiny_features):
    def rows(ds):
        got = _collect(ds)
        return list(
            zip(got[Y_ASC].tolist(), got[schema.X].reshape(len(got[Y_ASC]), -1).sum(1).round(2).tolist())
        )

    plain = rows(single_task_stream(str(tiny_features), "asc", 1, "train", "quadruple"))
    kept = single_task_stream(
        str(tiny_features), "asc", 1, "train", "quadruple", shuffle_seed=3, materialize=True
    )
    first, second = rows(kept), rows(kept)  # two passes over the kept clip rows
    assert len(plain) == expected_patches(str(tiny_features), "tut2017", 1, "train", "quadruple")
    assert sorted(first) == sorted(plain) == sorted(second)
    assert first != plain  # shuffled within the block, without a local shuffle buffer


def test_streams_of_the_same_clip_rows_keep_them_once(tiny_features, ray_session):
    f = str(tiny_features)
    kept = KeptSplits()
    finetune = single_task_stream(f, "asc", 1, "train", "triple", shuffle_seed=3, materialize=True, kept=kept)
    mixup = mixup_stream(f, 1, "train", "triple", 0, 0, materialize_scenes=True, kept=kept, trace=True)
    test = test_patches(f, "tut2017", 1, "triple", materialize=True, kept=kept)
    # One copy of TUT's training rows for the fine-tune and the mixup stream; the test rows
    # (with the dataset column) are other rows.
    train_rows = rows_key("tut2017", 1, "train", "triple")
    assert train_rows in kept and rows_key("tut2017", 1, "test", "triple", with_dataset=True) in kept
    assert len(kept._rows) == 2
    # Sharing changes nothing the streams give.
    alone = single_task_stream(f, "asc", 1, "train", "triple", shuffle_seed=3, materialize=True)
    assert sorted(_collect(finetune)[schema.X].sum(axis=(1, 2)).round(2).tolist()) == sorted(
        _collect(alone)[schema.X].sum(axis=(1, 2)).round(2).tolist()
    )

    def pairs(ds):  # (scene patch, its partner) of every mixup sample
        got = _collect(ds)
        ids = (schema.CLIP, schema.IMAGE, schema.PATCH_INDEX, EVENT_CLIP, EVENT_PATCH_INDEX)
        return sorted(zip(*(got[c].tolist() for c in ids)))

    alone = mixup_stream(f, 1, "train", "triple", 0, 0, materialize_scenes=True, trace=True)
    assert pairs(mixup) == pairs(alone)
    assert len(_collect(test)[schema.X]) == expected_patches(f, "tut2017", 1, "test", "triple")


def test_what_is_kept_in_memory_is_decided_from_the_object_store(tiny_features, ray_session, meta):
    capacity = ray_session.cluster_resources()["object_store_memory"]
    n = stored_bytes(str(tiny_features), "tut2017", 1, "train", "quadruple")
    # Left and right of each training clip (quadruple and triple alike: sum and diff are derived).
    assert (
        n
        == stored_bytes(str(tiny_features), "tut2017", 1, "train", "triple")
        == _clips(meta, "tut2017", "dev", [2, 3, 4]) * 2 * 128 * 431 * 2
    )
    assert fits_in_object_store(n)
    assert not fits_in_object_store(int(capacity))  # more than the share a member may keep
