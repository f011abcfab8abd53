"""`raymtl study` on local Ray: every experiment of Table I for both tasks at the tests' grid
preset on divisions 1,2 and one repeat (the `tiny_study` fixture), in dependency order, each
once; a rerun trains nothing; the ensemble on the same RUN trains only what the study did not."""

from __future__ import annotations

import json

import pytest

from raymtl.cli import main
from raymtl.results import claims as C
from raymtl.train.chains import chains
from raymtl.train.experiments import EXPERIMENTS, get_experiment

TRIALS = [f"{e}-d{d}-r1-triple" for d in (1, 2) for e in EXPERIMENTS]


def _finished_ns(run, trial: str) -> int:
    return (run / "trials" / trial / "result.json").stat().st_mtime_ns


@pytest.fixture(scope="module")
def study(tiny_study):
    run, code, out, seconds, preset = tiny_study
    if preset is None:
        pytest.fail("RAYMTL_TEST_ENSEMBLE is set: these tests check the training itself")
    assert code == 0, out
    return run, out, seconds, preset


def test_the_study_trains_every_experiment_once_in_dependency_order(study):
    run, out, seconds, _ = study
    # (The ensemble on the same RUN may have added its quadruple members by now.)
    assert sorted(p.name for p in (run / "trials").iterdir() if p.name.endswith("-triple")) == sorted(TRIALS)
    for trial in TRIALS:
        result = json.loads((run / "trials" / trial / "result.json").read_text())
        assert set(result["test_accuracy"]) == set(get_experiment(result["experiment"]).targets)
        assert all(0 <= a <= 1 for a in result["test_accuracy"].values())
        parent = get_experiment(result["experiment"]).init_from
        if parent:  # a fine-tune finished after, and started from, the trial it depends on
            source = trial.replace(result["experiment"], parent, 1)
            assert _finished_ns(run, trial) > _finished_ns(run, source)
            assert all(f"/trials/{source}/model-" in m for m in result["stage1"].values())
    # 6 chains x 2 divisions; on this fixed 2-CPU machine (2 at once, no node to add) the chains of
    # a division share one Train run: 2 start-ups for 20 trials.
    assert len(chains(EXPERIMENTS)) * 2 == 12
    train_runs = sorted(p.name for p in (run / "ray").iterdir() if p.name.endswith("-triple"))
    packed = "+".join(e for c in chains(EXPERIMENTS) for e in c)
    assert train_runs == [f"{packed}-d1-r1-triple", f"{packed}-d2-r1-triple"]
    assert "20 trials in 12 chains; 0 chains already done; 20 trials trained now in 2 Train runs" in out
    plan = json.loads((run / "study" / "plan.json").read_text())
    assert plan == {
        "divisions": [1, 2],
        "repeats": [1],
        "variants": ["triple"],
        "experiments": list(EXPERIMENTS),
        "preset": "tiny-grid",
    }
    print(f"tiny study: {seconds:.0f} s, 2 Train runs for 20 trials")


def test_a_rerun_trains_nothing(study, tiny_features, capsys):
    run, _, _, preset = study
    before = {t: _finished_ns(run, t) for t in TRIALS}
    args = ["--features", str(tiny_features), "--out", str(run), "--preset", str(preset)]
    assert main(["study", *args, "--divisions", "1,2", "--repeats", "1"]) == 0
    assert "12 chains already done; 0 trials trained now in 0 Train runs" in capsys.readouterr().out
    assert {t: _finished_ns(run, t) for t in TRIALS} == before


def test_the_results_show_every_row_and_claim(tiny_ensemble, capsys):
    """After the ensemble on the same RUN: Table I has every experiment's row per task, and
    every claim has a verdict for this run (the ensemble claim over its four members)."""
    run, code, out, reduce_code, _ = tiny_ensemble
    assert code == 0 and reduce_code == 0, out
    assert main(["results", str(run), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {t: [r["experiment"] for r in doc["table1"]["tasks"][t]] for t in ("asc", "aec")}
    assert rows == {
        "asc": ["baseline-asc", "mtl", "mtl-ic", "finetune-asc", "direct-asc", "transfer-asc"],
        "aec": ["baseline-aec", "mtl", "mtl-ic", "finetune-aec", "direct-aec", "transfer-aec"],
    }
    assert all(r["runs"]["RUN"]["n_trials"] == 2 for t in rows for r in doc["table1"]["tasks"][t])
    claims = doc["claims"]["claims"]
    assert len(claims) == 12
    for c in claims:
        r = c["runs"]["RUN"]
        assert r["n"] == (4 if c["better"] == C.ENSEMBLE else 2)
        assert r["verdict"] in (C.HOLDS, C.CONTRADICTED, C.UNSUPPORTED) and r["words"]
    assert main(["results", str(run)]) == 0
    text = capsys.readouterr().out
    assert "The paper's claims" in text and "asc: finetune-asc > direct-asc" in text
    print(text)
