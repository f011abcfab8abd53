"""The study's plan: its matrix, its chains and their Train run names (no Ray)."""

from __future__ import annotations

import json

import pytest

from raymtl.ensemble import study as S
from raymtl.ensemble.grid import chain_name
from raymtl.errors import ConfigError
from raymtl.train.experiments import EXPERIMENTS


def test_the_paper_study_is_ten_experiments_in_six_chains_per_coordinate():
    plan = S.StudyPlan(divisions=[4, 1, 2, 3], repeats=[1, 2, 3])
    assert plan.divisions == (1, 2, 3, 4) and plan.variants == ("triple",)
    assert plan.experiments == tuple(EXPERIMENTS)
    chains = plan.chains()
    assert len(chains) == 6 * 4 * 3 and plan.n_trials() == 10 * 4 * 3
    assert sum(len(c["experiments"]) for c in chains) == plan.n_trials()
    first = chains[:6]
    assert [chain_name(c) for c in first] == [
        "baseline-asc-d1-r1-triple",
        "baseline-aec-d1-r1-triple",
        "mtl-d1-r1-triple",
        "member-d1-r1-triple",  # the ensemble member's Train run: either command resumes the other's
        "direct-asc+transfer-aec-d1-r1-triple",
        "direct-aec+transfer-asc-d1-r1-triple",
    ]
    assert [c["member"] for c in first] == [False, False, False, True, False, False]


def test_experiments_and_prerequisites():
    plan = S.StudyPlan(
        divisions=[1],
        repeats=[1],
        variants=["quadruple", "triple"],
        experiments=S.parse_experiments("transfer-asc,baseline-aec"),
    )
    assert plan.experiments == ("baseline-aec", "direct-aec", "transfer-asc")
    assert plan.variants == ("triple", "quadruple")
    assert [c["experiments"] for c in plan.chains()[:2]] == [["baseline-aec"], ["direct-aec", "transfer-asc"]]
    assert json.loads(json.dumps(plan.to_dict()))["experiments"] == [
        "baseline-aec",
        "direct-aec",
        "transfer-asc",
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"divisions": [5], "repeats": [1]}, "divisions must be among"),
        ({"divisions": [1], "repeats": [0]}, "repeats must be positive"),
        ({"divisions": [1], "repeats": [1], "variants": ["double"]}, "unknown variants"),
        ({"divisions": [1], "repeats": [1], "experiments": []}, "experiments must be a non-empty list"),
        ({"divisions": [1], "repeats": [1], "experiments": ["mtl", "nope"]}, "unknown experiment 'nope'"),
    ],
)
def test_a_bad_plan_is_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        S.StudyPlan(**kwargs)


def test_unknown_experiments_on_the_command_line_are_named():
    with pytest.raises(ConfigError, match=r"unknown experiments \['finetune'\]"):
        S.parse_experiments("mtl,finetune")
    assert S.parse_experiments(None) == tuple(EXPERIMENTS)


def test_chains_are_packed_per_coordinate_only_when_they_would_queue_on_a_fixed_machine():
    from raymtl.ensemble.grid import pack_by_coordinates

    chains = S.StudyPlan(divisions=[1, 2], repeats=[1]).chains()  # 12 chains
    assert pack_by_coordinates(chains, max_concurrent=12, autoscaling=False) == chains
    assert pack_by_coordinates(chains, max_concurrent=2, autoscaling=True) == chains  # nodes can be added
    packed = pack_by_coordinates(chains, max_concurrent=2, autoscaling=False)
    assert [(u["division"], u["member"]) for u in packed] == [(1, True), (2, True)]
    # Each coordinate's trials in the chains' order: every fine-tune after what it starts from.
    assert packed[0]["experiments"] == [e for c in chains[:6] for e in c["experiments"]]
    assert chain_name(packed[0]) == "+".join(EXPERIMENTS_IN_CHAIN_ORDER) + "-d1-r1-triple"
    assert chains[0]["experiments"] == ["baseline-asc"]  # the input is left as it was


EXPERIMENTS_IN_CHAIN_ORDER = [
    "baseline-asc",
    "baseline-aec",
    "mtl",
    "mtl-ic",
    "finetune-asc",
    "finetune-aec",
    "direct-asc",
    "transfer-aec",
    "direct-aec",
    "transfer-asc",
]
