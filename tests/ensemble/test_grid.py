"""The ensemble grid on local Ray: the issue's must-show run plus reduce, a Train worker killed
mid-trial, and a driver killed mid-run then rerun."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from raymtl.cli import main
from raymtl.config import get_preset
from raymtl.ensemble.grid import GridOptions, run_ensemble
from raymtl.ensemble.plan import EnsemblePlan

# Fault tests need checkpoints and restarts, not accuracy: the tiny preset with fewer epochs.
FAULT_PRESET = dataclasses.replace(
    get_preset("tiny"),
    train=dataclasses.replace(
        get_preset("tiny").train, epochs_train_asc=3, epochs_train_aec=3, epochs_finetune_aec=2, max_train_patches=512
    ),
)


def test_small_ensemble_then_reduce(tiny_run, tiny_features, capsys):
    """`raymtl ensemble --preset tiny --divisions 1,2 --repeats 1 --variants triple,quadruple
    --tasks asc,aec` then `raymtl reduce`: 4 members per task, accuracies in [0, 1]. The member
    d1-r1-triple was already trained by `raymtl train` in this RUN and is not trained again."""
    run, _ = tiny_run
    before = (run / "trials" / "mtl-ic-d1-r1-triple" / "result.json").stat().st_mtime_ns
    args = ["--preset", "tiny", "--divisions", "1,2", "--repeats", "1", "--variants", "triple,quadruple"]
    code = main(["ensemble", "--features", str(tiny_features), "--out", str(run), *args, "--tasks", "asc,aec"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 members" in out and "1 already done, 3 trained now" in out
    assert (run / "trials" / "mtl-ic-d1-r1-triple" / "result.json").stat().st_mtime_ns == before
    for d in (1, 2):
        for v in ("triple", "quadruple"):
            for e in ("mtl-ic", "finetune-asc", "finetune-aec"):
                assert (run / "trials" / f"{e}-d{d}-r1-{v}" / "result.json").is_file()

    assert main(["reduce", str(run)]) == 0
    summary = json.loads((run / "ensemble" / "summary.json").read_text())
    for task in ("asc", "aec"):
        s = summary["tasks"][task]
        assert s["n_members"] == 4 and not s["missing"]
        assert 0 <= s["ensemble_accuracy"] <= 1
        assert all(0 <= a <= 1 for a in s["member_accuracy"]["per_member"].values())
    assert (run / "ensemble" / "predictions.parquet").is_file()
    assert "asc" in capsys.readouterr().out


def _worker_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "ray::RayTrainWorker"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _checkpoints(run: Path, trial: str) -> list[Path]:
    return list((run / "ray" / trial).glob("checkpoint_*"))


def test_a_killed_training_worker_restarts_from_its_checkpoint(ray_session, tiny_features, tmp_path):
    run = tmp_path / "RUN"
    plan = EnsemblePlan(divisions=[1], repeats=[1], variants=["triple"], tasks=["aec"])
    box = {}
    thread = threading.Thread(
        target=lambda: box.update(report=run_ensemble(str(tiny_features), str(run), FAULT_PRESET, plan, GridOptions()))
    )
    thread.start()
    deadline = time.time() + 600
    killed = None
    while time.time() < deadline and thread.is_alive():
        pids = _worker_pids()
        if pids and _checkpoints(run, "mtl-ic-d1-r1-triple"):
            killed = pids.pop()
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.5)
    assert killed is not None, "never saw a training worker with a checkpoint to kill"
    thread.join(timeout=900)
    report = box["report"]
    assert not report.failed and report.trained == 1
    result = json.loads((run / "trials" / "mtl-ic-d1-r1-triple" / "result.json").read_text())
    assert result["resumed_after_epoch"], "the restarted worker did not resume from a checkpoint"
    assert result["resumed_after_epoch"][0] >= 0
    metrics = [json.loads(x) for x in (run / "trials" / "mtl-ic-d1-r1-triple" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [0, 1, 2]  # every epoch once: none redone, none lost
    assert (run / "trials" / "finetune-aec-d1-r1-triple" / "result.json").is_file()


def test_a_killed_driver_resumes_without_retraining_finished_trials(ray_session, tiny_features, tmp_path):
    run = tmp_path / "RUN"
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address, "PYTHONUNBUFFERED": "1"}
    code = (
        "import sys, dataclasses; from raymtl.cli import main; import raymtl.config as c; "
        "c.PRESETS['tiny'] = dataclasses.replace(c.PRESETS['tiny'], train=dataclasses.replace("
        "c.PRESETS['tiny'].train, epochs_train_asc=3, epochs_train_aec=3, epochs_finetune_aec=2, "
        "max_train_patches=512)); sys.exit(main(sys.argv[1:]))"
    )
    cmd = [sys.executable, "-c", code, "ensemble", "--features", str(tiny_features), "--out", str(run),
           "--preset", "tiny", "--divisions", "1", "--repeats", "1", "--variants", "triple", "--tasks", "aec"]  # fmt: skip
    stage1 = run / "trials" / "mtl-ic-d1-r1-triple" / "result.json"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not stage1.exists():
        time.sleep(0.5)
    assert stage1.exists() and proc.poll() is None, "the driver ended before stage 1 finished"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver dies between stage 1 and stage 2
    proc.wait()
    finished_at = stage1.stat().st_mtime_ns
    time.sleep(3)  # let Ray reap the dead driver's actors

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert stage1.stat().st_mtime_ns == finished_at  # not trained twice
    assert (run / "trials" / "finetune-aec-d1-r1-triple" / "result.json").is_file()
    assert "mtl-ic-d1-r1-triple: already done" in rerun.stdout + rerun.stderr
