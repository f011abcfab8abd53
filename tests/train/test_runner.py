"""One ensemble member end to end on tiny synthetic features: `raymtl train` for the baseline,
MTL-IC and both fine-tunes; learnability above chance; results on disk; reruns change nothing."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from raymtl.cli import main
from raymtl.errors import UserError
from raymtl.models import load_model
from raymtl.train.experiments import get_experiment
from raymtl.train.runner import run_trials, stage1_models
from raymtl.train.trial import TrialSpec, model_file
from tests.conftest import MEMBER_ARGS as COMMON

CHANCE = {"asc": 1 / 15, "aec": 1 / 50}


@pytest.fixture(scope="module")
def member_run(tiny_run):
    return tiny_run


def _result(run, experiment):
    return json.loads((run / "trials" / f"{experiment}-d1-r1-triple" / "result.json").read_text())


def test_every_experiment_exits_0_and_writes_its_results(member_run):
    run, codes = member_run
    assert codes == {e: 0 for e in codes}
    for experiment in codes:
        trial = run / "trials" / f"{experiment}-d1-r1-triple"
        result = _result(run, experiment)
        assert (
            result["experiment"],
            result["division"],
            result["repeat"],
            result["variant"],
            result["preset"],
        ) == (
            experiment,
            1,
            1,
            "triple",
            "tiny",
        )
        assert set(result["test_accuracy"]) == set(result["targets"])
        assert all(0 <= a <= 1 for a in result["test_accuracy"].values())
        table = pq.read_table(trial / "scores.parquet")
        assert {"trial", "task", "dataset", "clip", "image", "patch_index", "label", "scores"} <= set(
            table.column_names
        )
        epochs = [json.loads(line)["epoch"] for line in (trial / "metrics.jsonl").read_text().splitlines()]
        assert epochs == list(range(len(epochs))) and len(epochs) == max(result["epochs"].values())


def test_scores_cover_exactly_the_test_split(member_run, tiny_features):
    run, _ = member_run
    manifest = json.loads((tiny_features / "manifest.json").read_text())
    table = pq.read_table(run / "trials" / "mtl-ic-d1-r1-triple" / "scores.parquet").to_pandas()
    asc, aec = table[table.task == "asc"], table[table.task == "aec"]
    n_eval = manifest["clips"]["tut2017"]["eval"]["none"]
    assert asc["clip"].nunique() == n_eval and len(asc) == n_eval * 3 * 10  # triple: 3 images x 10 patches
    assert set(asc.image) == {"left", "right", "sum"}
    assert (
        aec["clip"].nunique() == manifest["clips"]["esc50"]["dev"]["1"]
        and len(aec) == 3 * aec["clip"].nunique()
    )
    assert all(c.startswith("1-") for c in aec["clip"])  # ESC test = fold 1 in division 1
    assert len(asc.scores.iloc[0]) == 15 and len(aec.scores.iloc[0]) == 50
    np.testing.assert_allclose(np.stack(asc.scores).sum(axis=1), 1.0, atol=1e-4)


def test_models_learn_well_above_chance(member_run):
    run, _ = member_run
    accuracy = {e: _result(run, e)["test_accuracy"] for e in ("baseline-asc", "baseline-aec", "mtl-ic")}
    accuracy.update({e: _result(run, e)["test_accuracy"] for e in ("finetune-asc", "finetune-aec")})
    for experiment, by_task in accuracy.items():
        for task, acc in by_task.items():
            assert acc >= 3 * CHANCE[task], f"{experiment} {task}: {acc:.3f} < 3x chance"


def test_finetune_keeps_stage1_layers_and_trains_new_ones(member_run):
    run, _ = member_run
    stage1, meta1 = load_model(run / "trials" / "mtl-ic-d1-r1-triple" / "model-asc.pt")
    fused, meta2 = load_model(run / "trials" / "finetune-asc-d1-r1-triple" / "model-asc.pt")
    assert (meta1["kind"], meta2["kind"]) == ("mtl-ic", "fusion")
    s1, s2 = stage1.state_dict(), fused.state_dict()
    shared = [k for k in s2 if k in s1 and s1[k].shape == s2[k].shape]
    assert any("trunk." in k for k in shared) and any("layer15" in k for k in shared)
    for k in shared:
        assert torch.equal(s1[k], s2[k]), f"{k} changed during fine-tuning"
    assert meta1["config"].alpha("asc") == 0.7


def test_rerunning_a_finished_trial_changes_nothing(member_run, tiny_features, capsys):
    run, _ = member_run

    def snapshot():
        return {
            p.relative_to(run): hashlib.sha256(p.read_bytes()).hexdigest() + str(p.stat().st_mtime_ns)
            for p in run.rglob("*")
            if p.is_file()
        }

    before = snapshot()
    code = main(
        [
            "train",
            "--experiment",
            "finetune-asc",
            *COMMON,
            "--features",
            str(tiny_features),
            "--out",
            str(run),
        ]
    )
    assert code == 0 and "already done" in capsys.readouterr().out
    assert snapshot() == before


def test_finetune_without_its_stage1_is_a_clear_error(tiny_features, tmp_path, capsys):
    args = ["train", "--experiment", "finetune-aec", *COMMON, "--features", str(tiny_features)]
    assert main(args + ["--out", str(tmp_path / "R")]) == 2
    err = capsys.readouterr().err
    assert "mtl-ic trial mtl-ic-d1-r1-triple" in err and "--from" in err and "Traceback" not in err
    assert main(args + ["--out", str(tmp_path / "R"), "--from", str(tmp_path / "nope.pt")]) == 2
    assert "no such model file" in capsys.readouterr().err
    assert TrialSpec("finetune-aec", 1, 1, "triple").name == "finetune-aec-d1-r1-triple"


def test_a_finetune_chained_after_its_stage1_in_one_train_run_needs_no_finished_stage1(tmp_path):
    run, spec = str(tmp_path / "R"), TrialSpec("finetune-asc", 2, 1, "quadruple")
    exp = get_experiment("finetune-asc")
    with pytest.raises(UserError, match="mtl-ic-d2-r1-quadruple, which is not finished"):
        stage1_models(run, spec, exp, None)
    chained = stage1_models(run, spec, exp, None, chained=("mtl-ic-d2-r1-quadruple",))
    assert chained == {"asc": model_file(run, spec.with_experiment("mtl-ic"), "asc")}


def test_one_train_run_trains_the_trials_of_one_member(tmp_path):
    features, run = str(tmp_path / "FEATURES"), str(tmp_path / "R")  # refused before either is read
    mixed = [TrialSpec("mtl-ic", 1, 1, "triple"), TrialSpec("finetune-asc", 2, 1, "triple")]
    with pytest.raises(ValueError, match="one division, repeat and variant"):
        run_trials(mixed, features, run, "tiny", name="m")
    chain = [TrialSpec("mtl-ic", 1, 1, "triple"), TrialSpec("finetune-asc", 1, 1, "triple")]
    with pytest.raises(ValueError, match="needs a name"):
        run_trials(chain, features, run, "tiny")
