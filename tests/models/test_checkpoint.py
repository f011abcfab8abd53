"""Checkpoints rebuild the network from the file alone."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch

from raymtl.config import ModelConfig
from raymtl.errors import InputFileError
from raymtl.models import FusionNet, build_model, load_model, save_model

SMALL = ModelConfig(width=1 / 16, fusion_units=16)
CLASSES = {"asc": 15, "aec": 50}


def _patches(batch=2):
    return torch.randn(batch, 128, 128, generator=torch.Generator().manual_seed(0)) * 20 - 40


def _moved(model):
    """Change BatchNorm running stats, so the round trip has to carry buffers too."""
    with torch.no_grad():
        model.train()(_patches(batch=4))
    return model.eval()


@pytest.mark.parametrize(
    "kind, task", [("baseline", "aec"), ("mtl", None), ("mtl-ic", "asc"), ("fusion", "aec")]
)
def test_round_trip_gives_identical_outputs(tmp_path, kind, task):
    torch.manual_seed(0)
    model = _moved(build_model(kind, SMALL, CLASSES, task))
    path = tmp_path / "model.pt"
    save_model(path, model, kind=kind, task=task, cfg=SMALL, n_classes=CLASSES, extra={"epoch": 3})

    loaded, meta = load_model(path)

    assert type(loaded) is type(model) and not loaded.training
    assert meta == {
        "kind": kind,
        "task": task,
        "n_classes": CLASSES,
        "config": SMALL,
        "extra": {"epoch": 3},
    }
    x = _patches()
    with torch.no_grad():
        expected, got = model(x), loaded(x)
    assert set(got) == set(expected)
    for t in expected:
        assert torch.equal(got[t], expected[t])
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def test_checkpoint_is_plain_data(tmp_path):
    model = build_model("mtl-ic", SMALL, CLASSES, "aec")
    path = tmp_path / "m.pt"
    extra = {"epoch": 1, "metrics": {"acc": 0.5, "history": [0.1, 0.2]}, "note": None}
    save_model(path, model, kind="mtl-ic", task="aec", cfg=SMALL, n_classes=CLASSES, extra=extra)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "raymtl-model/1"
    assert raw["model_config"] == dataclasses.asdict(SMALL)
    assert raw["kind"] == "mtl-ic" and raw["task"] == "aec" and raw["n_classes"] == CLASSES
    assert type(raw["state_dict"]) is dict and raw["extra"] == extra


def test_round_trip_through_a_file_object():
    model = build_model("baseline", SMALL, CLASSES, "asc").eval()
    buffer = io.BytesIO()
    save_model(buffer, model, kind="baseline", task="asc", cfg=SMALL, n_classes=CLASSES)
    buffer.seek(0)
    loaded, meta = load_model(buffer)
    assert meta["kind"] == "baseline" and meta["extra"] == {}
    x = _patches()
    with torch.no_grad():
        assert torch.equal(loaded(x)["asc"], model(x)["asc"])


def test_fusion_checkpoint_comes_back_frozen(tmp_path):
    mtl = _moved(build_model("mtl-ic", SMALL, CLASSES, "asc"))
    fusion = build_model("fusion", SMALL, CLASSES, "asc")
    fusion.load_stage1(mtl.state_dict())
    save_model(tmp_path / "f.pt", fusion, kind="fusion", task="asc", cfg=SMALL, n_classes=CLASSES)
    loaded, _ = load_model(tmp_path / "f.pt")
    assert isinstance(loaded, FusionNet) and int(loaded.frozen_through) == 15
    assert {n for n, p in loaded.named_parameters() if p.requires_grad} == {
        n for n, p in fusion.named_parameters() if p.requires_grad
    }
    assert not loaded.train().features.trunk.layer2.bn.training


def test_overwrite_replaces_the_file(tmp_path):
    path = tmp_path / "m.pt"
    a = build_model("baseline", SMALL, CLASSES, "asc")
    b = build_model("baseline", SMALL, CLASSES, "asc")
    save_model(path, a, kind="baseline", task="asc", cfg=SMALL, n_classes=CLASSES)
    save_model(path, b, kind="baseline", task="asc", cfg=SMALL, n_classes=CLASSES)
    loaded, _ = load_model(path)
    w = "trunk.layer1.conv.weight"
    assert torch.equal(loaded.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(loaded.state_dict()[w], a.state_dict()[w])


@pytest.mark.parametrize(
    "kind, task, n_classes, cfg",
    [
        ("mtl-ic", "asc", CLASSES, SMALL),  # a baseline is not an mtl-ic model
        ("baseline", "aec", CLASSES, SMALL),  # other task: other P
        ("baseline", "asc", CLASSES, ModelConfig(width=1 / 8)),  # other width
    ],
)
def test_save_refuses_metadata_that_would_not_rebuild_the_model(tmp_path, kind, task, n_classes, cfg):
    model = build_model("baseline", SMALL, CLASSES, "asc")
    with pytest.raises(ValueError, match="do not describe"):
        save_model(tmp_path / "m.pt", model, kind=kind, task=task, cfg=cfg, n_classes=n_classes)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_an_mtl_ic_model_saved_under_the_other_tasks_alpha(tmp_path):
    model = build_model("mtl-ic", SMALL, CLASSES, "asc")  # alpha 0.7
    with pytest.raises(ValueError, match="do not describe"):
        save_model(tmp_path / "m.pt", model, kind="mtl-ic", task="aec", cfg=SMALL, n_classes=CLASSES)


@pytest.mark.parametrize("extra", [{"x": np.float64(1.0)}, {"x": {1, 2}}, {"x": [object()]}])
def test_save_refuses_extra_that_weights_only_cannot_load(tmp_path, extra):
    model = build_model("baseline", SMALL, CLASSES, "asc")
    with pytest.raises(TypeError, match="extra"):
        save_model(
            tmp_path / "m.pt",
            model,
            kind="baseline",
            task="asc",
            cfg=SMALL,
            n_classes=CLASSES,
            extra=extra,
        )
    assert list(tmp_path.iterdir()) == []


def test_load_rejects_files_that_are_not_checkpoints(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputFileError, match="garbage.pt"):
        load_model(garbage)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(InputFileError, match="not a raymtl model checkpoint"):
        load_model(other)
    with pytest.raises(InputFileError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")


def test_load_rejects_a_checkpoint_whose_weights_do_not_fit(tmp_path):
    model = build_model("baseline", SMALL, CLASSES, "asc")
    path = tmp_path / "m.pt"
    save_model(path, model, kind="baseline", task="asc", cfg=SMALL, n_classes=CLASSES)
    raw = torch.load(path, weights_only=True)
    raw["model_config"]["width"] = 1 / 8
    torch.save(raw, path)
    with pytest.raises(InputFileError, match="cannot rebuild"):
        load_model(path)
