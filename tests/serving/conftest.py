"""Fixtures of the predict / serve / export tests: the finished tiny ensemble RUN (session
fixture `tiny_ensemble`), audio files made from the tiny synthetic data, and the class lists the
RUN was trained with (its FEATURES manifest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

# TUT evaluation segments (10 s, stereo) and ESC-50 clips (5 s, mono) of the tiny synthetic data.
TUT_A = "tut2017-eval/audio/a001_0_10.wav"
TUT_B = "tut2017-eval/audio/a001_10_20.wav"
SR = 44100


@pytest.fixture(scope="session")
def run(tiny_ensemble) -> Path:
    path, code, stdout, reduce_code, _ = tiny_ensemble
    assert code == 0 and reduce_code == 0, stdout
    return Path(path)


@pytest.fixture(scope="session")
def trained_classes(run) -> dict[str, list[str]]:
    """{"asc": the 15 scenes, "aec": the 50 events} from the FEATURES folder the RUN was trained on."""
    manifest = json.loads((run / "manifest.json").read_text())
    classes = json.loads((Path(manifest["features"]) / "manifest.json").read_text())["classes"]
    return {"asc": classes["tut2017"], "aec": classes["esc50"]}


@pytest.fixture(scope="session")
def esc_fold1_clip(tiny_data) -> Path:
    """An ESC-50 clip of fold 1: in the test split of division 1."""
    import csv

    with open(tiny_data / "esc50" / "meta" / "esc50.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["fold"] == "1")
    return tiny_data / "esc50" / "audio" / row["filename"]


def write(path: Path, samples: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    sf.write(str(path), samples, sr, subtype=subtype)
    return path


def read(path: Path) -> np.ndarray:
    x, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return x


def assert_same_answer(got, want, where: str = "record") -> None:
    """Equal answers: every label, index, vote and count exactly; scores to 2e-6 (a network's
    float sums may differ in the last bits with the batch it runs in, or its thread count)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(
            want
        ), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            if k == "score":
                assert abs(got[k] - want[k]) <= 2e-6, f"{where}.{k}: {got[k]} != {want[k]}"
            else:
                assert_same_answer(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_answer(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
