"""The ensemble plan and the late-fusion reduce, on hand-made RUN folders (no Ray).

Each fake member is a finetune trial folder written with the real helpers (`scoring.scores_table`,
`storage.write_json`) at trial.py's paths, with P = 3 classes and a handful of clips.
"""

from __future__ import annotations

import io
import itertools
import json
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from raymtl import schema, storage
from raymtl.ensemble import reduce as R
from raymtl.ensemble.plan import PAPER_PLAN, EnsemblePlan, read_plan, write_plan
from raymtl.errors import ConfigError, OutputExistsError, UserError
from raymtl.train import trial as T
from raymtl.train.evaluate import vote
from raymtl.train.scoring import SCORES, scores_table

P = 3
TUT, ESC = "tut2017", "esc50"
TUT_IMAGES = {"triple": ("left", "right", "sum"), "quadruple": ("left", "right", "sum", "diff")}


# ---------------------------------------------------------------- fake runs


def write_member(run, task, division, repeat, variant, rows, *, finished=True):
    """rows: [(dataset, clip, image, patch_index, label, scores)] -> the trial's scores + result."""
    spec = T.TrialSpec(f"finetune-{task}", division, repeat, variant)
    fs, _ = storage.resolve(str(run))
    tdir = T.trial_dir(str(run), spec)
    cols = list(zip(*rows))
    scored = {
        schema.DATASET: np.array(cols[0]),
        schema.CLIP: np.array(cols[1]),
        schema.IMAGE: np.array(cols[2]),
        schema.PATCH_INDEX: np.array(cols[3], dtype=np.int32),
        schema.LABEL: np.array(cols[4], dtype=np.int32),
        SCORES: np.array(cols[5], dtype=np.float32),
    }
    buf = io.BytesIO()
    pq.write_table(scores_table(spec.name, task, scored), buf)
    storage.write_bytes(fs, storage.join(tdir, T.SCORES), buf.getvalue())
    if finished:
        storage.write_json(fs, storage.join(tdir, T.RESULT), {"trial": spec.name, "test_accuracy": {}})
    return spec.name


def tut_rows(clips, variant, scores_of):
    """Every TUT test patch a member of `variant` scores; scores_of(clip, image, patch) -> (P,)."""
    return [
        (TUT, clip, image, p, label, scores_of(clip, image, p))
        for clip, label in clips.items()
        for image in TUT_IMAGES[variant]
        for p in range(2)
    ]


def esc_rows(clips, division, scores_of):
    """The ESC test patches of division k: the clips of fold k only."""
    return [
        (ESC, clip, "mono", p, label, scores_of(clip, "mono", p))
        for clip, (fold, label) in clips.items()
        if fold == division
        for p in range(3)
    ]


# A 4 x 3 x 2 run for both tasks with random softmax scores; fold 5 is in no division's test.
TUT_CLIPS = {f"a{i:03d}.wav": i % P for i in range(8)}
ESC_CLIPS = {f"{fold}-{i}-A-{i % P}.wav": (fold, i % P) for fold in range(1, 6) for i in range(3)}
FULL_PLAN = EnsemblePlan(
    divisions=[1, 2, 3, 4], repeats=[1, 2, 3], variants=["triple", "quadruple"], tasks=["asc", "aec"]
)


def random_scores(rng):
    # Random softmax vectors: members disagree, so every subset has its own accuracy.
    def scores_of(clip, image, p):
        return rng.dirichlet(np.ones(P) * 0.7)

    return scores_of


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "full"
    rng = np.random.default_rng(7)
    members = {}  # (task, division, repeat, variant) -> rows
    for task in FULL_PLAN.tasks:
        for spec in FULL_PLAN.members(task):
            key = (task, spec.division, spec.repeat, spec.variant)
            if task == "asc":
                rows = tut_rows(TUT_CLIPS, spec.variant, random_scores(rng))
            else:
                rows = esc_rows(ESC_CLIPS, spec.division, random_scores(rng))
            write_member(run, task, spec.division, spec.repeat, spec.variant, rows)
            members[key] = rows
    summary = R.reduce_run(str(run), plan=FULL_PLAN)
    return run, summary, members


def reference_accuracy(members, task, keys):
    """Independent fusion: sum per patch key in plain Python, then the per-recording vote."""
    summed = defaultdict(lambda: np.zeros(P))
    label = {}
    for key in keys:
        for ds, clip, image, p, y, s in members[(task, *key)]:
            summed[(ds, clip, image, p)] += s
            label[(ds, clip)] = y
    patch_keys = sorted(summed)
    clips = np.array([f"{k[0]}/{k[1]}" for k in patch_keys])
    labels = np.array([label[k[:2]] for k in patch_keys])
    return vote(clips, np.stack([summed[k] for k in patch_keys]), labels).accuracy


def read_predictions(run):
    return pq.read_table(str(run / "ensemble" / R.PREDICTIONS_FILE))


# ---------------------------------------------------------------- fusion


def test_ensemble_vote_sums_scores_before_the_argmax_and_can_differ_from_every_member(tmp_path):
    plan = EnsemblePlan([1], [1, 2, 3], ["triple"], ["asc"])
    # Each member alone votes 0, 1 or 1 on every patch of the label-2 recording; the summed
    # scores [0.7, 1.1, 1.2] make every fused patch (and so the recording) vote 2.
    member_scores = {1: [0.6, 0.0, 0.4], 2: [0.0, 0.6, 0.4], 3: [0.1, 0.5, 0.4]}
    for r, s in member_scores.items():
        write_member(tmp_path, "asc", 1, r, "triple", tut_rows({"rec.wav": 2}, "triple", lambda *_, s=s: s))
    summary = R.reduce_run(str(tmp_path), plan=plan)
    asc = summary["tasks"]["asc"]
    assert asc["member_accuracy"]["per_member"] == {
        "finetune-asc-d1-r1-triple": 0.0,
        "finetune-asc-d1-r2-triple": 0.0,
        "finetune-asc-d1-r3-triple": 0.0,
    }
    assert asc["ensemble_accuracy"] == 1.0
    row = read_predictions(tmp_path).to_pylist()[0]
    assert (row["clip"], row["label"], row["prediction"], row["correct"]) == ("rec.wav", 2, 2, True)
    assert row["votes"] == [0, 0, 6]  # 3 images x 2 patches, all fused to class 2
    np.testing.assert_allclose(row["summed_scores"], [6 * 0.7, 6 * 1.1, 6 * 1.2], rtol=1e-6)
    assert row["n_members"] == 3


def test_esc_clips_are_fused_from_their_own_division_only_and_aec_covers_all_folds(tmp_path):
    plan = EnsemblePlan([1, 2, 3, 4], [1], ["triple", "quadruple"], ["aec"])
    clips = {f"{fold}-x.wav": (fold, 1) for fold in (1, 2, 3, 4)}
    right, wrong = [0.2, 0.7, 0.1], [0.7, 0.2, 0.1]
    for d in plan.divisions:
        for v in plan.variants:
            s = wrong if d == 1 else right  # division 1's models get their fold wrong
            write_member(tmp_path, "aec", d, 1, v, esc_rows(clips, d, lambda *_, s=s: s))
    summary = R.reduce_run(str(tmp_path), plan=plan)
    aec = summary["tasks"]["aec"]
    assert aec["n_recordings"] == 4 and aec["ensemble_accuracy"] == 0.75
    rows = {r["clip"]: r for r in read_predictions(tmp_path).to_pylist()}
    assert sorted(rows) == ["1-x.wav", "2-x.wav", "3-x.wav", "4-x.wav"]
    for clip, row in rows.items():
        assert row["n_members"] == 2  # the triple and quadruple model of the clip's division
        expected = np.array(wrong if clip.startswith("1-") else right) * 2 * 3  # 2 members x 3 patches
        np.testing.assert_allclose(row["summed_scores"], expected, rtol=1e-6)
    assert [rows[c]["correct"] for c in sorted(rows)] == [False, True, True, True]


def test_diff_patches_get_only_the_quadruple_members_scores(tmp_path):
    plan = EnsemblePlan([1], [1], ["triple", "quadruple"], ["asc"])
    triple = {"left": [0.1, 0.8, 0.1], "right": [0.8, 0.1, 0.1], "sum": [0.1, 0.3, 0.6]}
    quadruple = {
        "left": [0.0, 1.0, 0.0],
        "right": [0.0, 1.0, 0.0],
        "sum": [0.0, 1.0, 0.0],
        "diff": [0.0, 0.0, 1.0],
    }
    write_member(
        tmp_path, "asc", 1, 1, "triple", tut_rows({"r.wav": 1}, "triple", lambda c, im, p: triple[im])
    )
    write_member(
        tmp_path,
        "asc",
        1,
        1,
        "quadruple",
        tut_rows({"r.wav": 1}, "quadruple", lambda c, im, p: quadruple[im]),
    )
    summary = R.reduce_run(str(tmp_path), plan=plan)
    asc = summary["tasks"]["asc"]
    assert asc["n_patches"] == 8  # 4 images x 2 patches
    row = read_predictions(tmp_path).to_pylist()[0]
    # left [.1,1.8,.1], right [.8,1.1,.1], sum [.1,1.3,.6] -> 1; diff (quadruple only) [0,0,1] -> 2.
    assert row["votes"] == [0, 6, 2]
    np.testing.assert_allclose(row["summed_scores"], [2 * 1.0, 2 * 4.2, 2 * 1.8], rtol=1e-6)
    assert row["prediction"] == 1 and row["n_members"] == 2
    # The triple model alone votes on its own 6 patches (a 2-2-2 tie that the summed score breaks
    # towards class 1); counting the diff patches it never scored would tip it to class 0.
    assert asc["by_size"][0]["groups"] == 1 and asc["by_size"][0]["min"] == 1.0


def test_full_run_matches_an_independent_fusion(full_run):
    run, summary, members = full_run
    for task in FULL_PLAN.tasks:
        everyone = [(s.division, s.repeat, s.variant) for s in FULL_PLAN.members(task)]
        assert summary["tasks"][task]["ensemble_accuracy"] == pytest.approx(
            reference_accuracy(members, task, everyone)
        )
    preds = read_predictions(run).to_pandas()
    aec = preds[preds["task"] == "aec"]
    # Fold 5 is nobody's test fold; each other clip is scored by its division's 3 x 2 models.
    assert sorted(aec["clip"]) == sorted(c for c, (fold, _) in ESC_CLIPS.items() if fold <= 4)
    assert set(aec["n_members"]) == {6}
    asc = preds[preds["task"] == "asc"]
    assert sorted(asc["clip"]) == sorted(TUT_CLIPS) and set(asc["n_members"]) == {24}
    assert summary["tasks"]["aec"]["n_recordings"] == 12


# ---------------------------------------------------------------- missing members


def small_plan_with_a_missing_member(run):
    plan = EnsemblePlan([1, 2, 3], [1], ["triple"], ["asc"])
    clips = {"a.wav": 0, "b.wav": 1}
    scores = lambda c, im, p: [0.8, 0.1, 0.1] if c == "a.wav" else [0.1, 0.8, 0.1]  # noqa: E731
    write_member(run, "asc", 1, 1, "triple", tut_rows(clips, "triple", scores))
    write_member(run, "asc", 2, 1, "triple", tut_rows(clips, "triple", scores), finished=False)
    # division 3 never started
    return plan


def test_missing_members_refuse_to_fuse_and_name_every_one(tmp_path):
    plan = small_plan_with_a_missing_member(tmp_path)
    with pytest.raises(UserError) as err:
        R.reduce_run(str(tmp_path), plan=plan)
    msg = str(err.value)
    assert "2 of 3 asc members missing" in msg
    assert "finetune-asc-d2-r1-triple" in msg and "finetune-asc-d3-r1-triple" in msg
    assert "finetune-asc-d1-r1-triple" not in msg
    assert "--allow-partial" in msg
    assert not (tmp_path / "ensemble" / R.SUMMARY_FILE).exists()


def test_a_member_without_scores_for_the_task_is_missing(tmp_path):
    plan = EnsemblePlan([1], [1], ["triple"], ["asc", "aec"])
    write_member(tmp_path, "asc", 1, 1, "triple", tut_rows({"a.wav": 0}, "triple", lambda *_: [1.0, 0, 0]))
    write_member(tmp_path, "aec", 1, 1, "triple", tut_rows({"a.wav": 0}, "triple", lambda *_: [1.0, 0, 0]))
    # A finished aec trial whose scores table has no aec rows.
    fs, _ = storage.resolve(str(tmp_path))
    spec = T.TrialSpec("finetune-aec", 1, 1, "triple")
    path = storage.join(T.trial_dir(str(tmp_path), spec), T.SCORES)
    table = pq.read_table(path)
    buf = io.BytesIO()
    pq.write_table(table.slice(0, 0), buf)
    storage.write_bytes(fs, path, buf.getvalue())
    with pytest.raises(
        UserError, match=r"1 of 1 aec members missing: finetune-aec-d1-r1-triple \(no aec scores\)"
    ):
        R.reduce_run(str(tmp_path), plan=plan)


def test_allow_partial_fuses_the_members_present_and_lists_the_missing(tmp_path):
    plan = small_plan_with_a_missing_member(tmp_path)
    summary = R.reduce_run(str(tmp_path), plan=plan, allow_partial=True)
    asc = summary["tasks"]["asc"]
    assert summary["allow_partial"] is True
    assert asc["members"] == ["finetune-asc-d1-r1-triple"] and asc["n_members"] == 1
    assert asc["missing"] == ["finetune-asc-d2-r1-triple", "finetune-asc-d3-r1-triple"]
    assert asc["missing_reasons"]["finetune-asc-d2-r1-triple"] == "not finished"
    assert asc["ensemble_accuracy"] == 1.0 and asc["n_recordings"] == 2
    assert set(read_predictions(tmp_path).column("n_members").to_pylist()) == {1}


def test_allow_partial_reports_a_task_without_members_and_refuses_an_empty_run(tmp_path):
    plan = EnsemblePlan([1], [1], ["triple"], ["asc", "aec"])
    with pytest.raises(UserError, match="no ensemble member has finished"):
        R.reduce_run(str(tmp_path), plan=plan, allow_partial=True)
    write_member(
        tmp_path, "asc", 1, 1, "triple", tut_rows({"a.wav": 0}, "triple", lambda *_: [0.9, 0.05, 0.05])
    )
    summary = R.reduce_run(str(tmp_path), plan=plan, allow_partial=True)
    aec = summary["tasks"]["aec"]
    assert aec["n_members"] == 0 and aec["ensemble_accuracy"] is None
    assert aec["missing"] == ["finetune-aec-d1-r1-triple"] and "nothing fused" in aec["note"]
    assert summary["tasks"]["asc"]["ensemble_accuracy"] == 1.0
    assert read_predictions(tmp_path).column("task").to_pylist() == ["asc"]


# ---------------------------------------------------------------- subsets


def test_eight_member_ensembles_are_every_triple_and_quadruple_repeat_pairing(full_run):
    _, summary, members = full_run
    for task in FULL_PLAN.tasks:
        eight = summary["tasks"][task]["eight_member"]
        combos = eight["combinations"]
        assert len(combos) == 9
        assert {(c["triple_repeat"], c["quadruple_repeat"]) for c in combos} == set(
            itertools.product([1, 2, 3], repeat=2)
        )
        assert all(c["members"] == 8 for c in combos)
        assert eight["mean"] == pytest.approx(np.mean([c["accuracy"] for c in combos]))
        for c in combos[:3]:
            keys = [(d, c["triple_repeat"], "triple") for d in FULL_PLAN.divisions]
            keys += [(d, c["quadruple_repeat"], "quadruple") for d in FULL_PLAN.divisions]
            assert c["accuracy"] == pytest.approx(reference_accuracy(members, task, keys))


def test_eight_member_ensembles_are_skipped_with_a_note_when_a_variant_is_absent(tmp_path):
    plan = EnsemblePlan([1], [1, 2], ["triple"], ["asc"])
    for r in plan.repeats:
        write_member(
            tmp_path, "asc", 1, r, "triple", tut_rows({"a.wav": 0}, "triple", lambda *_: [0.9, 0.05, 0.05])
        )
    eight = R.reduce_run(str(tmp_path), plan=plan)["tasks"]["asc"]["eight_member"]
    assert eight["combinations"] == [] and eight["mean"] is None and "quadruple" in eight["note"]


def test_accuracy_against_ensemble_size(full_run):
    _, summary, members = full_run
    for task in FULL_PLAN.tasks:
        t = summary["tasks"][task]
        by_size = t["by_size"]
        assert [b["groups"] for b in by_size] == [1, 2, 3, 4, 5, 6]
        assert [b["members"] for b in by_size] == [4, 8, 12, 16, 20, 24]
        assert [b["combinations"] for b in by_size] == [6, 15, 20, 15, 6, 1]
        assert all(b["min"] <= b["mean"] <= b["max"] for b in by_size)
        assert by_size[-1]["mean"] == t["ensemble_accuracy"]
        # One group = the 4 division models of one (repeat, variant); check each against the reference.
        singles = [
            reference_accuracy(members, task, [(d, r, v) for d in FULL_PLAN.divisions])
            for r, v in FULL_PLAN.groups()
        ]
        assert by_size[0]["mean"] == pytest.approx(np.mean(singles))
        assert (by_size[0]["min"], by_size[0]["max"]) == pytest.approx((min(singles), max(singles)))


def test_combinations_are_capped_deterministically():
    sample = R._combinations(12, 6, 50)  # C(12, 6) = 924
    assert len(sample) == 50 and len(set(sample)) == 50
    assert all(len(c) == 6 and list(c) == sorted(c) for c in sample)
    assert sample == R._combinations(12, 6, 50)
    assert R._combinations(6, 2, 50) == list(itertools.combinations(range(6), 2))


def test_member_accuracy_and_table1(full_run):
    _, summary, members = full_run
    t = summary["tasks"]["asc"]
    per_member = t["member_accuracy"]["per_member"]
    assert len(per_member) == 24 == t["member_accuracy"]["n"]
    for spec in FULL_PLAN.members("asc")[:4]:
        own = reference_accuracy(members, "asc", [(spec.division, spec.repeat, spec.variant)])
        assert per_member[spec.name] == pytest.approx(own)
    values = np.array(list(per_member.values()))
    assert t["member_accuracy"]["mean"] == pytest.approx(values.mean())
    assert t["member_accuracy"]["std"] == pytest.approx(values.std(ddof=0))
    triple = t["table1"]["triple"]
    repeat_means = [
        np.mean([per_member[f"finetune-asc-d{d}-r{r}-triple"] for d in (1, 2, 3, 4)]) for r in (1, 2, 3)
    ]
    assert triple["per_repeat"] == pytest.approx(
        {"1": repeat_means[0], "2": repeat_means[1], "3": repeat_means[2]}
    )
    assert (triple["mean"], triple["std"]) == pytest.approx((np.mean(repeat_means), np.std(repeat_means)))
    assert triple["n_repeats"] == 3
    all_means = [np.mean([v for k, v in per_member.items() if f"-r{r}-" in k]) for r in (1, 2, 3)]
    assert t["table1"]["all"]["mean"] == pytest.approx(np.mean(all_means))
    assert set(t["table1"]) == {"triple", "quadruple", "all"}


# ---------------------------------------------------------------- outputs


def test_summary_and_predictions_files(full_run):
    run, summary, _ = full_run
    on_disk = json.loads((run / "ensemble" / R.SUMMARY_FILE).read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert {"plan", "allow_partial", "created", "std", "tasks"} <= set(on_disk)
    assert on_disk["plan"] == FULL_PLAN.to_dict() and on_disk["allow_partial"] is False
    for task in ("asc", "aec"):
        t = on_disk["tasks"][task]
        assert {
            "n_members",
            "members",
            "missing",
            "ensemble_accuracy",
            "member_accuracy",
            "table1",
            "eight_member",
            "by_size",
            "n_recordings",
        } <= set(t)
        assert t["n_members"] == 24 and len(t["members"]) == 24 and t["missing"] == []
        accuracies = [t["ensemble_accuracy"], t["member_accuracy"]["mean"], t["eight_member"]["mean"]]
        accuracies += list(t["member_accuracy"]["per_member"].values())
        accuracies += [c["accuracy"] for c in t["eight_member"]["combinations"]]
        accuracies += [b[k] for b in t["by_size"] for k in ("mean", "min", "max")]
        assert all(0.0 <= a <= 1.0 for a in accuracies)
    preds = read_predictions(run)
    assert tuple(preds.column_names) == R.PREDICTION_COLUMNS
    assert preds.num_rows == len(TUT_CLIPS) + 12
    assert preds.schema.field(R.SUMMED_SCORES).type == pa.list_(pa.float64())
    correct = preds.column(R.CORRECT).to_numpy(zero_copy_only=False)
    same = np.equal(preds.column(R.PREDICTION).to_numpy(), preds.column(schema.LABEL).to_numpy())
    assert (correct == same).all()
    asc = preds.filter(pc.equal(preds.column("task"), "asc"))
    assert (
        np.mean(asc.column(R.CORRECT).to_numpy(zero_copy_only=False))
        == on_disk["tasks"]["asc"]["ensemble_accuracy"]
    )


def test_reduce_reads_the_recorded_plan(tmp_path):
    plan = EnsemblePlan([2], [1], ["quadruple"], ["asc"])
    write_plan(str(tmp_path), plan, preset="tiny")
    write_member(
        tmp_path, "asc", 2, 1, "quadruple", tut_rows({"a.wav": 0}, "quadruple", lambda *_: [0.9, 0.05, 0.05])
    )
    summary = R.reduce_run(str(tmp_path))  # the paper matrix would miss 23 members
    assert summary["plan"] == plan.to_dict()
    assert summary["tasks"]["asc"]["members"] == ["finetune-asc-d2-r1-quadruple"]


# ---------------------------------------------------------------- plan


def test_plan_round_trip_and_members():
    plan = EnsemblePlan(divisions=[3, 1], repeats=[2, 1], variants=["quadruple", "triple"], tasks=["aec"])
    assert plan.divisions == (1, 3) and plan.variants == ("triple", "quadruple")
    assert EnsemblePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert EnsemblePlan.from_dict({**plan.to_dict(), "preset": "paper"}) == plan
    names = [s.name for s in plan.members("aec")]
    assert len(names) == 8 and names[0] == "finetune-aec-d1-r1-triple"
    assert all(s.experiment == "finetune-aec" for s in plan.members("aec"))
    assert len(PAPER_PLAN.members("asc")) == 24 and len(PAPER_PLAN.groups()) == 6
    with pytest.raises(ConfigError, match="not in this plan"):
        plan.members("asc")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"divisions": [5]}, "divisions"),
        ({"divisions": []}, "must not be empty"),
        ({"divisions": [1, 1]}, "repeats 1"),
        ({"divisions": [True]}, "integers"),
        ({"repeats": [0]}, "positive"),
        ({"repeats": "3"}, "must be a list"),
        ({"variants": ["double"]}, "unknown variants"),
        ({"tasks": ["sed"]}, "unknown tasks"),
        ({"colour": "red"}, "unknown ensemble plan keys"),
    ],
)
def test_plan_validation_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        EnsemblePlan.from_dict({**PAPER_PLAN.to_dict(), **values})


def test_plan_file_round_trip_and_replacement(tmp_path):
    run = str(tmp_path)
    assert read_plan(run) == PAPER_PLAN  # no plan.json yet
    small = EnsemblePlan([1, 2], [1], ["triple"], ["asc"])
    assert write_plan(run, small, preset="tiny") is True
    recorded = json.loads((tmp_path / "ensemble" / "plan.json").read_text())
    assert recorded["preset"] == "tiny" and recorded["divisions"] == [1, 2]
    assert read_plan(run) == small
    assert write_plan(run, EnsemblePlan([2, 1], [1], ["triple"], ["asc"])) is False  # same matrix
    with pytest.raises(OutputExistsError, match="different ensemble"):
        write_plan(run, PAPER_PLAN)
    assert read_plan(run) == small
    assert write_plan(run, PAPER_PLAN, replace=True) is True
    assert read_plan(run) == PAPER_PLAN


def test_a_broken_plan_file_names_the_file(tmp_path):
    (tmp_path / "ensemble").mkdir()
    (tmp_path / "ensemble" / "plan.json").write_text(
        '{"divisions": [9], "repeats": [1], "variants": ["triple"], "tasks": ["asc"]}'
    )
    with pytest.raises(UserError, match="plan.json"):
        read_plan(str(tmp_path))
