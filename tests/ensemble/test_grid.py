"""The ensemble grid on local Ray: the issue's must-show run plus reduce."""

from __future__ import annotations

import json

import pytest

from tests.conftest import add_span


def test_small_ensemble_then_reduce(tiny_ensemble):
    """`raymtl ensemble --divisions 1,2 --repeats 1 --variants triple,quadruple --tasks asc,aec`
    (the tests' grid preset) then `raymtl reduce`: 4 members per task, accuracies in [0, 1]. The
    triple members were already trained by `raymtl study` in this RUN and are not trained again."""
    run, code, out, reduce_code, before = tiny_ensemble
    if before is None:
        pytest.fail("RAYMTL_TEST_ENSEMBLE is set: this test checks the training itself")
    assert code == 0, out
    assert "4 members" in out and "2 already done, 2 trained now" in out
    assert (run / "trials" / "mtl-ic-d1-r1-triple" / "result.json").stat().st_mtime_ns == before
    for d in (1, 2):
        for v in ("triple", "quadruple"):
            for e in ("mtl-ic", "finetune-asc", "finetune-aec"):
                assert (run / "trials" / f"{e}-d{d}-r1-{v}" / "result.json").is_file()

    assert reduce_code == 0
    summary = json.loads((run / "ensemble" / "summary.json").read_text())
    for task in ("asc", "aec"):
        s = summary["tasks"][task]
        assert s["n_members"] == 4 and not s["missing"]
        assert 0 <= s["ensemble_accuracy"] <= 1
        assert all(0 <= a <= 1 for a in s["member_accuracy"]["per_member"].values())
    assert (run / "ensemble" / "predictions.parquet").is_file()
    assert "asc" in out and "ensemble" in out


def test_the_members_trained_now_share_the_machine_at_half_a_cpu_each(tiny_ensemble):
    """The plan of tests/cluster/test_autoscaling.py on the test session's single 2-CPU
    instance, which has no node types to add: the two members the ensemble trained ran at once,
    each Train worker on half a CPU, on this machine's CPU."""
    run, _, _, _, before = tiny_ensemble
    if before is None:
        pytest.fail("RAYMTL_TEST_ENSEMBLE is set: this test checks the training itself")
    spans = {}
    for d in (1, 2):
        for e in ("mtl-ic", "finetune-asc", "finetune-aec"):
            r = json.loads((run / "trials" / f"{e}-d{d}-r1-quadruple" / "result.json").read_text())
            assert r["device"] == "CPU"
            assert [p["resources"].get("CPU") for p in r["placements"]] == [0.5], r["placements"]
            add_span(spans, d, r)
    (a0, a1), (b0, b1) = spans.values()
    assert max(a0, b0) < min(a1, b1), f"the members ran one after the other: {spans}"


def test_a_two_cpu_machine_trains_two_members_at_once_by_default(ray_session):
    """CPU-only, 2 CPUs (the test session's Ray): half a CPU per Train worker, two members at
    once, one CPU left for the Ray Data tasks; GPU trials keep one CPU per worker."""
    import dataclasses

    from raymtl.ensemble.grid import GridOptions, _auto_cpus_per_trial, _default_concurrency

    assert _auto_cpus_per_trial(GridOptions()) == 0.5
    assert _default_concurrency(dataclasses.replace(GridOptions(), cpus_per_trial=0.5)) == 2
    assert _default_concurrency(dataclasses.replace(GridOptions(), cpus_per_trial=1.0)) == 1
    assert _auto_cpus_per_trial(GridOptions(gpus_per_trial=1.0)) == 1.0
