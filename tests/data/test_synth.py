"""raymtl.data.synth: the synthetic ESC-50 / TUT 2017 sets, their layouts, formats, determinism
and learnability. The tiny set is generated once for the module."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
from threadpoolctl import threadpool_limits  # a librosa dependency (via scikit-learn)

from raymtl.data import synth
from raymtl.data.classes import ESC10_TARGETS, ESC50_CLASSES, TUT2017_SCENES
from raymtl.errors import ConfigError, OutputExistsError

SEED = 7
EXPECTED_COUNTS = {"tiny": (250, 60, 30), "demo": (500, 120, 30), "full": (2000, 4680, 1620)}
ESC_ROW = re.compile(r"^(\d)-(\d+)-([A-Z])-(\d+)\.wav,(\d),(\d+),([a-z_]+),(True|False),(\d+),([A-Z])$")
TUT_META_ROW = re.compile(r"^audio/([a-z]\d{3})_(\d+)_(\d+)\.wav\t([a-z_/]+)\t([a-z]\d{3})$")
TUT_LABEL_ROW = re.compile(r"^(audio/[a-z]\d{3}_\d+_\d+\.wav)\t([a-z_/]+)$")
TUT_TEST_ROW = re.compile(r"^audio/[a-z]\d{3}_\d+_\d+\.wav$")


# ---------------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    summary = synth.generate(out, "tiny", SEED)
    assert (summary.n_esc50, summary.n_tut_dev, summary.n_tut_eval) == EXPECTED_COUNTS["tiny"]
    assert summary.esc50_dir == out / "esc50" and summary.tut_eval_dir == out / "tut2017-eval"
    assert "250 ESC-50 clips" in summary.describe()
    return out


def lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\r" not in text, path
    return text[:-1].split("\n")


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def log_mel_mean(x: np.ndarray, sr: int) -> np.ndarray:
    """Mean over time of the 128-band log-mel of each channel, concatenated."""
    out = []
    for ch in np.atleast_2d(x.T):
        mel = librosa.feature.melspectrogram(
            y=np.ascontiguousarray(ch), sr=sr, n_fft=2048, hop_length=1024, n_mels=128
        )
        out.append(librosa.power_to_db(mel, ref=1.0, top_db=None).mean(axis=1))
    return np.concatenate(out)


def nearest_centroid_accuracy(x_train, y_train, x_test, y_test, n_classes: int) -> float:
    centroids = np.stack([x_train[y_train == c].mean(axis=0) for c in range(n_classes)])
    dist = ((x_test[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    return float((dist.argmin(axis=1) == y_test).mean())


@pytest.fixture(scope="module")
def audio_stats(tiny):
    """One pass over every tiny file: features, labels, peaks, channel statistics."""
    esc = [r.split(",") for r in lines(tiny / "esc50/meta/esc50.csv")[1:]]
    dev = [r.split("\t") for r in lines(tiny / "tut2017-dev/meta.txt")]
    ev = [r.split("\t") for r in lines(tiny / "tut2017-eval/meta.txt")]
    scene_index = {s: i for i, s in enumerate(TUT2017_SCENES)}
    stats: dict = {"peak": [], "lr_corr": [], "ild_db": defaultdict(list)}

    def load(path: Path, scene: str | None = None) -> np.ndarray:
        x, sr = sf.read(path, dtype="float32")
        assert sr == 44100
        stats["peak"].append(float(np.abs(x).max()))
        if scene is not None:  # TUT: binaural
            left, right = x[:, 0], x[:, 1]
            stats["lr_corr"].append(float(np.corrcoef(left, right)[0, 1]))
            stats["ild_db"][scene].append(10 * np.log10(np.mean(left**2) / np.mean(right**2)))
        return log_mel_mean(x, sr)

    # One BLAS thread: librosa's small mel products only lose time to threads on 2 busy cores.
    with threadpool_limits(limits=1):
        stats["esc_x"] = np.stack([load(tiny / "esc50/audio" / r[0]) for r in esc])
        for split, rows, folder in (("dev", dev, "tut2017-dev"), ("eval", ev, "tut2017-eval")):
            stats[f"{split}_x"] = np.stack([load(tiny / folder / r[0], r[1]) for r in rows])
            stats[f"{split}_y"] = np.array([scene_index[r[1]] for r in rows])
    stats["esc_y"] = np.array([int(r[2]) for r in esc])
    stats["esc_fold"] = np.array([int(r[1]) for r in esc])
    return stats


# ---------------------------------------------------------------------------------------------
# the plan: counts, labels, folds (no audio)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["tiny", "demo", "full"])
def test_plan_has_the_published_counts_per_size(size):
    p = synth.plan(size, 0)
    assert (len(p.esc50), len(p.tut_dev), len(p.tut_eval)) == EXPECTED_COUNTS[size]
    assert p.n_files == sum(EXPECTED_COUNTS[size])
    spec = synth.SIZES[size]
    assert (spec.n_esc50, spec.n_tut_dev, spec.n_tut_eval) == EXPECTED_COUNTS[size]


@pytest.mark.parametrize("size", ["tiny", "demo", "full"])
def test_plan_has_every_class_equally_in_every_fold(size):
    p, spec = synth.plan(size, 3), synth.SIZES[size]
    esc = Counter((c.target, c.fold) for c in p.esc50)
    assert set(esc) == {(t, f) for t in range(50) for f in range(1, 6)}
    assert set(esc.values()) == {spec.esc_clips_per_class_per_fold}
    dev = Counter((s.scene, s.fold) for s in p.tut_dev)
    assert set(dev) == {(s, f) for s in TUT2017_SCENES for f in range(1, 5)}
    assert set(dev.values()) == {spec.tut_dev_segments_per_class_per_fold}
    ev = Counter(s.scene for s in p.tut_eval)
    assert set(ev) == set(TUT2017_SCENES) and set(ev.values()) == {spec.tut_eval_segments_per_class}
    assert {s.fold for s in p.tut_eval} == {None}


@pytest.mark.parametrize("size", ["demo", "full"])
def test_plan_cuts_recordings_into_consecutive_segments_of_one_fold_and_scene(size):
    p, spec = synth.plan(size, 1), synth.SIZES[size]
    for split, per_rec in (
        (p.tut_dev, spec.tut_dev_segments_per_recording),
        (p.tut_eval, spec.tut_eval_segments_per_recording),
    ):
        by_rec = defaultdict(list)
        for s in split:
            by_rec[s.recording].append(s)
        for rec, segs in by_rec.items():
            assert re.fullmatch(r"[a-z]\d{3}", rec)
            assert len({s.fold for s in segs}) == 1 and len({s.scene for s in segs}) == 1
            assert sorted((s.start_s, s.end_s) for s in segs) == [
                (10 * i, 10 * i + 10) for i in range(per_rec)
            ]
            assert all(s.filename == f"audio/{rec}_{s.start_s}_{s.end_s}.wav" for s in segs)
    assert not {s.recording for s in p.tut_dev} & {s.recording for s in p.tut_eval}


def test_full_plan_has_multi_segment_recordings_and_multi_take_sources():
    p = synth.plan("full", 0)
    assert len({s.recording for s in p.tut_dev}) == 15 * 4 * 3  # 26 segments each
    assert len({s.recording for s in p.tut_eval}) == 15 * 4  # 27 segments each
    takes = defaultdict(set)
    for c in p.esc50:
        takes[c.src_file].add((c.fold, c.target, c.take))
    assert len(takes) == 1000
    for src, clips in takes.items():  # the takes of one source share class and fold
        assert len({(f, t) for f, t, _ in clips}) == 1 and {k for *_, k in clips} == {"A", "B"}


def test_plan_names_are_unique_and_depend_on_the_seed_but_labels_do_not():
    a, b = synth.plan("full", 0), synth.plan("full", 1)
    assert synth.plan("full", 0) == a
    for p in (a, b):
        for split in (p.esc50, p.tut_dev, p.tut_eval):
            assert len({r.filename for r in split}) == len(split)
    assert {c.filename for c in a.esc50} != {c.filename for c in b.esc50}
    assert Counter((c.fold, c.target) for c in a.esc50) == Counter((c.fold, c.target) for c in b.esc50)


def test_unknown_size_and_bad_seed_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="tiny, demo, full"):
        synth.plan("huge", 0)
    with pytest.raises(ConfigError, match="'huge'.*valid sizes: tiny, demo, full"):
        synth.generate(tmp_path / "x", "huge")
    assert not (tmp_path / "x").exists()
    for seed in (-1, 1.5, "3", True):
        with pytest.raises(ConfigError, match="seed"):
            synth.plan("tiny", seed)
    with pytest.raises(ConfigError, match="esc_takes_per_source"):
        synth.SynthSize(1, 0, 1, 1, 1, 1)


def test_event_classes_are_fixed_by_the_index_and_span_every_family():
    specs = [synth.event_spec(k) for k in range(50)]
    assert Counter(s.family for s in specs) == {f: 10 for f in synth.FAMILIES}
    assert len({(s.family, round(s.base_hz)) for s in specs}) == 50
    assert all(0 < s.duration_s <= synth.MAX_EVENT_S for s in specs)
    with pytest.raises(ConfigError):
        synth.event_spec(50)
    # every scene draws on real ESC-50 categories
    for scene in TUT2017_SCENES:
        assert set(synth.SCENE_SPECS[scene].events) <= set(ESC50_CLASSES)


# ---------------------------------------------------------------------------------------------
# the written layout and metadata formats
# ---------------------------------------------------------------------------------------------


def test_esc50_csv_has_the_published_header_and_rows(tiny):
    rows = lines(tiny / "esc50/meta/esc50.csv")
    assert rows[0] == "filename,fold,target,category,esc10,src_file,take"
    assert len(rows) == 251 and rows[1:] == sorted(rows[1:])
    seen = Counter()
    for row in rows[1:]:
        m = ESC_ROW.match(row)
        assert m, row
        fold, src, take, target = m.group(1, 2, 3, 4)
        assert (m[5], m[6], m[9], m[10]) == (fold, target, src, take), row
        assert m[7] == ESC50_CLASSES[int(target)]
        assert m[8] == str(int(target) in ESC10_TARGETS)
        seen[(int(target), int(fold))] += 1
    assert seen == Counter({(t, f): 1 for t in range(50) for f in range(1, 6)})
    audio = {p.name for p in (tiny / "esc50/audio").iterdir()}
    assert audio == {r.split(",")[0] for r in rows[1:]}


def test_tut_meta_files_have_the_published_rows(tiny):
    recordings = {}
    for folder, n in (("tut2017-dev", 60), ("tut2017-eval", 30)):
        rows = lines(tiny / folder / "meta.txt")
        assert len(rows) == n
        scenes = Counter()
        recs = set()
        for row in rows:
            m = TUT_META_ROW.match(row)
            assert m, row
            rec, start, end, scene, rec_col = m.groups()
            assert rec == rec_col and int(end) - int(start) == 10 and int(start) % 10 == 0
            assert scene in TUT2017_SCENES
            scenes[scene] += 1
            recs.add(rec)
        assert set(scenes) == set(TUT2017_SCENES) and len(set(scenes.values())) == 1
        audio = {f"audio/{p.name}" for p in (tiny / folder / "audio").iterdir()}
        assert audio == {r.split("\t")[0] for r in rows}
        assert not any("/" in p.name for p in (tiny / folder / "audio").iterdir())
        recordings[folder] = recs
    assert "cafe/restaurant" in (tiny / "tut2017-dev/meta.txt").read_text()
    assert not recordings["tut2017-dev"] & recordings["tut2017-eval"]


def test_tut_fold_files_partition_the_development_set_by_recording(tiny):
    setup = tiny / "tut2017-dev/evaluation_setup"
    assert sorted(p.name for p in setup.iterdir()) == sorted(
        f"fold{k}_{kind}.txt" for k in range(1, 5) for kind in ("train", "evaluate", "test")
    )
    meta = {tuple(r.split("\t")[:2]) for r in lines(tiny / "tut2017-dev/meta.txt")}
    rec_of = {r.split("\t")[0]: r.split("\t")[2] for r in lines(tiny / "tut2017-dev/meta.txt")}
    fold_of_rec: dict[str, set[int]] = defaultdict(set)
    evaluated = []
    for k in range(1, 5):
        train = lines(setup / f"fold{k}_train.txt")
        evaluate = lines(setup / f"fold{k}_evaluate.txt")
        test = lines(setup / f"fold{k}_test.txt")
        for row in train + evaluate:
            assert TUT_LABEL_ROW.match(row), row
        assert all(TUT_TEST_ROW.match(row) for row in test)
        train_set = {tuple(r.split("\t")) for r in train}
        eval_set = {tuple(r.split("\t")) for r in evaluate}
        assert len(train_set) == len(train) == 45 and len(eval_set) == len(evaluate) == 15
        assert not train_set & eval_set and train_set | eval_set == meta
        assert test == [r.split("\t")[0] for r in evaluate]
        assert {scene for _, scene in eval_set} == set(TUT2017_SCENES)
        for file, _ in eval_set:
            fold_of_rec[rec_of[file]].add(k)
        evaluated += [file for file, _ in eval_set]
    assert sorted(evaluated) == sorted(f for f, _ in meta)  # every segment evaluated once
    assert all(len(folds) == 1 for folds in fold_of_rec.values())


def test_audio_files_have_the_published_formats(tiny):
    expected = {"esc50": (1, 220500), "tut2017-dev": (2, 441000), "tut2017-eval": (2, 441000)}
    for folder, (channels, frames) in expected.items():
        files = sorted((tiny / folder / "audio").iterdir())
        assert files and all(p.suffix == ".wav" for p in files)
        for path in files:
            info = sf.info(path)
            assert (info.samplerate, info.channels, info.frames) == (44100, channels, frames), path
            assert (info.format, info.subtype) == ("WAV", "PCM_16"), path


def test_levels_keep_headroom_and_are_not_silent(audio_stats):
    peaks = np.array(audio_stats["peak"])
    assert len(peaks) == 340
    assert peaks.max() < 0.9 and peaks.min() > 0.01


# ---------------------------------------------------------------------------------------------
# determinism, order independence, refusing to overwrite
# ---------------------------------------------------------------------------------------------


def test_files_depend_only_on_seed_dataset_and_index(tiny):
    p = synth.plan("tiny", SEED)
    for dataset, index in [("tut2017-eval", 29), ("tut2017-dev", 41), ("esc50", 200), ("esc50", 3)]:
        record = p.files(dataset)[index]
        name = record.filename if dataset != "esc50" else f"audio/{record.filename}"
        written, _ = sf.read(tiny / dataset / name, dtype="float32")
        rendered = synth.render(p, dataset, index)
        assert rendered.shape == written.shape
        assert np.abs(rendered - written).max() <= 0.5 / 32768 + 1e-9  # PCM16 rounding only


def test_same_seed_gives_identical_bytes_and_another_seed_other_audio(tiny, tmp_path):
    again = tmp_path / "again"
    # Junk that an interrupted run or an earlier dataset left in an unfinished folder goes away.
    (again / "esc50/audio").mkdir(parents=True)
    (again / "esc50/audio/.1-5-A-0.wav.partial").write_bytes(b"junk")
    (again / "esc50/audio/9-1-A-0.wav").write_bytes(b"junk")
    summary = synth.generate(again, "tiny", SEED)
    assert summary.n_stale_removed == 1
    first, second = tree(tiny), tree(again)
    assert len(first) == 340 + 1 + 2 + 12  # audio, esc50.csv, two meta.txt, 12 fold files
    assert second == first

    other = synth.plan("tiny", SEED + 1)
    same = synth.plan("tiny", SEED)
    for dataset, index in [("esc50", 0), ("esc50", 177), ("tut2017-dev", 5), ("tut2017-eval", 9)]:
        a, b = synth.render(same, dataset, index), synth.render(other, dataset, index)
        assert a.shape == b.shape and np.abs(a - b).mean() > 1e-4
    assert [s.filename for s in other.tut_dev] != [s.filename for s in same.tut_dev]


def test_refuses_to_overwrite_a_finished_dataset_unless_told(tiny, tmp_path, monkeypatch):
    marker = tiny / "tut2017-eval/meta.txt"
    before = marker.stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match=r"esc50\.csv.*overwrite"):
        synth.generate(tiny, "demo", 0)
    assert marker.stat().st_mtime_ns == before

    # overwrite=True replaces a finished dataset (silent audio keeps this test cheap)
    out = tmp_path / "o"
    monkeypatch.setattr(
        synth.writing,
        "render",
        lambda plan, dataset, index: np.zeros(
            synth.ESC_FRAMES if dataset == "esc50" else (synth.TUT_FRAMES, 2), np.float32
        ),
    )
    synth.generate(out, "tiny", 1)
    with pytest.raises(OutputExistsError):
        synth.generate(out, "tiny", 2)
    summary = synth.generate(out, "tiny", 2, overwrite=True)
    plan1, plan2 = synth.plan("tiny", 1), synth.plan("tiny", 2)
    stale = sum(
        len({r.filename for r in plan1.files(d)} - {r.filename for r in plan2.files(d)})
        for d in synth.DATASETS
    )
    assert summary.n_stale_removed == stale > 0
    assert lines(out / "esc50/meta/esc50.csv")[1:] == [c.csv_row() for c in plan2.esc50]
    assert lines(out / "tut2017-eval/meta.txt") == [s.meta_row() for s in plan2.tut_eval]
    assert len(list((out / "tut2017-dev/audio").iterdir())) == 60


# ---------------------------------------------------------------------------------------------
# the signals: learnable, varied, stereo
# ---------------------------------------------------------------------------------------------


def test_event_classes_are_learnable_from_mean_log_mel(audio_stats):
    x, y, fold = audio_stats["esc_x"], audio_stats["esc_y"], audio_stats["esc_fold"]
    train = fold <= 3
    acc = nearest_centroid_accuracy(x[train], y[train], x[~train], y[~train], 50)
    assert acc > 5 / 50, f"ESC nearest-centroid accuracy {acc:.2f}"


def test_clips_of_one_class_vary(audio_stats):
    x, y = audio_stats["esc_x"], audio_stats["esc_y"]
    within = np.mean([x[y == c].std(axis=0).mean() for c in range(50)])
    assert within > 1.0, f"clips of a class differ by only {within:.2f} dB on average"


def test_scenes_are_learnable_from_development_to_evaluation_set(audio_stats):
    acc = nearest_centroid_accuracy(
        audio_stats["dev_x"], audio_stats["dev_y"], audio_stats["eval_x"], audio_stats["eval_y"], 15
    )
    assert acc > 3 / 15, f"TUT nearest-centroid accuracy {acc:.2f}"


def test_tut_segments_have_a_stereo_image(audio_stats):
    corr = np.array(audio_stats["lr_corr"])
    assert len(corr) == 90 and corr.max() < 0.99  # left and right differ in every segment
    ild = {scene: np.mean(v) for scene, v in audio_stats["ild_db"].items()}
    assert max(ild.values()) - min(ild.values()) > 2.0, ild  # and the image depends on the scene
