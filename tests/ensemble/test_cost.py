"""The GPU-hour arithmetic: FLOPs per patch against a count of the layers by hand, and a trial's
FLOPs against its patch counts from the FEATURES manifest."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from raymtl.config import PRESETS
from raymtl.data import partitions
from raymtl.ensemble import cost as K
from raymtl.models import build_model
from raymtl.train.trial import TrialSpec

N_CLASSES = (("asc", 15), ("aec", 50))
TINY = PRESETS["tiny"]


def _layer_flops(net: nn.Module) -> float:
    """2 x multiply-adds of every convolution and linear layer, from their output shapes."""
    total = []

    def conv(m, inputs, out):
        total.append(2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])

    def linear(m, inputs, out):
        total.append(2 * out.numel() * m.in_features)

    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(conv)
        elif isinstance(m, nn.Linear):
            m.register_forward_hook(linear)
    with torch.no_grad():
        net.eval()(torch.zeros(1, 128, 128))
    return float(sum(total))


@pytest.mark.parametrize("kind", ["baseline", "mtl", "mtl-ic", "fusion"])
def test_forward_flops_count_every_layer(kind):
    net = build_model(kind, TINY.model, dict(N_CLASSES), task="asc")
    assert K.forward_flops(kind, TINY.model, "asc", N_CLASSES) == pytest.approx(_layer_flops(net), rel=1e-6)


def test_the_paper_networks_cost_what_the_docs_say():
    # docs/reproduce.md's arithmetic: 5.15 GMAC for one MTL-IC patch at width 1.
    assert K.forward_flops("mtl-ic", PRESETS["paper"].model, "asc", N_CLASSES) / 2e9 == pytest.approx(
        5.15, abs=0.01
    )


def test_trial_flops_follow_the_patch_counts(tiny_features):
    features = str(tiny_features)

    def n(dataset, split):
        return partitions.expected_patches(features, dataset, 1, split, "triple")

    f = K.forward_flops("baseline", TINY.model, "asc", N_CLASSES)
    train = min(n("tut2017", "train"), TINY.train.max_train_patches or 10**12)
    want = TINY.train.epochs_train_asc * f * (3 * train + n("tut2017", "validation")) + f * n(
        "tut2017", "test"
    )
    assert K.trial_flops(TrialSpec("baseline-asc", 1, 1, "triple"), TINY, features) == pytest.approx(want)

    # A fine-tune over frozen layers 1-15: one forward per patch of each split, once.
    f = K.forward_flops("fusion", TINY.model, "aec", N_CLASSES)
    want = f * sum(n("esc50", s) for s in ("train", "validation", "test"))
    assert K.trial_flops(TrialSpec("finetune-aec", 1, 1, "triple"), TINY, features) == pytest.approx(want)

    cost = K.estimate([TrialSpec(e, 1, 1, "triple") for e in K.MEMBER], TINY, features)
    assert list(cost.by_experiment) == list(K.MEMBER)
    assert cost.total == pytest.approx(cost.member["triple"])
    assert (
        cost.lines(K.ACCELERATORS["h100"])[-1] == f"  total: {K.ACCELERATORS['h100'].hours(cost.total):.1f}"
    )
