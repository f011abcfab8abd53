"""The results store on the finished tiny ensemble and on a run caught mid-training."""

from __future__ import annotations

import json

import pytest

from raymtl.errors import UserError
from raymtl.results import tables
from raymtl.results.catalog import TABLES
from raymtl.results.confusion import NotFound, confusion
from raymtl.results.store import ResultsStore


@pytest.fixture(scope="module")
def store(finished_run):
    s = ResultsStore.load([str(finished_run)])
    yield s
    s.close()


def test_every_documented_table_is_queryable_with_its_documented_columns(store):
    for name, table in TABLES.items():
        got = store.query(f"select * from {name} limit 0").column_names
        assert got == table.names, name


def test_members_are_the_planned_finetune_trials_with_their_accuracies(store, finished_run, summary):
    rows = store.rows("select task, trial, state, test_accuracy, seconds from members order by task, trial")
    assert len(rows) == 8 and {r["state"] for r in rows} == {"done"}
    for task in ("asc", "aec"):
        per_member = summary["tasks"][task]["member_accuracy"]["per_member"]
        got = {r["trial"]: r["test_accuracy"] for r in rows if r["task"] == task}
        assert got == per_member
    result = json.loads((finished_run / "trials" / "finetune-asc-d1-r1-triple" / "result.json").read_text())
    stage1 = json.loads((finished_run / "trials" / "mtl-ic-d1-r1-triple" / "result.json").read_text())
    seconds = {r["trial"]: r["seconds"] for r in rows if r["task"] == "asc"}
    assert seconds["finetune-asc-d1-r1-triple"] == pytest.approx(result["seconds"] + stage1["seconds"])


def test_metrics_hold_every_epoch_of_metrics_jsonl(store, finished_run):
    lines = (finished_run / "trials" / "mtl-ic-d1-r1-triple" / "metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(x) for x in lines]
    rows = store.rows(
        "select epoch, loss, val_acc, live from metrics where trial = 'mtl-ic-d1-r1-triple' and task = 'aec' "
        "order by epoch"
    )
    assert [r["epoch"] for r in rows] == [e["epoch"] for e in epochs]
    assert [r["loss"] for r in rows] == [e["loss_aec"] for e in epochs]
    assert [r["val_acc"] for r in rows] == [e["val_acc_aec"] for e in epochs]
    assert not any(r["live"] for r in rows)


def test_table1_matches_the_reduce_summary_for_the_members(store, summary):
    for variant in ("triple", "quadruple", "all"):
        t1 = tables.table1(store, variant)
        for task in ("asc", "aec"):
            row = next(r for r in t1["tasks"][task] if r["experiment"] == f"finetune-{task}")
            want = summary["tasks"][task]["table1"][variant]
            (got,) = row["runs"].values()  # the one run
            assert got["mean"] == pytest.approx(want["mean"], abs=1e-12)
            assert got["std"] == pytest.approx(want["std"], abs=1e-12)
            assert got["n_repeats"] == want["n_repeats"]


def test_table1_rows_are_the_experiments_present_in_the_paper_order_with_its_figures(store):
    t1 = tables.table1(store, "triple")
    asc = t1["tasks"]["asc"]
    assert [r["experiment"] for r in asc] == [
        "baseline-asc",
        "mtl",
        "mtl-ic",
        "finetune-asc",
        "direct-asc",
        "transfer-asc",
    ]
    assert asc[0]["paper"] == {"mean": 0.7391, "std": 0.0074}
    assert asc[3]["paper"] == {"mean": 0.7944, "std": 0.0038}
    assert asc[5]["paper"] == {"mean": 0.7254, "std": 0.0152}  # §III-E's transfer figure
    aec = t1["tasks"]["aec"]
    assert [r["experiment"] for r in aec] == [
        "baseline-aec",
        "mtl",
        "mtl-ic",
        "finetune-aec",
        "direct-aec",
        "transfer-aec",
    ]
    assert aec[2]["paper"] == {"mean": 0.6850, "std": 0.0065}
    with pytest.raises(UserError, match="valid: triple, quadruple, all"):
        tables.table1(store, "both")


def test_table2_matches_the_reduce_summary(store, summary):
    t2 = tables.table2(store)["tasks"]
    for task in ("asc", "aec"):
        (got,) = t2[task]["runs"].values()
        s = summary["tasks"][task]
        assert got["ensemble_accuracy"] == s["ensemble_accuracy"]
        assert got["n_members"] == s["n_members"] == 4
        assert got["eight_member_mean"] == s["eight_member"]["mean"]
        assert got["member_mean"] == s["member_accuracy"]["mean"]
        assert got["member_std"] == s["member_accuracy"]["std"]
    assert t2["asc"]["paper"]["ensemble"] == 0.845 and t2["asc"]["paper"]["eight_member_mean"] == 0.842
    assert t2["aec"]["paper"]["ensemble"] == 0.775 and t2["aec"]["paper"]["eight_member_mean"] is None


def test_ensemble_size_and_scores_and_predictions(store, summary):
    rows = store.rows("select task, members, mean, min, max from ensemble_size order by task, members")
    want = sorted(
        (t, b["members"], b["mean"], b["min"], b["max"])
        for t, s in summary["tasks"].items()
        for b in s["by_size"]
    )
    assert [tuple(r.values()) for r in rows] == want
    n = store.rows("select task, count(*) as n from predictions group by task order by task")
    assert {r["task"]: r["n"] for r in n} == {t: s["n_recordings"] for t, s in summary["tasks"].items()}
    # the scores table is every finished trial's scores.parquet: the members cover the fused patches
    fused = store.rows(
        "select count(distinct (dataset, clip, image, patch_index)) as n from scores "
        "where task = 'asc' and trial like 'finetune-asc-%'"
    )[0]["n"]
    assert fused == summary["tasks"]["asc"]["n_patches"]


def test_ensemble_confusion_and_per_class_accuracy_agree_with_the_summary(store, summary):
    for task in ("asc", "aec"):
        c = confusion(store, store.run_names()[0], task)
        assert c["accuracy"] == pytest.approx(summary["tasks"][task]["ensemble_accuracy"])
        assert c["n_recordings"] == summary["tasks"][task]["n_recordings"]
        assert sum(p["n"] for p in c["per_class"]) == c["n_recordings"]
    c = confusion(store, store.run_names()[0], "asc")
    assert c["classes"][:3] == ["beach", "bus", "cafe/restaurant"]  # from FEATURES/manifest.json
    per_class = store.rows("select label, n, n_correct from per_class where task = 'asc' order by label")
    assert [(p["label"], p["n"], p["n_correct"]) for p in c["per_class"] if p["n"]] == [
        tuple(r.values()) for r in per_class
    ]


def test_a_members_confusion_is_its_own_per_recording_vote(store, summary):
    run = store.run_names()[0]
    for trial, acc in summary["tasks"]["aec"]["member_accuracy"]["per_member"].items():
        assert confusion(store, run, "aec", trial)["accuracy"] == pytest.approx(acc)
    with pytest.raises(NotFound):
        confusion(store, run, "aec", "finetune-aec-d9-r1-triple")


def test_sql_is_confined_to_the_tables(store):
    with pytest.raises(UserError, match="query failed"):
        store.query("select * from read_csv('/etc/passwd')")
    with pytest.raises(UserError, match="query failed"):
        store.query("copy members to 'stolen.csv'")
    with pytest.raises(UserError, match="query failed.*nope"):
        store.query("select * from nope")


def test_not_a_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such RUN folder"):
        ResultsStore.load([str(tmp_path / "absent")])
    with pytest.raises(UserError, match="not a RUN folder"):
        ResultsStore.load([str(tmp_path)])


def test_a_run_mid_training_shows_each_member_state(live_run):
    store = ResultsStore.load([str(live_run)])
    rows = store.rows("select task, division, variant, state, stage, epoch, epochs, reason from members")
    got = {(r["task"], r["division"], r["variant"]): r for r in rows}
    assert len(got) == 8
    assert got[("asc", 1, "triple")]["state"] == "done"
    assert (got[("aec", 1, "triple")]["state"], got[("aec", 1, "triple")]["reason"]) == (
        "running",
        "finetune-aec: starting",
    )
    for task in ("asc", "aec"):
        r = got[(task, 2, "triple")]
        assert (r["state"], r["stage"], r["epoch"], r["epochs"]) == ("running", "mtl-ic", 4, 6)
        r = got[(task, 1, "quadruple")]
        assert r["state"] == "failed" and r["reason"].startswith("mtl-ic: no progress for ")
        assert 120 <= int(r["reason"].split()[-2]) < 180  # two hours (and the minutes since the fixture)
        r = got[(task, 2, "quadruple")]
        assert (r["state"], r["reason"]) == ("missing", "mtl-ic: queued in Tune")
    # the live trial's learning curve comes from Tune's per-epoch reports, all four epochs
    live = store.rows(
        "select epoch, loss from metrics where trial = 'mtl-ic-d2-r1-triple' and task = 'asc' "
        "and live order by epoch"
    )
    assert [(r["epoch"], r["loss"]) for r in live] == [(e, 6.0 - e) for e in range(4)]
    assert store.snapshots[0].live
    assert store.rows("select count(*) as n from ensemble")[0]["n"] == 0  # not reduced yet
    assert tables.table2(store)["tasks"]["asc"]["runs"] == {"LIVE": None}
    progress = tables.progress(store)["LIVE"]["members"]
    assert progress == {
        t: {"done": 1 if t == "asc" else 0, "running": 1 if t == "asc" else 2, "failed": 1, "missing": 1}
        for t in ("asc", "aec")
    }
    store.close()


def test_two_runs_side_by_side_get_distinct_names(finished_run, live_run):
    store = ResultsStore.load([str(finished_run), str(live_run), str(finished_run)])
    names = store.run_names()
    assert len(set(names)) == 3 and names[1] == "LIVE"
    t1 = tables.table1(store)
    row = next(r for r in t1["tasks"]["asc"] if r["experiment"] == "finetune-asc")
    assert set(row["runs"]) == set(names)
    assert row["runs"][names[0]] == row["runs"][names[2]] != row["runs"][names[1]]
    store.close()


def test_the_trained_runs_progress_records_match_its_results(finished_run):
    """Every trial of the session's ensemble left its progress record (one entry per epoch, the
    same metrics as metrics.jsonl, where it ran); the study and the grid recorded the members
    they trained as done."""
    import socket

    from raymtl import storage
    from raymtl.run import progress as RP

    fs, path = storage.resolve(str(finished_run))
    trials = sorted(p.name for p in (finished_run / "trials").iterdir())
    records = RP.read_trial_progress(fs, path, trials)
    # The study's 10 experiments x 2 divisions (triple), then the 2 quadruple members' 3 stages.
    assert set(records) == set(trials) and len(trials) == 26
    for name, record in records.items():
        lines = [
            json.loads(x) for x in (finished_run / "trials" / name / "metrics.jsonl").read_text().splitlines()
        ]
        assert list(record.epochs) == lines, name
        assert record.trial == name and record.started <= record.updated
        assert record.placement.host == socket.gethostname() and record.placement.node_id
        assert record.placement.device == "cpu"
    members = RP.read_members(fs, path)
    assert set(members) == {(d, 1, v) for d in (1, 2) for v in ("triple", "quadruple")}
    assert {m.state for m in members.values()} == {"done"}
