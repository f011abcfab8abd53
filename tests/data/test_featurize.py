"""Featurization on Ray Data: counts, schema round trip, rejects, strict mode, no overwrite,
and the real recordings under ../shared/data/real."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pytest
import soundfile as sf

from raymtl import schema
from raymtl.cli import main
from raymtl.data.classes import ESC50_CLASSES, TUT2017_SCENES
from raymtl.data.featurize import featurize
from raymtl.data.mixup import key_hash
from raymtl.errors import OutputExistsError
from tests.conftest import REAL, require_shared
from tests.data.layout_builders import make_esc, make_tut
from tests.data.stored_rows import clip_rows, patch_meta


def _read(features, columns=None):
    import ray

    ds = ray.data.read_parquet(str(features))
    return ds if columns is None else ds.select_columns(columns)


def _rejects(features) -> dict[str, str]:
    with open(features / schema.FEATURES_REJECTS, newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(set(r) == {"file", "reason"} for r in rows)
    return {os.path.basename(r["file"]): r["reason"] for r in rows}


def test_tiny_features_have_the_documented_schema_and_exact_counts(tiny_features, tiny_data):
    manifest = json.loads((tiny_features / schema.FEATURES_MANIFEST).read_text())
    assert manifest["format"] == "raymtl-features" and manifest["format_version"] == 2
    clips = clip_rows(tiny_features)
    assert set(clips.schema.names) == set(schema.STORED_COLUMNS)
    # One row per clip; its stored images (int16, 1/128 dB) and its mixup keys.
    esc, tut = (
        clips.filter(pa.compute.equal(clips[schema.DATASET], d)).to_pandas() for d in ("esc50", "tut2017")
    )
    assert esc["clip"].is_unique and tut["clip"].is_unique
    assert (esc.n_frames == 216).all() and (tut.n_frames == 431).all()
    assert (
        esc["mono"].map(len).eq(128 * 216 * 2).all()
        and esc["left"].isna().all()
        and esc["right"].isna().all()
    )
    assert tut["left"].map(len).eq(128 * 431 * 2).all() and tut["right"].map(len).eq(128 * 431 * 2).all()
    assert tut["mono"].isna().all()
    assert esc["patch_keys"].map(len).eq(3).all() and tut["patch_keys"].map(len).eq(40).all()
    row = tut.iloc[0]
    assert list(row["patch_keys"][30:40]) == key_hash([row["clip"]] * 10, ["diff"] * 10, range(10)).tolist()

    meta = patch_meta(tiny_features)
    esc, tut = meta[meta.dataset == "esc50"], meta[meta.dataset == "tut2017"]
    # Exactly 3 patches per ESC clip (mono) and 10 per TUT clip and channel image.
    assert (esc.groupby("clip").size() == 3).all() and set(esc.image) == {"mono"}
    per_image = tut.groupby(["clip", "image"]).size()
    assert (per_image == 10).all() and set(tut.image) == {"left", "right", "sum", "diff"}
    assert (tut.groupby("clip").image.nunique() == 4).all()
    assert sorted(tut.patch_index.unique()) == list(range(10))
    # Every clip of the metadata is there, and every class.
    n_esc = sum(1 for _ in open(tiny_data / "esc50" / "meta" / "esc50.csv")) - 1
    n_dev = sum(1 for _ in open(tiny_data / "tut2017-dev" / "meta.txt"))
    n_eval = sum(1 for _ in open(tiny_data / "tut2017-eval" / "meta.txt"))
    assert esc["clip"].nunique() == n_esc
    assert (
        tut[tut.subset == "dev"]["clip"].nunique() == n_dev
        and tut[tut.subset == "eval"]["clip"].nunique() == n_eval
    )
    assert set(esc.class_name) == set(ESC50_CLASSES) and set(tut.class_name) == set(TUT2017_SCENES)
    assert manifest["classes"]["esc50"] == list(ESC50_CLASSES)
    assert manifest["patches"] == len(meta) == 3 * n_esc + 40 * (n_dev + n_eval)
    # Labels index the manifest's class lists; folds as documented.
    for dataset, part in (("esc50", esc), ("tut2017", tut)):
        names = manifest["classes"][dataset]
        assert (part.class_name == part.label.map(lambda i: names[i])).all()
    assert set(esc.fold) == {1, 2, 3, 4, 5}
    assert tut[tut.subset == "eval"].fold.isna().all() and set(tut[tut.subset == "dev"].fold) == {1, 2, 3, 4}
    report = json.loads((tiny_features / schema.FEATURES_REPORT).read_text())
    assert (
        report["clips"] == n_esc + n_dev + n_eval and report["rejects"] == 0 and report["bytes_written"] > 0
    )


@pytest.mark.parametrize("image", ["left", "sum", "diff"])
def test_patches_equal_a_direct_computation_within_the_storage_step(tiny_features, tiny_data, image):
    """A streamed patch is the float32 log-mel window of the clip itself (no mix-up of rows), to
    within the int16 storage step: 1/256 dB on a stored image, 1/128 dB on sum and diff, far
    inside the 0.05 dB the format allows."""
    from raymtl.data.features import LogMel, channel_images, patches
    from raymtl.data.streams import test_patches

    rows = test_patches(str(tiny_features), "tut2017", 1, "quadruple").take_batch(200, batch_format="numpy")
    i = int(np.flatnonzero(rows["image"] == image)[3])
    y, _ = sf.read(str(tiny_data / "tut2017-eval" / rows["clip"][i]), dtype="float32")
    expected = patches(channel_images(y, LogMel())[image])[rows["patch_index"][i]]
    error = np.abs(rows["x"][i] - expected).max()
    assert error <= (1 / 256 if image == "left" else 1 / 128) + 1e-4
    assert error <= 0.05 and error > 0  # quantized, not the float32 image


@pytest.fixture
def damaged_layout(tmp_path):
    """A small layout with one of each kind of bad input."""
    esc = make_esc(
        tmp_path / "esc",
        targets=(0, 1),
        extra_rows=[
            "1-7000-A-7.wav,1,7,unicorn,False,7000,A",
            "9-8000-A-0.wav,9,0,dog,True,8000,A",
            "1-1000-A-0.wav,1,0,dog,True,1000,A",
        ],
    )
    dev, evl = make_tut(tmp_path / "dev", tmp_path / "eval", scenes=(0, 1))
    (esc / "audio" / "2-1001-A-1.wav").write_bytes(np.random.default_rng(0).bytes(30000))  # garbage
    victim = dev / "audio" / "a1000_0_10.wav"
    victim.write_bytes(victim.read_bytes()[:400000])  # truncated
    return esc, dev, evl


def test_bad_inputs_are_rejected_and_the_rest_featurized(ray_session, damaged_layout, tmp_path):
    esc, dev, evl = damaged_layout
    out = tmp_path / "F"
    assert (
        main(
            ["featurize", "--esc", str(esc), "--tut-dev", str(dev), "--tut-eval", str(evl), "--out", str(out)]
        )
        == 0
    )
    rejects = _rejects(out)
    assert rejects["2-1001-A-1.wav"].startswith("corrupt or unreadable audio")
    assert rejects["a1000_0_10.wav"].startswith("truncated")
    assert rejects["1-7000-A-7.wav"].startswith("unknown class")
    assert "out of range" in rejects["9-8000-A-0.wav"]
    assert rejects["1-1000-A-0.wav"].startswith("duplicate file")
    assert len(rejects) == 5
    clips = Counter(_read(out, ["clip"]).to_pandas()["clip"])
    assert len([c for c in clips if c.endswith(".wav") and "-" in c]) == 10 - 1  # ESC: all but garbage
    assert len([c for c in clips if c.startswith("audio/")]) == 8 - 1 + 2  # TUT: dev but truncated, eval
    assert "2-1001-A-1.wav" not in clips and "audio/a1000_0_10.wav" not in clips


def test_strict_stops_at_the_first_bad_file_with_exit_2(ray_session, damaged_layout, tmp_path, capsys):
    esc, dev, evl = damaged_layout
    # Metadata problems are found first, before any audio is read.
    args = ["featurize", "--esc", str(esc), "--tut-dev", str(dev), "--tut-eval", str(evl), "--strict"]
    assert main(args + ["--out", str(tmp_path / "F1")]) == 2
    assert "unknown class" in capsys.readouterr().err
    # With clean metadata, the first bad audio file stops the run.
    meta = esc / "meta" / "esc50.csv"
    meta.write_text("\n".join(meta.read_text().splitlines()[:11]) + "\n")
    assert main(args + ["--out", str(tmp_path / "F2")]) == 2
    err = capsys.readouterr().err
    assert ("2-1001-A-1.wav: corrupt" in err) or ("a1000_0_10.wav: truncated" in err)
    assert not (tmp_path / "F2").exists() and not (tmp_path / "F2.partial").exists()


def test_a_finished_features_folder_is_never_overwritten(ray_session, tmp_path):
    esc = make_esc(tmp_path / "esc", targets=(0,))
    dev, evl = make_tut(tmp_path / "dev", tmp_path / "eval", scenes=(0,))
    out = tmp_path / "F"
    featurize(str(esc), str(dev), str(evl), str(out))
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(OutputExistsError, match="--overwrite"):
        featurize(str(esc), str(dev), str(evl), str(out))
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert (
        main(
            ["featurize", "--esc", str(esc), "--tut-dev", str(dev), "--tut-eval", str(evl), "--out", str(out)]
        )
        == 2
    )
    featurize(str(esc), str(dev), str(evl), str(out), overwrite=True)
    assert (out / schema.FEATURES_MANIFEST).exists() and not (tmp_path / "F.old").exists()


def test_real_recordings_featurize_with_expected_counts(ray_session, tmp_path):
    """Real ESC-10 Ogg clips (two folds) and the 48 kHz 24-bit stereo scene clips."""
    real_esc = require_shared(REAL / "esc10")
    esc = tmp_path / "esc"
    (esc / "meta").mkdir(parents=True)
    os.symlink(real_esc / "ogg", esc / "audio")
    lines = (real_esc / "esc50_format_meta.csv").read_text().splitlines()
    kept = [line for line in lines[1:] if line.split(",")[1] in ("1", "2")]
    (esc / "meta" / "esc50.csv").write_text("\n".join([lines[0]] + kept) + "\n")

    # A TUT 2017 layout around the real scene clips (their 2018 labels mapped to 2017 scenes).
    scene_of = {
        "bus": "bus",
        "tram": "tram",
        "park": "park",
        "metro_station": "metro_station",
        "airport": "office",
        "metro": "train",
        "public_square": "city_center",
        "shopping_mall": "grocery_store",
        "street_pedestrian": "residential_area",
        "street_traffic": "car",
    }
    dev, evl = tmp_path / "dev", tmp_path / "eval"
    (dev / "audio").mkdir(parents=True)
    (dev / "evaluation_setup").mkdir()
    folds: dict[int, list[str]] = {}
    meta = []
    for i, (name, scene) in enumerate(sorted(scene_of.items())):
        clip = f"audio/{name}_0_10.wav"
        shutil.copy(REAL / "tau-urban-2018-samples" / "audio" / f"{name}.wav", dev / clip)
        meta.append(f"{clip}\t{scene}\t{name}")
        folds.setdefault(i % 4 + 1, []).append(f"{clip}\t{scene}")
    (dev / "meta.txt").write_text("\n".join(meta) + "\n")
    for k, rows in folds.items():
        (dev / "evaluation_setup" / f"fold{k}_evaluate.txt").write_text("\n".join(rows) + "\n")
        train = [r for j in folds if j != k for r in folds[j]]
        (dev / "evaluation_setup" / f"fold{k}_train.txt").write_text("\n".join(train) + "\n")
    (evl / "audio").mkdir(parents=True)
    shutil.copy(REAL / "dcase-util-example" / "audio" / "acoustic_scene.wav", evl / "audio" / "1.wav")
    (evl / "meta.txt").write_text("audio/1.wav\tcity_center\n")

    out = tmp_path / "F"
    report = featurize(str(esc), str(dev), str(evl), str(out))
    meta_df = patch_meta(out)
    esc_rows, tut_rows = meta_df[meta_df.dataset == "esc50"], meta_df[meta_df.dataset == "tut2017"]
    assert esc_rows["clip"].nunique() == 160 and (esc_rows.groupby("clip").size() == 3).all()
    assert tut_rows["clip"].nunique() == 11 and (tut_rows.groupby(["clip", "image"]).size() == 10).all()
    assert report.clips == 171 and report.patches == 160 * 3 + 11 * 40 and report.rejects == 0
    # Every 48 kHz clip was resampled; ESC clips not exactly 5 s were padded or cut.
    notes = json.loads((out / schema.FEATURES_REPORT).read_text())["notes_detail"]
    resampled = {os.path.basename(n["file"]) for n in notes if n["note"] == "resampled from 48000 Hz"}
    assert resampled == {f"{name}_0_10.wav" for name in scene_of}
    off_length = {
        line.split(",")[0][:-4] + ".ogg"
        for line in kept
        if sf.info(str(real_esc / "ogg" / (line.split(",")[0][:-4] + ".ogg"))).frames != 220500
    }
    padded_or_cut = {
        os.path.basename(n["file"]) for n in notes if n["note"].split()[0] in ("zero-padded", "cut")
    }
    assert padded_or_cut == off_length and len(off_length) > 0
