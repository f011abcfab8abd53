"""The paper's claims as paired comparisons: `paired` against hand-computed figures, and
`claims` on a hand-made RUN (result.json files and a summary.json written with the real
records, no Ray), as tests/ensemble/test_reduce.py does for the reduce."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raymtl import storage
from raymtl.config import PRESETS
from raymtl.results import claims as C
from raymtl.results import tables
from raymtl.results.format import report_text
from raymtl.results.store import ResultsStore
from raymtl.run import records
from raymtl.run.records import EnsembleSummary, MemberAccuracy, RunManifest, TaskSummary, TrialResult
from raymtl.train import trial as T

# t(0.975, df) for df = 1..5 (any statistics table): the 95 % interval's half-width factor.
T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706}


def test_paired_matches_the_hand_computed_interval():
    d = [0.02, 0.04, 0.03, 0.05]  # mean 0.035, sample std sqrt(0.0005/3)
    p = C.paired(d)
    half = T975[3] * math.sqrt(0.0005 / 3) / math.sqrt(4)
    assert (p.n, p.agree) == (4, 4)
    assert p.mean == pytest.approx(0.035)
    assert (p.low, p.high) == (pytest.approx(0.035 - half, abs=1e-4), pytest.approx(0.035 + half, abs=1e-4))
    assert p.verdict == C.HOLDS
    assert p.words() == f"holds in this run: +3.50 points, 95 % interval [{100 * (0.035 - half):+.2f}, " + (
        f"{100 * (0.035 + half):+.2f}], 4 of 4 pairs agree"
    )


def test_paired_verdicts():
    assert C.paired([-0.02, -0.04, -0.03]).verdict == C.CONTRADICTED
    mixed = C.paired([0.05, -0.04, 0.01])  # mean > 0 but the interval includes 0
    assert mixed.verdict == C.UNSUPPORTED and mixed.agree == 2 and mixed.low < 0 < mixed.high
    flat = C.paired([0.01, 0.01, 0.01])  # no spread: scipy's interval would be nan
    assert (flat.low, flat.high, flat.verdict) == (pytest.approx(0.01), pytest.approx(0.01), C.HOLDS)
    one = C.paired([0.2])
    assert (one.n, one.low, one.verdict) == (1, None, C.UNSUPPORTED)
    assert one.words() == "not supported by this run: one pair only (+20.00 points)"
    assert C.paired([]).words() == "no pairs in this run"


# ---------------------------------------------------------------- a hand-made RUN

DIVISIONS, REPEATS = (1, 2), (1, 2, 3)


def _accuracy(experiment: str, task: str, division: int, repeat: int, variant: str) -> float:
    """Made-up accuracies with known paired differences (triple variant):
    mtl - baseline = +0.05 everywhere (holds); mtl-ic - mtl = +0.01 * (-1)^(d+r) (mixed);
    finetune - mtl-ic = -0.03 + 0.001 * d (contradicted). Quadruple trials are 0.5 lower (and
    must not enter the triple comparisons)."""
    base = 0.5 + 0.01 * division + 0.002 * repeat - (0.5 if variant == "quadruple" else 0.0)
    return (
        base
        + {
            "baseline-asc": 0.0,
            "mtl": 0.05,
            "mtl-ic": 0.05 + 0.01 * (-1) ** (division + repeat),
            "finetune-asc": 0.05 + 0.01 * (-1) ** (division + repeat) - 0.03 + 0.001 * division,
        }[experiment]
    )


def _write_result(run: str, spec: T.TrialSpec, accuracy: dict[str, float]) -> None:
    fs, path = storage.resolve(run)
    result = TrialResult(
        trial=spec.name,
        experiment=spec.experiment,
        division=spec.division,
        repeat=spec.repeat,
        variant=spec.variant,
        preset="tiny",
        targets=tuple(accuracy),
        test_accuracy=accuracy,
        val_accuracy=accuracy,
        best_epoch={t: 1 for t in accuracy},
        epochs={t: 2 for t in accuracy},
        seed=0,
        stage1={t: None for t in accuracy},
        models={},
        n_classes={"asc": 15, "aec": 50},
        seconds=1.0,
        device="CPU",
        finished="2026-12-03T07:00:00+0000",
        raymtl_version="test",
    )
    records.write_result(fs, path, result)


@pytest.fixture(scope="module")
def study_run(tmp_path_factory) -> str:
    run = str(tmp_path_factory.mktemp("claims") / "RUN")
    fs, path = storage.resolve(run)
    records.write_manifest(fs, path, RunManifest(PRESETS["tiny"].to_dict(), "/nowhere", "", "test"))
    for e in ("baseline-asc", "mtl", "mtl-ic", "finetune-asc"):
        for d in DIVISIONS:
            for r in REPEATS:
                for v in ("triple", "quadruple"):
                    _write_result(run, T.TrialSpec(e, d, r, v), {"asc": _accuracy(e, "asc", d, r, v)})
    members = {
        T.TrialSpec("finetune-asc", d, r, v).name: _accuracy("finetune-asc", "asc", d, r, v)
        for d in DIVISIONS
        for r in REPEATS
        for v in ("triple", "quadruple")
    }
    asc = TaskSummary(
        n_planned=12,
        n_members=12,
        members=tuple(members),
        missing=(),
        missing_reasons={},
        ensemble_accuracy=0.56,
        n_recordings=10,
        n_patches=100,
        n_classes=15,
        member_accuracy=MemberAccuracy(float(np.mean(list(members.values()))), 0.1, 12, members),
        table1={},
        eight_member={},
        by_size=(),
    )
    plan = {"divisions": list(DIVISIONS), "repeats": list(REPEATS), "variants": ["triple", "quadruple"]}
    records.write_summary(
        fs, path, EnsembleSummary({**plan, "tasks": ["asc"]}, False, "", "", 0, {"asc": asc})
    )
    return run


def _claim(doc: dict, task: str, text: str) -> dict:
    (c,) = [c for c in doc["claims"] if (c["task"], c["claim"]) == (task, text)]
    (run,) = c["runs"].values()
    return run


def test_claims_pair_trials_by_division_and_repeat(study_run):
    store = ResultsStore.load([study_run])
    try:
        doc = C.claims(store, "triple")
    finally:
        store.close()
    assert len(doc["claims"]) == 12 and {c["task"] for c in doc["claims"]} == {"asc", "aec"}
    mtl = _claim(doc, "asc", "mtl > baseline-asc")
    assert (mtl["n"], mtl["agree"], mtl["verdict"]) == (6, 6, C.HOLDS)
    assert (mtl["mean"], mtl["low"], mtl["high"]) == (pytest.approx(0.05),) * 3

    ic = _claim(doc, "asc", "mtl-ic > mtl")  # +0.01 at d+r even, -0.01 at d+r odd: 3 of 6 agree
    diffs = [0.01 * (-1) ** (d + r) for d in DIVISIONS for r in REPEATS]
    half = T975[5] * np.std(diffs, ddof=1) / math.sqrt(6)
    assert (ic["n"], ic["agree"], ic["verdict"]) == (6, 3, C.UNSUPPORTED)
    assert ic["mean"] == pytest.approx(0.0, abs=1e-12)
    assert (ic["low"], ic["high"]) == (pytest.approx(-half, abs=1e-4), pytest.approx(half, abs=1e-4))

    ft = _claim(doc, "asc", "finetune-asc > mtl-ic")  # -0.029 at d1, -0.028 at d2
    assert (ft["n"], ft["agree"], ft["verdict"]) == (6, 0, C.CONTRADICTED)
    assert ft["mean"] == pytest.approx(-0.0285)

    # Experiments the run lacks, and a task it never reduced: no pairs, said so.
    assert _claim(doc, "asc", "direct-asc > transfer-asc")["words"] == "no pairs in this run"
    assert _claim(doc, "aec", "ensemble > finetune-aec")["n"] == 0

    # The ensemble (0.56) against each of its 12 members, both variants: the quadruple ones
    # (~0.05) all lose, the triple ones (0.53-0.56) mostly.
    ens = _claim(doc, "asc", "ensemble > finetune-asc")
    members = [
        _accuracy("finetune-asc", "asc", d, r, v)
        for d in DIVISIONS
        for r in REPEATS
        for v in ("triple", "quadruple")
    ]
    assert ens["n"] == 12 and ens["agree"] == sum(0.56 > a for a in members)
    assert ens["mean"] == pytest.approx(0.56 - np.mean(members))


def test_the_quadruple_variant_pairs_only_quadruple_trials(study_run):
    store = ResultsStore.load([study_run])
    try:
        quad = _claim(C.claims(store, "quadruple"), "asc", "mtl > baseline-asc")
        both = _claim(C.claims(store, "all"), "asc", "mtl > baseline-asc")
        text = report_text(tables.report(store, "triple"))
    finally:
        store.close()
    assert (quad["n"], both["n"]) == (6, 12)
    assert "  asc: mtl > baseline-asc (§III-C: MTL beats the single-task baseline)" in text
    assert "holds in this run: +5.00 points, 95 % interval [+5.00, +5.00], 6 of 6 pairs agree" in text
