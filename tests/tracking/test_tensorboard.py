"""TensorBoard logging (raymtl.tracking) read back with TensorBoard's own EventAccumulator: a
trial's curves, settings and test accuracy, a resumed trial, a remote RUN, the reduce's figures;
then the real thing on the tiny ensemble (every trial of `raymtl study` and `raymtl ensemble`)."""

from __future__ import annotations

import json

import pyarrow.fs as pafs
import pytest

from raymtl import storage, tracking
from raymtl.config import get_preset
from raymtl.ensemble import reduce as R
from raymtl.ensemble.plan import EnsemblePlan
from raymtl.train.stage import StageConfig
from raymtl.train.trial import TrialSpec, parse_trial_name
from tests.ensemble.test_reduce import tut_rows, write_member
from tests.tracking.events import curves, f32, hparams

TRIAL = "baseline-asc-d1-r2-quadruple"


def stage() -> StageConfig:
    spec = TrialSpec("baseline-asc", 1, 2, "quadruple")
    return StageConfig(spec=spec, preset=get_preset("tiny"), n_classes={"asc": 15, "aec": 50}, init={})


LAST = stage().epochs["asc"] - 1  # the step of the final figures


def epoch(e: int, shift: float = 0.0) -> dict:
    """A metrics.jsonl line of a baseline-asc trial."""
    return {
        "trial": TRIAL,
        "stage": "baseline",
        "epoch": e,
        "patches": 256,
        "seconds": 1.25 + e,
        "data_s": 0.5,
        "loss_asc": 2.5 - 0.3 * e + shift,
        "train_acc_asc": 0.1 + 0.05 * e,
        "val_acc_asc": 0.2 + 0.1 * e + shift,
        "validate_s": 0.25,
        "patches_per_s": 204.8,
    }


def test_metric_names_are_tagged_per_task():
    assert tracking.scalar_tag("val_acc_asc") == "val_acc/asc"
    assert tracking.scalar_tag("loss_aec") == "loss/aec"
    assert tracking.scalar_tag("train_acc_aec") == "train_acc/aec"
    assert tracking.scalar_tag("patches_per_s") == "patches_per_s"
    assert tracking.scalar_tag("data_s") == "data_s"
    assert tracking.epoch_scalars(epoch(1))["val_acc/asc"] == 0.2 + 0.1


def test_a_trial_logs_its_epochs_settings_and_test_accuracy(tmp_path):
    run = tmp_path / "RUN"
    tracker = tracking.TrialTracker(str(run), stage(), [])
    for e in range(3):
        tracker.epoch(epoch(e))
    tracker.finish({"asc": 0.625})
    got = curves(run / "tb" / TRIAL)
    assert set(got) == {tracking.scalar_tag(k) for k in epoch(0) if k not in tracking.NOT_SCALARS} | {
        "test_acc/asc"
    }
    for key in ("loss_asc", "train_acc_asc", "val_acc_asc", "patches_per_s", "seconds"):
        assert got[tracking.scalar_tag(key)] == [(e, f32(epoch(e)[key])) for e in range(3)]
    assert got["test_acc/asc"] == [(LAST, 0.625)]  # at the trial's last epoch
    assert hparams(run / "tb" / TRIAL) == {
        "preset": "tiny",
        "experiment": "baseline-asc",
        "division": 1.0,
        "repeat": 2.0,
        "variant": "quadruple",
        "seed": float(stage().seed),
        "stage": "baseline",
        "epochs_asc": float(LAST + 1),
    }


def test_a_resumed_trial_replaces_the_epochs_logged_after_its_checkpoint(tmp_path):
    run = tmp_path / "RUN"
    first = tracking.TrialTracker(str(run), stage(), [])
    for e in range(3):  # the worker dies after logging epoch 2, before its checkpoint
        first.epoch(epoch(e))
    first._tb.close()
    second = tracking.TrialTracker(str(run), stage(), [epoch(0), epoch(1)])  # the checkpoint's history
    second.epoch(epoch(2, shift=0.5))  # epoch 2 trained again
    second.finish({"asc": 0.5})
    assert len(list((run / "tb" / TRIAL).iterdir())) == 2  # one event file per writer
    got = curves(run / "tb" / TRIAL)
    assert got["val_acc/asc"] == [(0, f32(0.2)), (1, f32(0.3)), (2, f32(0.4 + 0.5))]
    assert got["loss/asc"] == [(e, f32(epoch(e, 0.5 if e == 2 else 0.0)["loss_asc"])) for e in range(3)]


def test_a_remote_run_gets_the_event_files_copied_in_at_every_epoch(tmp_path, monkeypatch):
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    remote = pafs.SubTreeFileSystem(str(bucket), pafs.LocalFileSystem())  # not a LocalFileSystem
    monkeypatch.setattr(tracking.storage, "resolve", lambda uri: (remote, "RUN"))
    tracker = tracking.TrialTracker("s3://bucket/RUN", stage(), [])
    local = tracker._tb.writer.get_logdir()
    tracker.epoch(epoch(0))
    assert curves(bucket / "RUN" / "tb" / TRIAL)["val_acc/asc"] == [(0, f32(0.2))]  # there after epoch 0
    tracker.epoch(epoch(1))
    tracker.finish({"asc": 0.75})
    got = curves(bucket / "RUN" / "tb" / TRIAL)
    assert got["val_acc/asc"] == [(0, f32(0.2)), (1, f32(0.3))] and got["test_acc/asc"] == [(LAST, 0.75)]
    assert not storage.exists(pafs.LocalFileSystem(), local)  # the local copy is gone


def test_reduce_logs_the_ensembles_figures(tmp_path):
    plan = EnsemblePlan([1, 2], [1], ["triple", "quadruple"], ["asc"])
    clips = {"a.wav": 0, "b.wav": 1, "c.wav": 2}
    good = lambda c, im, p: [0.8 if i == clips[c] else 0.1 for i in range(3)]  # noqa: E731
    bad = lambda c, im, p: [0.1, 0.1, 0.8]  # noqa: E731  (right on c.wav alone)
    for d in plan.divisions:
        for v in plan.variants:
            write_member(
                tmp_path, "asc", d, 1, v, tut_rows(clips, v, good if (d, v) != (2, "triple") else bad)
            )
    summary = R.reduce_run(str(tmp_path), plan=plan)
    on_disk = json.loads((tmp_path / "ensemble" / R.SUMMARY_FILE).read_text())["tasks"]["asc"]
    got = curves(tmp_path / "tb" / "ensemble")
    assert got["ensemble_acc/asc"] == [(0, f32(on_disk["ensemble_accuracy"]))]
    assert got["member_acc_mean/asc"] == [(0, f32(on_disk["member_accuracy"]["mean"]))]
    assert got["member_acc_std/asc"] == [(0, f32(on_disk["member_accuracy"]["std"]))]
    assert got["eight_member_mean/asc"] == [(0, f32(on_disk["eight_member"]["mean"]))]
    assert got["by_size_mean/asc"] == [(b["members"], f32(b["mean"])) for b in on_disk["by_size"]]
    assert on_disk["member_accuracy"]["mean"] == pytest.approx((3 + 1 / 3) / 4)  # one member is 1/3 right
    R.reduce_run(str(tmp_path), plan=plan)  # a second reduce replaces the figures, not adds to them
    assert curves(tmp_path / "tb" / "ensemble")["ensemble_acc/asc"] == got["ensemble_acc/asc"]
    assert summary["tasks"]["asc"]["n_members"] == 4


# ---------------------------------------------------------------- the tiny ensemble (training)


def test_every_trial_of_the_tiny_ensemble_has_its_curves_in_tensorboard(tiny_ensemble):
    run, code, out, reduce_code, _ = tiny_ensemble
    assert code == 0 and reduce_code == 0, out
    trials = sorted(p.name for p in (run / "trials").iterdir())
    assert sorted(p.name for p in (run / "tb").iterdir()) == sorted([*trials, "ensemble"])
    for trial in trials:
        history = [
            json.loads(line) for line in (run / "trials" / trial / "metrics.jsonl").read_text().splitlines()
        ]
        result = json.loads((run / "trials" / trial / "result.json").read_text())
        got = curves(run / "tb" / trial)
        for key in history[0]:
            if key in tracking.NOT_SCALARS:
                continue
            # one point per epoch in which the metric was logged (an MTL network's task may stop earlier)
            want = [(m["epoch"], f32(m[key])) for m in history if key in m]
            assert got[tracking.scalar_tag(key)] == want, (trial, key)
        assert [e for e, _ in got["patches_per_s"]] == list(range(len(history)))
        last = len(history) - 1
        for task, accuracy in result["test_accuracy"].items():
            assert got[f"test_acc/{task}"] == [(last, f32(accuracy))], trial
        spec = parse_trial_name(trial)
        settings = hparams(run / "tb" / trial)
        assert (settings["experiment"], settings["division"], settings["variant"]) == (
            spec.experiment,
            spec.division,
            spec.variant,
        )
    summary = json.loads((run / "ensemble" / "summary.json").read_text())
    ensemble = curves(run / "tb" / "ensemble")
    for tag, value in tracking.ensemble_scalars(summary).items():
        assert ensemble[tag] == [(0, f32(value))]
    assert {"ensemble_acc/asc", "ensemble_acc/aec", "eight_member_mean/asc"} <= set(ensemble)
