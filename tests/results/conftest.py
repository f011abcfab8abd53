"""Fixtures for the results store, `raymtl results` and the dashboard: the finished tiny ensemble
of the session (`tiny_ensemble`), a copy of it whose run and class names are HTML injection
attempts, and a hand-made run caught in the middle of training (done, running, failed and
missing members, with Ray's progress files as Ray 2.60 writes them)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

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


def _snapshot(epochs: list[dict]) -> dict:
    """A Ray Train checkpoint_manager_snapshot.json as Ray 2.60 writes it."""
    results = [
        {"version": 0, "checkpoint_dir_name": f"checkpoint_{m['epoch']}", "metrics": m} for m in epochs
    ]
    return {
        "ray_version": "2.60.0",
        "checkpoint_results": results,
        "latest_checkpoint_result": results[-1],
        "checkpoint_report_indices": [m["epoch"] for m in epochs],
        "current_report_index": len(epochs),
    }


def _tune_trial(division: int, repeat: int, variant: str, status: str, logdir: str) -> list[str]:
    """One entry of Tune's experiment_state-*.json trial_data (two JSON strings, as Ray 2.60)."""
    trial = {
        "trainable_name": "run_member",
        "trial_id": f"t{division}{repeat}{variant[0]}",
        "status": status,
        "evaluated_params": {"member": {"division": division, "repeat": repeat, "variant": variant}},
        "relative_logdir": logdir,
    }
    meta = {"start_time": time.time(), "num_failures": 0, "error_filename": None}
    return [json.dumps(trial), json.dumps(meta)]


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
    """Divisions 1,2 x triple,quadruple, repeat 1, both tasks, caught mid-run:

    - d1 triple: mtl-ic and finetune-asc done; finetune-aec not started but Tune runs the member
      (asc done, aec running "starting");
    - d2 triple: mtl-ic at epoch 3 of 6, reported just now (running);
    - d1 quadruple: mtl-ic reported epoch 1 two hours ago (failed: no progress);
    - d2 quadruple: queued in Tune (missing).
    """
    run = copy_run(
        finished_run,
        tmp_path_factory.mktemp("live") / "LIVE",
        trials={"mtl-ic-d1-r1-triple", "finetune-asc-d1-r1-triple"},
    )
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
    ray = run / "ray"
    # (Train run, trial, epochs reported, seconds since): the grid's member runs report each
    # epoch with its trial; a `raymtl train` run is named after its one trial (d1 quadruple).
    for train_run, trial, epochs, age_s in (
        ("member-d1-r1-triple", "finetune-asc-d1-r1-triple", 4, 5),  # finished, the run moved on
        ("member-d2-r1-triple", "mtl-ic-d2-r1-triple", 4, 5),
        ("mtl-ic-d1-r1-quadruple", "mtl-ic-d1-r1-quadruple", 2, 7200),
    ):
        (ray / train_run).mkdir(parents=True)
        snap = ray / train_run / "checkpoint_manager_snapshot.json"
        tagged = {"trial": trial} if train_run != trial else {}
        snap.write_text(json.dumps(_snapshot([{**tagged, **_epoch(e)} for e in range(epochs)][-2:])))
        then = time.time() - age_s
        os.utime(snap, (then, then))
    grid = ray / "grid"
    folder = "run_member_t0_0_member=division_2_repeat_1_variant_triple"
    (grid / folder).mkdir(parents=True)
    lines = [
        {
            **_epoch(e),
            "trial": "mtl-ic-d2-r1-triple",
            "checkpoint_path": str(ray / "member-d2-r1-triple" / f"checkpoint_{e}"),
            "timestamp": int(time.time()),
            "config": {"member": {}},
        }
        for e in range(4)
    ]
    (grid / folder / "result.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    state = {
        "trial_data": [
            _tune_trial(1, 1, "triple", "RUNNING", "run_member_t1"),
            _tune_trial(2, 1, "triple", "RUNNING", folder),
            _tune_trial(1, 1, "quadruple", "RUNNING", "run_member_t2"),
            _tune_trial(2, 1, "quadruple", "PENDING", "run_member_t3"),
        ],
        "runner_data": {},
        "stats": {},
    }
    (grid / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps(state))
    return run
