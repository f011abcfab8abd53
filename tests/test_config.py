"""Presets: the named ones, preset files, and errors for bad settings."""

from __future__ import annotations

import dataclasses
import json

import pytest

from raymtl.config import PRESETS, Preset, get_preset
from raymtl.errors import ConfigError


def test_named_presets_change_size_never_the_method():
    paper = PRESETS["paper"]
    for name in ("tiny", "demo"):
        p = PRESETS[name]
        assert p.features == paper.features
        assert (p.model.alpha_asc, p.model.alpha_aec, p.model.freeze_through) == (0.7, 0.6, 15)


def test_a_preset_file_round_trips(tmp_path):
    mine = dataclasses.replace(
        PRESETS["tiny"], name="mine", train=dataclasses.replace(PRESETS["tiny"].train, epochs_train_asc=2)
    )
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(mine.to_dict()))
    assert get_preset(str(path)) == mine


def test_a_partial_preset_file_keeps_the_papers_other_settings(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"name": "short", "train": {"epochs_train_asc": 3}}))
    p = get_preset(str(path))
    assert p.train.epochs_train_asc == 3 and p.train.epochs_train_aec == 500 and p.model == Preset("x").model


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('["a"]', "string 'name'"),
        ('{"name": "tiny"}', "is a built-in preset"),
        ('{"name": "x", "train": {"epochs": 3}}', "unknown train settings: ['epochs']"),
        ('{"name": "x", "train": {"lr": -1}}', "train.lr must be positive"),
        ('{"name": "x", "optim": {}}', "unknown preset keys: ['optim']"),
    ],
)
def test_bad_preset_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        get_preset(str(path))


def test_unknown_names_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'huge'; valid: paper, tiny, demo"):
        get_preset("huge")
    with pytest.raises(ConfigError, match="does not exist"):
        get_preset(str(tmp_path / "nope.json"))
