"""Fault tolerance of the ensemble on the test session's local Ray instance.

One member (division 1, repeat 1, triple, ASC) is trained by `raymtl ensemble` in a separate
driver process: its stages (mtl-ic, then finetune-asc) are one Ray Train run. While its stage 1
runs, the Train worker process is killed (SIGKILL); Ray Train must restart it from its last
checkpoint. While its fine-tune runs, the driver process itself is killed; rerunning the same
command must skip stage 1 (already finished) and resume the fine-tune from its checkpoint.
Everything observed is kept in one module fixture; each test checks one part.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raymtl.config import PRESETS

pytestmark = pytest.mark.training

# tiny, with epochs long enough to kill mid-run and few enough to keep the test short. The
# fine-tune's epochs take ~0.1 s over its frozen trunk, and a report ~0.2 s
# (raymtl.train.runner.REPORT_POLL_S): 40 of them leave seconds to kill the driver between its
# first checkpoint and its end.
FAULT_PRESET = dataclasses.replace(
    PRESETS["tiny"],
    name="fault-test",
    train=dataclasses.replace(
        PRESETS["tiny"].train,
        epochs_train_asc=3,
        epochs_train_aec=3,
        epochs_finetune_asc=40,
        max_train_patches=300,
    ),
)
STAGE1, FINETUNE = "mtl-ic-d1-r1-triple", "finetune-asc-d1-r1-triple"
MEMBER_RUN = "member-d1-r1-triple"  # the member's Train run: RUN/ray/<MEMBER_RUN>/
TIMEOUT_S = 600


def _snapshot(run: Path) -> dict:
    """Ray Train's record of the member run's reports and kept checkpoints ({} before the first)."""
    try:
        return json.loads((run / "ray" / MEMBER_RUN / "checkpoint_manager_snapshot.json").read_text())
    except (OSError, ValueError):
        return {}


def _registered_checkpoint(run: Path, trial: str) -> bool:
    """Ray Train has registered a checkpoint of `trial` (a checkpoint folder alone is not enough:
    it appears while the upload is still going, before the controller knows of it)."""
    latest = _snapshot(run).get("latest_checkpoint_result") or {}
    return (latest.get("metrics") or {}).get("trial") == trial


def _wait_for(what: str, condition, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the driver exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _descendants(root: int) -> list[int]:
    """Process ids under `root`, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _train_workers() -> list[int]:
    """Ray Train worker processes of this test session's Ray instance (the raylet that started
    them is a child of this pytest process, so other Ray instances on the machine are safe)."""
    out = []
    for pid in _descendants(os.getpid()):
        try:
            if b"RayTrainWorker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


@pytest.fixture(scope="module")
def faulted(ray_session, tiny_features, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    run, preset = tmp / "RUN", tmp / "fault-test.json"
    preset.write_text(json.dumps(FAULT_PRESET.to_dict()))
    # Relative --out and --preset, run from `tmp`: Tune trials and Train workers run in other
    # working directories, so this also checks that paths reach them absolute.
    cmd = [
        sys.executable,
        "-m",
        "raymtl.cli",
        "ensemble",
        "--features",
        str(tiny_features),
        "--out",
        "RUN",
        "--preset",
        preset.name,
        "--divisions",
        "1",
        "--repeats",
        "1",
        "--variants",
        "triple",
        "--tasks",
        "asc",
    ]
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    seen: dict = {}

    log1 = tmp / "first.log"
    with open(log1, "w") as f:
        first = subprocess.Popen(
            cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True
        )
    try:
        # 1. Kill the stage-1 Train worker once it has a checkpoint (and is not finished).
        _wait_for("a stage-1 checkpoint", lambda: _registered_checkpoint(run, STAGE1), first, log1)
        workers = _train_workers()
        seen["killed_workers"] = len(workers)
        seen["stage1_finished_at_worker_kill"] = (run / "trials" / STAGE1 / "result.json").exists()
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        # 2. Kill the driver once the fine-tune has a checkpoint (and is not finished).
        _wait_for("a fine-tune checkpoint", lambda: _registered_checkpoint(run, FINETUNE), first, log1)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
        # Ray ends the dead driver's actors a moment later; until then the fine-tune may report
        # (and checkpoint) more epochs. Look at it once its worker is gone.
        _wait_for("the Train worker to end", lambda: not _train_workers(), None, log1)
        seen["finetune_finished_at_driver_kill"] = (run / "trials" / FINETUNE / "result.json").exists()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    seen["stage1_mtime"] = (run / "trials" / STAGE1 / "result.json").stat().st_mtime_ns
    seen["stage1_metrics"] = (run / "trials" / STAGE1 / "metrics.jsonl").read_text()
    seen["reports_at_driver_kill"] = _snapshot(run)["current_report_index"]
    seen["first_log"] = log1.read_text()

    # 3. The same command again, to the end.
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=TIMEOUT_S)
    seen["rerun"] = rerun
    seen["final_snapshot"] = _snapshot(run)
    return run, seen


def _result(run: Path, trial: str) -> dict:
    return json.loads((run / "trials" / trial / "result.json").read_text())


def test_a_killed_train_worker_restarts_from_its_checkpoint(faulted):
    run, seen = faulted
    assert seen["killed_workers"] >= 1 and not seen["stage1_finished_at_worker_kill"]
    result = _result(run, STAGE1)
    assert result["resumed_after_epoch"], "stage 1 finished without resuming from a checkpoint"
    assert min(result["resumed_after_epoch"]) >= 0
    epochs = [
        json.loads(line)["epoch"]
        for line in (run / "trials" / STAGE1 / "metrics.jsonl").read_text().splitlines()
    ]
    assert epochs == [0, 1, 2]  # each epoch recorded once, none lost or repeated


def test_a_rerun_after_a_killed_driver_skips_finished_trials_and_resumes(faulted):
    run, seen = faulted
    rerun = seen["rerun"]
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert not seen["finetune_finished_at_driver_kill"]
    assert "1 members in" in rerun.stdout and "0 already done, 1 trained now" in rerun.stdout
    # Stage 1 was not trained again: the same files, and the rerun reported only the fine-tune's
    # remaining epochs (one report per epoch).
    assert (run / "trials" / STAGE1 / "result.json").stat().st_mtime_ns == seen["stage1_mtime"]
    assert (run / "trials" / STAGE1 / "metrics.jsonl").read_text() == seen["stage1_metrics"]
    finetune = _result(run, FINETUNE)
    assert finetune["resumed_after_epoch"], "the fine-tune started again from scratch"
    resumed_after = finetune["resumed_after_epoch"][-1]
    epochs_left = finetune["epochs"]["asc"] - 1 - resumed_after
    final = seen["final_snapshot"]
    assert final["current_report_index"] - seen["reports_at_driver_kill"] == epochs_left
    kept = [r["metrics"] for r in final["checkpoint_results"]]
    assert kept and all(m["trial"] == FINETUNE for m in kept)
    assert finetune["stage1"]["asc"].endswith(f"trials/{STAGE1}/model-asc.pt")
    assert 0 <= finetune["test_accuracy"]["asc"] <= 1
