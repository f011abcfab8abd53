"""Chains of experiments: which trials one Train run trains, in dependency order."""

from __future__ import annotations

import pytest

from raymtl.errors import ConfigError
from raymtl.train import chains as C
from raymtl.train.experiments import EXPERIMENTS, get_experiment

ALL_CHAINS = [
    ("baseline-asc",),
    ("baseline-aec",),
    ("mtl",),
    ("mtl-ic", "finetune-asc", "finetune-aec"),
    ("direct-asc", "transfer-aec"),
    ("direct-aec", "transfer-asc"),
]


def test_all_ten_experiments_make_six_chains():
    chains = C.chains(EXPERIMENTS)
    assert chains == ALL_CHAINS
    assert sorted(e for c in chains for e in c) == sorted(EXPERIMENTS)  # each once


def test_every_fine_tune_comes_after_what_it_starts_from():
    for chain in C.chains(EXPERIMENTS):
        for i, e in enumerate(chain):
            parent = get_experiment(e).init_from
            assert (parent is None) == (i == 0)
            assert parent is None or parent in chain[:i]


def test_a_selection_adds_its_prerequisites():
    assert C.chains(["transfer-aec"]) == [("direct-asc", "transfer-aec")]
    assert C.chains(["finetune-aec", "baseline-asc"]) == [("baseline-asc",), ("mtl-ic", "finetune-aec")]
    assert C.with_prerequisites(["transfer-asc", "mtl"]) == ("mtl", "direct-aec", "transfer-asc")
    assert C.root("transfer-asc") == "direct-aec" and C.root("mtl") == "mtl"


def test_an_unknown_experiment_is_refused():
    with pytest.raises(ConfigError, match="unknown experiment 'finetune'"):
        C.chains(["finetune"])
