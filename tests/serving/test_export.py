"""`raymtl export`: TorchScript and ONNX files that give the in-process scores on the same
patches, with the feature settings and class names beside them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raymtl.cli import main
from raymtl.config import FeatureConfig, Preset
from raymtl.serving.export import ExportedModel, sidecar_path
from raymtl.serving.models import best_member, load_member, load_models
from raymtl.serving.predict import Featurizer
from tests.serving.conftest import TUT_A


@pytest.fixture(scope="module")
def patches(run, tiny_data, esc_fold1_clip) -> np.ndarray:
    """Real patches: the scene images of a TUT clip and the mono image of an ESC clip."""
    fz = Featurizer(FeatureConfig(), ("left", "right", "sum", "diff"))
    (scene,) = fz.patch_sets(fz.load(tiny_data / TUT_A))
    (event,) = fz.patch_sets(fz.load(esc_fold1_clip))
    return np.concatenate([scene.scene, event.events])  # (43, 128, 128)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("task", ["both", "asc"])
def test_exported_model_gives_the_in_process_scores(
    run, patches, tmp_path, capsys, trained_classes, fmt, task
):
    out = tmp_path / f"model-{task}.{'onnx' if fmt == 'onnx' else 'pt'}"
    assert main(["export", str(run), "--format", fmt, "--task", task, "--out", str(out)]) == 0
    assert f"feature settings in {out}.json" in capsys.readouterr().out
    if task == "both":
        (member,) = load_models(str(run), "mtl").scene_members  # the network predict --model mtl uses
        tasks = ["asc", "aec"]
    else:
        member = load_member(best_member(str(run), "asc"), "asc")
        tasks = ["asc"]

    exported = ExportedModel(out)
    got = exported(patches)
    import torch

    with torch.no_grad():
        logits = member.net(torch.from_numpy(patches))
    assert list(got) == tasks
    for t in tasks:
        want = logits[t].softmax(dim=1).numpy()
        assert got[t].shape == (len(patches), {"asc": 15, "aec": 50}[t])
        assert float(np.abs(got[t] - want).max()) < 1e-5
    # A batch of one works too (the batch axis is dynamic).
    one = exported(patches[:1])
    assert float(np.abs(one[tasks[0]] - got[tasks[0]][:1]).max()) < 1e-5

    settings = json.loads(sidecar_path(out).read_text())
    assert settings == exported.embedded, "the settings beside the file are the ones inside it"
    manifest = json.loads((run / "manifest.json").read_text())
    assert settings["features"] == Preset.from_dict(manifest["preset"]).features.__dict__
    assert settings["class_names"] == {t: trained_classes[t] for t in tasks}
    assert settings["source"]["trial"] == member.trial
    assert settings["input"] == {
        "name": "patches",
        "dtype": "float32",
        "shape": ["batch", 128, 128],
        "meaning": "log-mel dB patches (mel bands x frames), as raymtl featurize makes them",
    }
    assert settings["images"]["asc"] == (
        ["left", "right", "sum"] if member.variant == "triple" else ["left", "right", "sum", "diff"]
    )
    if task == "both":
        assert settings["images"]["aec"] == ["mono"]
        assert settings["source"]["kind"] == "mtl-ic"
    else:
        assert settings["source"]["kind"] == "fusion" and member.trial.startswith("finetune-asc-")


def test_export_refuses_to_overwrite_and_names_bad_trials(run, tmp_path, capsys):
    out = tmp_path / "m.pt"
    args = ["export", str(run), "--format", "torchscript", "--task", "aec", "--out", str(out)]
    assert main(args) == 0
    first = out.read_bytes()
    assert main(args) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--trial", "finetune-aec-d1-r1-triple"]) == 0
    assert json.loads(sidecar_path(out).read_text())["source"]["trial"] == "finetune-aec-d1-r1-triple"
    assert out.read_bytes() != first or best_member(str(run), "aec").name == "finetune-aec-d1-r1-triple"
    assert main([*args, "--overwrite", "--trial", "finetune-asc-d1-r1-triple"]) == 2
    assert "is not a fine-tuned aec member" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                str(run),
                "--format",
                "onnx",
                "--task",
                "both",
                "--out",
                str(tmp_path / "no" / "m.onnx"),
            ]
        )
        == 2
    )
