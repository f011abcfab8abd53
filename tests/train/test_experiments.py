"""The experiment registry and trial naming."""

from __future__ import annotations

import pytest

from raymtl.errors import ConfigError
from raymtl.train.experiments import EXPERIMENTS, get_experiment
from raymtl.train.trial import TrialSpec


def test_the_ten_experiments_of_the_paper():
    assert set(EXPERIMENTS) == {
        "baseline-asc",
        "baseline-aec",
        "mtl",
        "mtl-ic",
        "finetune-asc",
        "finetune-aec",
        "direct-asc",
        "direct-aec",
        "transfer-asc",
        "transfer-aec",
    }
    ft = get_experiment("finetune-aec")
    assert (ft.model_kind, ft.init_from, ft.stage1_task("aec"), ft.freeze, ft.mixup) == (
        "fusion",
        "mtl-ic",
        "aec",
        True,
        False,
    )
    tr = get_experiment("transfer-asc")
    assert (tr.init_from, tr.stage1_task("asc")) == ("direct-aec", "aec")
    assert get_experiment("mtl-ic").targets == ("asc", "aec") and get_experiment("mtl-ic").mixup
    assert not get_experiment("direct-asc").freeze and get_experiment("direct-asc").init_from is None


def test_trial_names_and_seeds_are_stable():
    spec = TrialSpec("mtl-ic", 2, 3, "quadruple")
    assert spec.name == "mtl-ic-d2-r3-quadruple"
    assert spec.seed(0) == TrialSpec("mtl-ic", 2, 3, "quadruple").seed(0)
    assert spec.seed(0) != spec.seed(1) != TrialSpec("mtl-ic", 2, 2, "quadruple").seed(1)
    assert spec.with_experiment("finetune-asc").name == "finetune-asc-d2-r3-quadruple"


@pytest.mark.parametrize(
    "args,match",
    [
        (("nope", 1, 1, "triple"), "unknown experiment 'nope'; valid: baseline-asc"),
        (("mtl", 5, 1, "triple"), "division"),
        (("mtl", 1, 0, "triple"), "repeat"),
        (("mtl", 1, 1, "double"), "unknown variant 'double'"),
    ],
)
def test_bad_trial_specs_raise(args, match):
    with pytest.raises(ConfigError, match=match):
        TrialSpec(*args)
