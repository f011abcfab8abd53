"""A fine-tune over a fully frozen trunk trains the same network whether layers 1-15 run every
step or their output (H15) is computed once (raymtl.train.frozen): step by step, the same
updates; validation, the same accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from raymtl import schema
from raymtl.config import ModelConfig
from raymtl.models import build_model
from raymtl.models.networks import trainable_parameters
from raymtl.train.frozen import compute_h15, precomputes
from raymtl.train.loop import _validate

N_CLASSES = {"asc": 15, "aec": 50}
CFG = ModelConfig(width=0.0625, fusion_units=16)


def fine_tune_net(stage1: dict, freeze_through: int = 15) -> torch.nn.Module:
    torch.manual_seed(7)  # the same fresh fusion and output layers every time
    net = build_model(
        "fusion",
        ModelConfig(width=CFG.width, fusion_units=16, freeze_through=freeze_through),
        N_CLASSES,
        task="asc",
    )
    net.load_stage1(stage1)
    return net


@pytest.fixture(scope="module")
def stage1() -> dict:
    torch.manual_seed(3)
    mtl = build_model("mtl-ic", CFG, N_CLASSES, task="asc")
    # Non-trivial BatchNorm statistics, as a trained stage-1 network has.
    mtl.train()
    with torch.no_grad():
        mtl(torch.randn(16, 128, 128) * 20 - 60)
    return mtl.state_dict()


@pytest.fixture(scope="module")
def batches() -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(3):
        labels = rng.integers(0, 4, size=6)  # few classes: recordings (one per label) get several patches
        out.append(
            {
                schema.X: (rng.normal(size=(6, 128, 128)) * 20 - 60).astype(np.float32),
                schema.TASK_LABEL["asc"]: labels,
                schema.CLIP: np.array([f"clip-of-{y}" for y in labels], dtype=object),
            }
        )
    return out


def test_only_a_fully_frozen_fusion_network_precomputes(stage1):
    assert precomputes(fine_tune_net(stage1, 15))
    assert not precomputes(fine_tune_net(stage1, 14))  # layer 15 trains: H15 changes
    assert not precomputes(build_model("mtl-ic", CFG, N_CLASSES, task="asc"))
    with pytest.raises(ValueError, match="layers 1-15 all frozen"):
        compute_h15(fine_tune_net(stage1, 10), [], "asc", torch.device("cpu"))


def test_training_the_head_on_h15_makes_the_same_updates(stage1, batches):
    whole, head = fine_tune_net(stage1), fine_tune_net(stage1)
    h15 = compute_h15(head, batches, "asc", torch.device("cpu"))
    assert (
        len(h15) == 18 and h15.h15["asc"].shape == (18, 15, 8, 8) and h15.h15["aec"].shape == (18, 50, 8, 8)
    )
    frozen_before = {k: v.clone() for k, v in whole.features.state_dict().items()}
    opts = [torch.optim.Adam(trainable_parameters(n), lr=1e-2) for n in (whole, head)]
    whole.train(), head.train()
    for i, batch in enumerate(batches):
        x = torch.as_tensor(batch[schema.X]).unsqueeze(1)
        y = torch.as_tensor(batch[schema.TASK_LABEL["asc"]])
        part = {t: h[6 * i : 6 * i + 6] for t, h in h15.h15.items()}
        for net, opt, out in ((whole, opts[0], lambda: whole(x)), (head, opts[1], lambda: head.head(part))):
            loss = F.cross_entropy(out()["asc"], y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for (name, a), (_, b) in zip(whole.named_parameters(), head.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    # The frozen layers (BatchNorm statistics included) did not move.
    for k, v in whole.features.state_dict().items():
        torch.testing.assert_close(v, frozen_before[k], msg=k)


def test_validation_on_h15_equals_validation_on_patches(stage1, batches):
    class Shard:  # what a Ray Train dataset shard gives `_validate`
        def iter_batches(self, batch_size, batch_format):
            assert batch_format == "numpy"
            return iter(batches)

    net = fine_tune_net(stage1)
    cpu = torch.device("cpu")
    h15 = compute_h15(net, batches, "asc", cpu, with_ids=True)
    assert list(h15.clips) == [c for b in batches for c in b[schema.CLIP]]
    streamed = _validate(net, Shard(), "asc", cpu, 6)
    assert _validate(net, None, "asc", cpu, 4, h15) == pytest.approx(streamed)


def test_an_epoch_visits_every_patch_once_in_a_seeded_order(stage1, batches):
    h15 = compute_h15(fine_tune_net(stage1), batches, "asc", torch.device("cpu"))
    labels = h15.labels.tolist()

    def epoch(seed):
        return [y for _, ys in h15.batches(5, torch.Generator().manual_seed(seed)) for y in ys.tolist()]

    assert sorted(epoch(1)) == sorted(labels) and [len(y) for _, y in h15.batches(5)] == [5, 5, 5, 3]
    assert epoch(1) == epoch(1) and epoch(1) != epoch(2)
    assert [y for _, ys in h15.batches(5) for y in ys.tolist()] == labels  # no generator: in order
