"""`raymtl predict` on the finished tiny ensemble: answers, model choice, fidelity to training's
features and to the reduce step, lengths, channels, rates and unusable files."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from raymtl.cli import main
from raymtl.data.classes import ESC50_CLASSES, TUT2017_SCENES
from raymtl.data.features import VARIANT_IMAGES
from raymtl.serving.models import load_models
from raymtl.serving.predict import Predictor
from raymtl.train.scoring import scores_matrix
from tests.conftest import REAL, require_shared
from tests.serving.conftest import SR, TUT_A, TUT_B, assert_same_answer, read, write


@pytest.fixture(scope="module")
def mtl(run) -> Predictor:
    return Predictor(load_models(str(run), "mtl"))


@pytest.fixture(scope="module")
def ensemble(run) -> Predictor:
    return Predictor(load_models(str(run), "ensemble"))


def _answers(record: dict) -> dict:
    """A record without what names the file: what two files with the same audio must share."""
    return {k: v for k, v in record.items() if k not in ("file", "channels", "sample_rate_hz", "notes")}


def _results(run: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (run / "trials").glob("*/result.json")}


def _run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------- the must-show


def test_predict_json_answers_each_file_with_a_scene_of_15_and_events_of_50(
    run, tiny_data, esc_fold1_clip, tmp_path, capsys, trained_classes
):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file at all" * 100)
    a, b = tiny_data / TUT_A, esc_fold1_clip
    code, out, err = _run_cli(capsys, "predict", str(run), str(a), str(garbage), str(b), "--format", "json")
    assert code == 2, "a file that could not be used makes the exit code 2"
    assert "1 of 3 file(s) could not be used" in err
    doc = json.loads(out)
    assert doc["format"] == "raymtl-predict/1" and doc["top_k"] == 3
    assert [r["file"] for r in doc["files"]] == [str(a), str(garbage), str(b)]
    assert set(trained_classes["asc"]) == set(TUT2017_SCENES) and len(trained_classes["asc"]) == 15
    assert set(trained_classes["aec"]) == set(ESC50_CLASSES) and len(trained_classes["aec"]) == 50
    for r in (doc["files"][0], doc["files"][2]):
        assert r["ok"] is True and r["error"] is None
        assert r["scene"]["label"] in trained_classes["asc"]
        assert trained_classes["asc"][r["scene"]["index"]] == r["scene"]["label"]
        assert 0 < r["scene"]["score"] <= 1
        events = r["events"]
        assert len(events) == 3 and len({e["label"] for e in events}) == 3
        assert all(e["label"] in trained_classes["aec"] and 0 <= e["score"] <= 1 for e in events)
        assert [e["votes"] for e in events] == sorted((e["votes"] for e in events), reverse=True)
        assert sum(e["votes"] for e in events) <= r["event_patches"]
        assert r["segments"] == [] and r["padded"] is False
    assert doc["files"][0]["duration_s"] == 10.0 and doc["files"][0]["channels"] == 2
    assert doc["files"][2]["duration_s"] == 5.0 and doc["files"][2]["channels"] == 1
    assert doc["files"][2]["event_patches"] == 3, "a 5 s clip: a vote over its 3 patches"
    bad = doc["files"][1]
    assert bad["ok"] is False and bad["scene"] is None and bad["events"] is None
    assert bad["error"].startswith("corrupt or unreadable audio")

    code, out, _ = _run_cli(capsys, "predict", str(run), str(a), "--format", "json")
    assert code == 0 and json.loads(out)["files"][0]["ok"]


def test_mtl_uses_one_network_the_best_validating_asc_target_mtl_ic_model(run, mtl):
    info = mtl.models.describe()
    assert info["kind"] == "mtl"
    assert info["scene_models"] == info["event_models"] and len(info["scene_models"]) == 1
    chosen = info["scene_models"][0]
    results = {n: r for n, r in _results(run).items() if n.startswith("mtl-ic-")}
    best = max(r["val_accuracy"]["asc"] for r in results.values())
    tied = sorted(
        (r["division"], r["repeat"], ["triple", "quadruple"].index(r["variant"]), n)
        for n, r in results.items()
        if r["val_accuracy"]["asc"] == best
    )
    assert chosen["trial"] == tied[0][-1]
    assert chosen["file"] == f"trials/{chosen['trial']}/model-asc.pt"
    assert chosen["kind"] == "mtl-ic" and chosen["target"] == "asc"
    assert info["images"] == {"scene": list(VARIANT_IMAGES[chosen["variant"]]), "events": ["mono"]}


def test_ensemble_uses_the_members_reduce_fused(run, ensemble):
    summary = json.loads((run / "ensemble" / "summary.json").read_text())
    info = ensemble.models.describe()
    assert [m["trial"] for m in info["scene_models"]] == summary["tasks"]["asc"]["members"]
    assert [m["trial"] for m in info["event_models"]] == summary["tasks"]["aec"]["members"]
    assert info["images"]["scene"] == ["left", "right", "sum", "diff"]


# ---------------------------------------------------------------- fidelity


def test_ensemble_scene_votes_equal_the_reduce_steps_predictions(run, tiny_data, ensemble):
    """TUT's test set is scored by every member, so reduce's votes for a TUT evaluation clip are
    exactly what predict computes from the audio file."""
    pred = pq.read_table(run / "ensemble" / "predictions.parquet").to_pylist()
    by_clip = {r["clip"]: r for r in pred if r["task"] == "asc"}
    names = ensemble.models.class_names["asc"]
    for clip in (TUT_A, TUT_B):
        record = ensemble.predict_file(tiny_data / clip)
        ref = by_clip[clip.removeprefix("tut2017-eval/")]
        votes, summed = np.array(ref["votes"]), np.array(ref["summed_scores"])
        assert record["scene"]["label"] == names[ref["prediction"]]
        assert record["scene"]["votes"] == votes[ref["prediction"]]
        assert record["scene"]["patches"] == votes.sum() == 40
        assert record["scene"]["score"] == pytest.approx(summed[ref["prediction"]] / summed.sum(), abs=2e-6)


def _stored(run: Path, trial: str, task: str, clip: str):
    t = pq.read_table(run / "trials" / trial / "scores.parquet")
    t = t.filter(pc.and_(pc.equal(t["task"], task), pc.equal(t["clip"], clip)))
    scores = scores_matrix(t)
    return {
        (im, int(i)): scores[k]
        for k, (im, i) in enumerate(zip(t["image"].to_pylist(), t["patch_index"].to_pylist()))
    }


def test_patch_scores_equal_the_scores_training_stored_for_the_same_clips(run, tiny_data, esc_fold1_clip):
    """Same files, same network: predict's features are featurize's, so every patch's scores are
    those the trial stored for its test split (scene: a TUT eval clip; events: an ESC fold-1 clip
    with the AEC-target network of division 1)."""
    trial = "mtl-ic-d1-r1-triple"
    for target in ("asc", "aec"):
        p = Predictor(load_models(str(run), "mtl", mtl_target=target, trial=trial))
        fz = p.featurizer
        if target == "asc":
            rec = fz.load(tiny_data / TUT_A)
            (ps,) = fz.patch_sets(rec)
            (sc,) = p.models.score([ps])
            mine = {}
            for im, s in zip(ps.scene_image, sc.scene):
                mine[(str(im), sum(k[0] == im for k in mine))] = s
            ref = _stored(run, trial, "asc", TUT_A.removeprefix("tut2017-eval/"))
        else:
            rec = fz.load(esc_fold1_clip)
            (ps,) = fz.patch_sets(rec)
            (sc,) = p.models.score([ps])
            mine = {("mono", i): s for i, s in enumerate(sc.events)}
            ref = _stored(run, trial, "aec", esc_fold1_clip.name)
        assert sorted(mine) == sorted(ref) and len(ref) in (30, 3)
        assert max(float(np.abs(mine[k] - ref[k]).max()) for k in ref) < 1e-5


# ---------------------------------------------------------------- channels, rates, lengths


def test_mono_audio_gives_the_same_image_for_left_and_right(tiny_data, tmp_path, mtl):
    left = read(tiny_data / TUT_A)[:, :1]
    mono = mtl.predict_file(write(tmp_path / "mono.wav", left))
    stereo = mtl.predict_file(write(tmp_path / "stereo.wav", np.repeat(left, 2, axis=1)))
    assert mono["channels"] == 1 and stereo["channels"] == 2
    assert_same_answer(_answers(mono), _answers(stereo))
    assert mono["scene"]["patches"] == 10 * len(mtl.models.scene_images)
    assert mono["event_patches"] == 10


def test_long_audio_gets_a_timeline_of_10_s_segments_and_a_whole_file_answer(tiny_data, tmp_path, mtl):
    a, b = read(tiny_data / TUT_A), read(tiny_data / TUT_B)
    tail = a[: int(1.5 * SR)]
    long = mtl.predict_file(write(tmp_path / "long.wav", np.concatenate([a, b, tail])))
    alone = [mtl.predict_file(tiny_data / c) for c in (TUT_A, TUT_B)]
    alone.append(mtl.predict_file(write(tmp_path / "tail.wav", tail)))
    assert long["duration_s"] == 21.5
    assert [(s["index"], s["start_s"], s["end_s"], s["padded"]) for s in long["segments"]] == [
        (0, 0.0, 10.0, False),
        (1, 10.0, 20.0, False),
        (2, 20.0, 21.5, True),
    ]
    for seg, ref in zip(long["segments"], alone):
        # Each segment is featurized as a file of its own: the same answer as that file's.
        keys = ("scene", "events", "event_patches", "padded")
        assert_same_answer({k: seg[k] for k in keys}, {k: ref[k] for k in keys}, f"segment {seg['index']}")
    n_images = len(mtl.models.scene_images)
    assert long["scene"]["patches"] == (10 + 10 + 1) * n_images
    assert long["event_patches"] == 21
    assert long["padded"] is True
    assert any("last segment" in n and "zero-padded" in n for n in long["notes"])
    assert long["scene"]["votes"] <= sum(s["scene"]["votes"] for s in long["segments"])


def test_short_audio_is_padded_to_one_patch_and_flagged(tiny_data, tmp_path, mtl):
    short = mtl.predict_file(write(tmp_path / "short.wav", read(tiny_data / TUT_A)[:SR]))
    assert short["ok"] and short["padded"] is True and short["segments"] == []
    assert short["duration_s"] == 1.0
    assert short["scene"]["patches"] == len(mtl.models.scene_images) and short["event_patches"] == 1
    assert short["notes"] == ["the audio is shorter than one patch (2.95 s): zero-padded"]


def test_audio_within_the_10_s_tolerance_is_one_segment_cut_to_10_s(tiny_data, tmp_path, mtl):
    a = read(tiny_data / TUT_A)
    longer = mtl.predict_file(write(tmp_path / "a+100.wav", np.concatenate([a, a[:100]])))
    assert longer["segments"] == []
    assert_same_answer(
        _answers(longer),
        {**_answers(mtl.predict_file(tiny_data / TUT_A)), "duration_s": longer["duration_s"]},
    )


def test_another_sample_rate_is_resampled_and_noted(mtl):
    park = require_shared(REAL / "tau-urban-2018-samples" / "audio" / "park.wav")  # 48 kHz, 24 bit, stereo
    r = mtl.predict_file(park)
    assert r["ok"] and r["sample_rate_hz"] == 48000 and r["channels"] == 2 and r["duration_s"] == 10.0
    assert r["notes"] == ["resampled from 48000 Hz to 44100 Hz"]
    assert r["segments"] == [] and r["scene"]["patches"] == 10 * len(mtl.models.scene_images)


# ---------------------------------------------------------------- unusable input


def test_unusable_files_are_reported_one_by_one_and_the_rest_answered(run, tiny_data, tmp_path, capsys):
    good = tiny_data / TUT_A
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is text, not audio\n" * 50)
    three = write(tmp_path / "three.wav", np.zeros((SR, 3), np.float32))
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:200_000])
    missing = tmp_path / "missing.wav"
    files = [empty, good, text, three, truncated, missing]
    code, out, err = _run_cli(capsys, "predict", str(run), *map(str, files), "--format", "json")
    assert code == 2 and "5 of 6 file(s) could not be used" in err
    records = {Path(r["file"]).name: r for r in json.loads(out)["files"]}
    assert [r["ok"] for r in records.values()] == [False, True, False, False, False, False]
    assert records["empty.wav"]["error"] == "empty file (0 bytes)"
    assert records["notes.wav"]["error"].startswith("corrupt or unreadable audio")
    assert records["three.wav"]["error"] == "3 channels; predict takes mono or stereo audio"
    assert records["truncated.wav"]["error"].startswith("truncated: the header says 441000 frames")
    assert records["missing.wav"]["error"] == "missing audio file"


def test_bad_arguments_exit_2_with_a_message(run, tiny_data, tmp_path, capsys):
    a = str(tiny_data / TUT_A)
    code, _, err = _run_cli(capsys, "predict", str(run), a, "--top-k", "0")
    assert code == 2 and "--top-k must be at least 1" in err
    code, _, err = _run_cli(capsys, "predict", str(tmp_path), a)
    assert code == 2 and "not a RUN folder" in err
    code, _, err = _run_cli(capsys, "predict", str(run), a, "--trial", "mtl-ic-d9-r9-triple")
    assert code == 2 and "no finished trial 'mtl-ic-d9-r9-triple'" in err
    code, _, err = _run_cli(
        capsys, "predict", str(run), a, "--model", "ensemble", "--trial", "mtl-ic-d1-r1-triple"
    )
    assert code == 2 and "--trial" in err
    with pytest.raises(SystemExit) as e:
        main(["predict", str(run), a, "--model", "baseline"])
    assert e.value.code == 2


# ---------------------------------------------------------------- formats


def test_csv_and_table_formats(run, tiny_data, tmp_path, capsys):
    garbage = tmp_path / "x.flac"
    garbage.write_bytes(b"\x00" * 1000)
    esc = sorted((tiny_data / "esc50" / "audio").glob("*.wav"))[0]
    code, out, _ = _run_cli(
        capsys, "predict", str(run), str(esc), str(garbage), "--format", "csv", "--top-k", "2"
    )
    assert code == 2
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == [
        "file",
        "ok",
        "error",
        "part",
        "start_s",
        "end_s",
        "task",
        "rank",
        "label",
        "score",
        "votes",
        "padded",
    ]
    assert [(r["part"], r["task"], r["rank"]) for r in rows[:3]] == [
        ("all", "scene", "1"),
        ("all", "event", "1"),
        ("all", "event", "2"),
    ]
    assert rows[0]["label"] in TUT2017_SCENES and rows[1]["label"] in ESC50_CLASSES
    assert rows[3]["file"] == str(garbage) and rows[3]["ok"] == "false" and rows[3]["error"]
    assert len(rows) == 4

    code, out, _ = _run_cli(capsys, "predict", str(run), str(esc), "--top-k", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("model: mtl (1 network file(s) from mtl-ic-")
    assert lines[1] == f"{esc}: 5.00 s, mono, 44100 Hz"
    assert lines[2].split()[0] == "scene" and lines[2].split()[1] in TUT2017_SCENES
    assert lines[3].startswith("  events  ") and lines[3].count(",") == 1


# ---------------------------------------------------------------- class names


def test_class_names_come_from_the_checkpoint_then_features_then_published_lists(
    run, tiny_data, tmp_path, trained_classes
):
    """A RUN works without its FEATURES folder; a checkpoint's own class names win."""
    from raymtl.models import load_model, save_model

    def resave(path, class_names):
        """The model file as an older version wrote it (None: no class names) or with these."""
        net, meta = load_model(path)
        extra = {k: v for k, v in meta["extra"].items() if k != "class_names"}
        if class_names is not None:
            extra["class_names"] = class_names
        cfg, kind, task, n_classes = meta["config"], meta["kind"], meta["task"], meta["n_classes"]
        save_model(path, net, kind=kind, task=task, cfg=cfg, n_classes=n_classes, extra=extra)

    copy = tmp_path / "RUN"
    manifest = json.loads((run / "manifest.json").read_text())
    copy.mkdir()
    for trial in (run / "trials").glob("mtl-ic-*"):
        skip = shutil.ignore_patterns("*.parquet", "*.jsonl")
        shutil.copytree(trial, copy / "trials" / trial.name, ignore=skip)
    for model in (copy / "trials").glob("*/model-*.pt"):
        resave(model, None)

    # Older model files: the FEATURES folder the RUN names ...
    (copy / "manifest.json").write_text(json.dumps(manifest))
    models = load_models(str(copy), "mtl")
    assert models.class_names_source == f"features manifest {manifest['features']}"
    assert models.class_names == trained_classes
    # ... and without it, the published lists (the counts are theirs).
    (copy / "manifest.json").write_text(
        json.dumps({**manifest, "features": str(tmp_path / "no-such-features")})
    )
    models = load_models(str(copy), "mtl")
    assert models.class_names_source == "published class lists"
    assert models.class_names == trained_classes

    names = {"asc": [f"scene-{i}" for i in range(15)], "aec": [f"event-{i}" for i in range(50)]}
    resave(copy / "trials" / models.scene_members[0].trial / "model-asc.pt", names)
    predictor = Predictor(load_models(str(copy), "mtl"))
    assert predictor.models.class_names_source == "checkpoint"
    record = predictor.predict_file(tiny_data / TUT_A)
    assert record["scene"]["label"] == f"scene-{record['scene']['index']}"
    assert all(e["label"] == f"event-{e['index']}" for e in record["events"])
