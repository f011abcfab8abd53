"""The live progress records (raymtl.run.progress): their round trip, the heartbeat, member
records, and what a reader does with a record it cannot use."""

from __future__ import annotations

import json
import time

import pytest

from raymtl import storage
from raymtl.run import progress as RP


def _read(path):
    return json.loads(path.read_text())


def test_a_trial_record_round_trips_and_names_its_format(tmp_path):
    record = RP.TrialProgress(
        trial="mtl-ic-d1-r1-triple",
        stage="mtl-ic",
        epochs_planned={"asc": 6, "aec": 6},
        epochs=({"epoch": 0, "loss_asc": 2.5},),
        started=100.0,
        updated=160.0,
        placement=RP.Placement("host-a", 12, "n1", "10.0.0.2", "cuda:0"),
        resumed_after_epoch=(0,),
    )
    RP.write_trial_progress(str(tmp_path), record)
    path = tmp_path / "trials" / "mtl-ic-d1-r1-triple" / "progress.json"
    d = _read(path)
    assert (d["format"], d["version"]) == ("raymtl-trial-progress", RP.FORMAT_VERSION)
    assert RP.TrialProgress.from_dict(d) == record and record.epochs_done == 1
    fs, run_path = storage.resolve(str(tmp_path))
    assert RP.read_trial_progress(fs, run_path, ["mtl-ic-d1-r1-triple", "absent-d1-r1-triple"]) == {
        "mtl-ic-d1-r1-triple": record
    }


def test_the_writer_records_each_epoch_beats_between_them_and_stops(tmp_path):
    writer = RP.TrialProgressWriter(
        str(tmp_path),
        "baseline-asc-d2-r1-quadruple",
        "baseline",
        {"asc": 3},
        [],
        placement=RP.Placement.of_process(device="cpu"),
        heartbeat_s=0.05,
    )
    path = tmp_path / "trials" / "baseline-asc-d2-r1-quadruple" / "progress.json"
    first = _read(path)
    assert first["epochs"] == [] and first["placement"]["device"] == "cpu" and first["placement"]["pid"] > 0
    writer.epoch({"epoch": 0, "val_acc_asc": 0.25})
    writer.epoch({"epoch": 1, "val_acc_asc": 0.5})
    time.sleep(0.3)
    beat = _read(path)
    assert [m["epoch"] for m in beat["epochs"]] == [0, 1]
    assert beat["updated"] > first["updated"]  # the heartbeat wrote again between epochs
    RP.TrialProgressWriter.stop_all()  # what the Train loop does when a stage fails
    stopped = _read(path)["updated"]
    time.sleep(0.2)
    assert _read(path)["updated"] == stopped  # a failed stage does not look alive


def test_a_resumed_trial_keeps_its_earlier_epochs(tmp_path):
    history = [{"epoch": 0}, {"epoch": 1}]
    writer = RP.TrialProgressWriter(
        str(tmp_path), "finetune-aec-d1-r1-triple", "fusion", {"aec": 4}, history, [1]
    )
    writer.epoch({"epoch": 2})
    writer.close()
    record = RP.TrialProgress.from_dict(
        _read(tmp_path / "trials" / "finetune-aec-d1-r1-triple" / "progress.json")
    )
    assert [m["epoch"] for m in record.epochs] == [0, 1, 2] and record.resumed_after_epoch == (1,)
    assert history == [{"epoch": 0}, {"epoch": 1}]  # the caller's list is not changed


def test_member_records_are_one_file_per_member_last_state_wins(tmp_path):
    run = str(tmp_path)
    RP.write_member(run, 1, 1, "triple", RP.QUEUED)
    RP.write_member(run, 2, 1, "quadruple", RP.QUEUED, updated=5.0)
    RP.write_member(run, 1, 1, "triple", RP.RUNNING, placement=RP.Placement("h", 3))
    RP.write_member(run, 1, 1, "triple", RP.FAILED, error="RuntimeError: out of memory")
    assert sorted(p.name for p in (tmp_path / "ensemble" / "members").iterdir()) == [
        "d1-r1-triple.json",
        "d2-r1-quadruple.json",
    ]
    fs, run_path = storage.resolve(run)
    members = RP.read_members(fs, run_path)
    assert members[(1, 1, "triple")].state == "failed"
    assert members[(1, 1, "triple")].error == "RuntimeError: out of memory"
    assert members[(2, 1, "quadruple")].updated == 5.0 and members[(2, 1, "quadruple")].placement is None
    with pytest.raises(ValueError, match="member state must be one of"):
        RP.write_member(run, 1, 1, "triple", "paused")


def test_unreadable_or_newer_records_are_skipped_with_a_warning(tmp_path, caplog):
    fs, run_path = storage.resolve(str(tmp_path))
    bad = tmp_path / "trials" / "mtl-d1-r1-triple" / "progress.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    newer = tmp_path / "ensemble" / "members" / "d1-r1-triple.json"
    newer.parent.mkdir(parents=True)
    newer.write_text(json.dumps({"version": RP.FORMAT_VERSION + 1, "division": 1}))
    assert RP.read_trial_progress(fs, run_path, ["mtl-d1-r1-triple"]) == {}
    assert RP.read_members(fs, run_path) == {}
    text = caplog.text
    assert "mtl-d1-r1-triple/progress.json: progress record skipped" in text
    assert f"progress format version {RP.FORMAT_VERSION + 1}" in text
