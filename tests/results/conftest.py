"""Fixtures for the results store, `raymtl results` and the dashboard: the finished tiny ensemble
of the session (`tiny_ensemble`), a copy of it whose run and class names are HTML injection
attempts, and a hand-made run caught in the middle of training (done, running, failed and
missing members, with the progress records that training writes)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from raymtl.config import PRESETS
from raymtl.run import progress as RP

# Names that would run script if the page put them in as HTML.
EVIL_RUN_NAME = "<img src=x onerror=\"window.__pwned='run'\">RUN&amp;"
EVIL_SCENE = "<script>window.__pwned='class'</script>beach"
EVIL_EVENT = "<img src=x onerror=\"window.__pwned='event'\">dog"


@pytest.fixture(scope="session")
def finished_run(tiny_ensemble) -> Path:
    run, code, out, reduce_code, _ = tiny_ensemble
    assert code == 0 and reduce_code == 0, f"the tiny ensemble did not finish: {out}"
    return Path(run)


@pytest.fixture(scope="session")
def summary(finished_run) -> dict:
    return json.loads((finished_run / "ensemble" / "summary.json").read_text())


def copy_run(src: Path, dst: Path, trials=None) -> Path:
    """RUN without its model files (the store never reads them)."""
    ignore = shutil.ignore_patterns("*.pt", "ray")
    dst.mkdir(parents=True)
    for name in ("manifest.json",):
        shutil.copy2(src / name, dst / name)
    shutil.copytree(src / "ensemble", dst / "ensemble", ignore=ignore)
    for t in sorted((src / "trials").iterdir()):
        if trials is None or t.name in trials:
            shutil.copytree(t, dst / "trials" / t.name, ignore=ignore)
    return dst


@pytest.fixture(scope="session")
def evil_run(finished_run, tmp_path_factory) -> Path:
    """The finished run under an injection name, with injection class names in its features."""
    root = tmp_path_factory.mktemp("evil")
    run = copy_run(finished_run, root / EVIL_RUN_NAME)
    manifest = json.loads((run / "manifest.json").read_text())
    features_manifest = json.loads((Path(manifest["features"]) / "manifest.json").read_text())
    features_manifest["classes"]["tut2017"][0] = EVIL_SCENE
    features_manifest["classes"]["esc50"][0] = EVIL_EVENT
    features = root / "features"
    features.mkdir()
    (features / "manifest.json").write_text(json.dumps(features_manifest))
    manifest["features"] = str(features)
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def _epoch(e: int) -> dict:
    return {
        "epoch": e,
        "patches": 1350,
        "seconds": 20.0,
        "loss_asc": 6.0 - e,
        "train_acc_asc": 0.1 * e,
        "val_acc_asc": 0.05 * e,
        "loss_aec": 6.5 - e,
        "train_acc_aec": 0.05 * e,
        "val_acc_aec": 0.02 * e,
        "patches_per_s": 55.0,
    }


@pytest.fixture(scope="session")
def live_run(finished_run, tmp_path_factory) -> Path:
    """Divisions 1,2 x triple,quadruple, repeat 1, both tasks, caught mid-run, with the progress
    records training writes (raymtl.run.progress):

    - d1 triple: mtl-ic and finetune-asc done; finetune-aec not started but the grid runs the
      member (asc done, aec running "starting");
    - d2 triple: mtl-ic at epoch 4 of 6, reported just now (running);
    - d1 quadruple: mtl-ic reported epoch 1 two hours ago (failed: no progress);
    - d2 quadruple: queued in Tune (missing).
    """
    run = copy_run(
        finished_run,
        tmp_path_factory.mktemp("live") / "LIVE",
        trials={"mtl-ic-d1-r1-triple", "finetune-asc-d1-r1-triple"},
    )
    # The live run asks for the tiny preset (the finished run it is copied from has its own).
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["preset"] = PRESETS["tiny"].to_dict()
    (run / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(run / "ensemble")
    (run / "ensemble").mkdir()
    plan = {
        "divisions": [1, 2],
        "repeats": [1],
        "variants": ["triple", "quadruple"],
        "tasks": ["asc", "aec"],
        "preset": "tiny",
    }
    (run / "ensemble" / "plan.json").write_text(json.dumps(plan))
    now = time.time()
    for trial, epochs, age_s in (("mtl-ic-d2-r1-triple", 4, 5), ("mtl-ic-d1-r1-quadruple", 2, 7200)):
        record = RP.TrialProgress(
            trial=trial,
            stage="mtl-ic",
            epochs_planned={"asc": 6, "aec": 6},
            epochs=tuple({"trial": trial, "stage": "mtl-ic", **_epoch(e)} for e in range(epochs)),
            started=now - age_s - 60,
            updated=now - age_s,
            placement=RP.Placement("worker-1", 4242, "node", "127.0.0.1", "cpu"),
        )
        RP.write_trial_progress(str(run), record)
        progress = run / "trials" / trial / RP.PROGRESS_FILE
        os.utime(progress, (now - age_s, now - age_s))  # the folder's only file: its mtime too
    for (d, v), state, age_s in (
        ((1, "triple"), RP.RUNNING, 5),
        ((2, "triple"), RP.RUNNING, 300),
        ((1, "quadruple"), RP.RUNNING, 7300),
        ((2, "quadruple"), RP.QUEUED, 7400),
    ):
        RP.write_member(str(run), d, 1, v, state, updated=now - age_s)
    return run
