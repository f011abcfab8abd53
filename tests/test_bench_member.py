"""The full-size member benchmark's time split (benchmarks/bench_member.py), on hand-made trial
records: its parts add up to the trial's own time, and a fine-tune's one pass of its frozen
layers counts as data, not as (negative) training."""

from __future__ import annotations

import json

import pytest

from benchmarks.bench_member import stage_split


def _trial(tmp_path, metrics: list[dict], seconds: float):
    trial = tmp_path / "trial"
    trial.mkdir()
    (trial / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (trial / "result.json").write_text(json.dumps({"seconds": seconds, "test_accuracy": {"asc": 0.5}}))
    return trial


def test_a_streamed_stage_splits_into_data_training_validation_and_scoring(tmp_path):
    metrics = [
        {"epoch": 0, "patches": 100, "seconds": 10.0, "data_s": 2.0, "validate_s": 3.0},
        {"epoch": 1, "patches": 100, "seconds": 8.0, "data_s": 1.0, "validate_s": 3.0},
    ]
    split = stage_split(_trial(tmp_path, metrics, seconds=30.0))
    assert split == {
        "patches": 200,
        "data_wait_s": 3.0,
        "precompute_s": 0.0,
        "train_s": 15.0,
        "validate_s": 6.0,
        "score_s": 6.0,
        "test_accuracy": {"asc": 0.5},
    }


def test_a_fine_tunes_frozen_pass_is_data_before_its_first_epoch(tmp_path):
    # Epoch 0's data_s holds the 9 s pass over layers 1-15, which its `seconds` do not.
    metrics = [
        {"epoch": 0, "patches": 50, "seconds": 0.5, "data_s": 9.1, "precompute_s": 9.0, "validate_s": 0.2},
        {"epoch": 1, "patches": 50, "seconds": 0.5, "data_s": 0.1, "validate_s": 0.2},
    ]
    split = stage_split(_trial(tmp_path, metrics, seconds=12.0))
    assert split["data_wait_s"] == pytest.approx(9.2) and split["precompute_s"] == 9.0
    assert split["train_s"] == pytest.approx(0.8)
    assert split["score_s"] == pytest.approx(12.0 - 1.0 - 0.4 - 9.0)
    parts = ("data_wait_s", "train_s", "validate_s", "score_s")
    assert sum(split[k] for k in parts) == pytest.approx(12.0)
