"""Model files carry their class names (since predict exists); older ones still load."""

from __future__ import annotations

import json

from raymtl.config import get_preset
from raymtl.data.classes import ESC50_CLASSES, TUT2017_SCENES
from raymtl.models import load_model
from raymtl.run.records import TrialResult
from raymtl.serving.models import load_models
from raymtl.train import trial as T
from raymtl.train.record import save_selected
from raymtl.train.stage import StageConfig, build_network


def test_a_trial_saves_its_class_names_in_the_model_file_and_predict_reads_them(tmp_path):
    preset = get_preset("tiny")
    spec = T.TrialSpec("mtl-ic", 1, 1, "triple")
    stage = StageConfig(spec=spec, preset=preset, n_classes={"asc": 15, "aec": 50}, init={})
    names = {"asc": list(TUT2017_SCENES), "aec": list(ESC50_CLASSES)}
    state = {"best_epoch": {"asc": 1, "aec": 1}, "best_acc": {"asc": 0.5, "aec": 0.25}}
    run = tmp_path / "RUN"
    (run / "trials" / spec.name).mkdir(parents=True)
    for target in ("asc", "aec"):
        weights = build_network(stage, target).state_dict()
        save_selected(str(run), stage, target, weights, state, names)
    _, meta = load_model(run / "trials" / spec.name / "model-asc.pt")
    assert meta["extra"]["class_names"] == names
    assert meta["extra"]["trial"] == spec.name and meta["extra"]["val_accuracy"] == 0.5

    # A RUN whose FEATURES folder is gone still has its class names, from the checkpoint.
    (run / "manifest.json").write_text(
        json.dumps({"format": "raymtl-run", "features": str(tmp_path / "gone"), "preset": preset.to_dict()})
    )
    result = TrialResult(
        trial=spec.name,
        experiment=spec.experiment,
        division=1,
        repeat=1,
        variant="triple",
        preset="tiny",
        targets=("asc", "aec"),
        test_accuracy={"asc": 0.4, "aec": 0.2},
        val_accuracy={"asc": 0.5, "aec": 0.25},
        best_epoch={"asc": 1, "aec": 1},
        epochs={"asc": 6, "aec": 6},
        seed=1,
        stage1={},
        models={},
        n_classes={"asc": 15, "aec": 50},
        seconds=1.0,
        device="CPU",
        finished="",
        raymtl_version="",
    )
    (run / "trials" / spec.name / "result.json").write_text(json.dumps(result.to_dict()))
    models = load_models(str(run), "mtl")
    assert models.class_names_source == "checkpoint" and models.class_names == names
    assert models.scene_members[0].trial == spec.name

    # Without class names in the file (older checkpoints), the published lists are used.
    save_selected(str(run), stage, "asc", build_network(stage, "asc").state_dict(), state)
    _, meta = load_model(run / "trials" / spec.name / "model-asc.pt")
    assert "class_names" not in meta["extra"]
    models = load_models(str(run), "mtl")
    assert models.class_names_source == "published class lists" and models.class_names == names
