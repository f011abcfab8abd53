"""The RUN's typed records (raymtl.run.records): round trips, older files without a version,
newer versions refused with the upgrade named, broken files named with their reason."""

from __future__ import annotations

import json

import pytest

from raymtl import storage
from raymtl.errors import InputFileError
from raymtl.run import records as R
from raymtl.run.progress import Placement

RESULT = R.TrialResult(
    trial="finetune-asc-d2-r1-quadruple",
    experiment="finetune-asc",
    division=2,
    repeat=1,
    variant="quadruple",
    preset="tiny",
    targets=("asc",),
    test_accuracy={"asc": 0.5},
    val_accuracy={"asc": 0.4},
    best_epoch={"asc": 3},
    epochs={"asc": 4},
    seed=7,
    stage1={"asc": "RUN/trials/mtl-ic-d2-r1-quadruple/model-asc.pt"},
    models={"asc": "RUN/trials/finetune-asc-d2-r1-quadruple/model-asc.pt"},
    n_classes={"asc": 15, "aec": 50},
    seconds=12.5,
    device="GPU",
    finished="2026-12-02T10:00:00+0000",
    raymtl_version="0.1.0",
    resumed_after_epoch=(1,),
    placement=Placement("gpu-node-1", 99, "abc", "10.0.0.5", "cuda:0"),
)


def test_a_result_round_trips_through_its_file_and_is_never_overwritten(tmp_path):
    fs, run = storage.resolve(str(tmp_path))
    R.write_result(fs, run, RESULT)
    d = json.loads((tmp_path / "trials" / RESULT.trial / "result.json").read_text())
    assert (d["format"], d["version"]) == ("raymtl-trial-result", R.RESULT_VERSION)
    assert d["placement"]["node_id"] == "abc" and d["targets"] == ["asc"]
    assert R.read_result(fs, run, RESULT.trial) == RESULT
    with pytest.raises(FileExistsError):
        R.write_result(fs, run, RESULT)


def test_a_result_written_before_versions_reads_as_version_1(tmp_path):
    old = RESULT.to_dict()
    for key in ("format", "version", "placement"):
        del old[key]
    path = tmp_path / "trials" / RESULT.trial / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old))
    fs, run = storage.resolve(str(tmp_path))
    got = R.read_result(fs, run, RESULT.trial)
    assert got.placement is None and got.test_accuracy == {"asc": 0.5} and got.resumed_after_epoch == (1,)


def test_newer_or_broken_records_are_refused_naming_the_file(tmp_path):
    fs, run = storage.resolve(str(tmp_path))
    manifest = R.RunManifest(preset={"name": "tiny"}, features="/f", created="", raymtl_version="0.1.0")
    R.write_manifest(fs, run, manifest)
    assert R.read_manifest(fs, run) == manifest and manifest.preset_name == "tiny"
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest.to_dict(), "version": R.RUN_VERSION + 1}))
    with pytest.raises(InputFileError, match=r"manifest.json: format version 2 is newer .* upgrade raymtl"):
        R.read_manifest(fs, run)
    path = tmp_path / "trials" / RESULT.trial / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"val_accuracy": {"asc": 0.5}}))
    with pytest.raises(InputFileError, match=r"result.json: not a trial result \(KeyError\('trial'\)\)"):
        R.read_result(fs, run, RESULT.trial)
    path.write_text("[1, 2]")
    with pytest.raises(InputFileError, match="not a JSON object"):
        R.read_result(fs, run, RESULT.trial)


def test_a_summary_round_trips_and_an_unreduced_task_keeps_its_note(tmp_path):
    fused = R.TaskSummary(
        n_planned=2,
        n_members=1,
        members=("finetune-asc-d1-r1-triple",),
        missing=("finetune-asc-d2-r1-triple",),
        missing_reasons={"finetune-asc-d2-r1-triple": "not finished"},
        ensemble_accuracy=0.75,
        n_recordings=4,
        n_patches=40,
        n_classes=15,
        member_accuracy=R.MemberAccuracy(0.75, 0.0, 1, {"finetune-asc-d1-r1-triple": 0.75}),
        table1={"triple": {"mean": 0.75, "std": 0.0, "n_repeats": 1, "per_repeat": {"1": 0.75}}},
        eight_member={"combinations": [], "mean": None},
        by_size=({"groups": 1, "members": 1, "mean": 0.75},),
    )
    empty = R.TaskSummary(
        0,
        0,
        (),
        (),
        {},
        None,
        0,
        0,
        None,
        R.MemberAccuracy(None, None, 0, {}),
        {},
        {},
        (),
        note="no aec member has finished; nothing fused",
    )
    summary = R.EnsembleSummary(
        {"divisions": [1, 2]},
        True,
        "2026-12-02T10:00:00+0000",
        "population (ddof=0)",
        50,
        {"asc": fused, "aec": empty},
    )
    fs, run = storage.resolve(str(tmp_path))
    R.write_summary(fs, run, summary)
    d = json.loads((tmp_path / "ensemble" / "summary.json").read_text())
    assert (d["format"], d["version"]) == ("raymtl-ensemble-summary", R.SUMMARY_VERSION)
    assert "note" not in d["tasks"]["asc"] and d["tasks"]["aec"]["note"].startswith("no aec member")
    assert d["tasks"]["asc"]["member_accuracy"]["per_member"] == {"finetune-asc-d1-r1-triple": 0.75}
    assert R.read_summary(fs, run) == summary
    d["tasks"]["asc"].pop("member_accuracy")
    (tmp_path / "ensemble" / "summary.json").write_text(json.dumps(d))
    with pytest.raises(
        InputFileError, match=r"summary.json: not an ensemble summary \(KeyError\('member_accuracy'\)\)"
    ):
        R.read_summary(fs, run)
