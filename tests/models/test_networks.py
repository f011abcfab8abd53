"""The networks: shapes, sizes, the inter-connection, the fusion network and its freezing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from raymtl.config import ModelConfig
from raymtl.errors import ConfigError
from raymtl.models import KINDS, build_model, count_parameters, trainable_parameters

# Small networks for everything that runs a forward pass: 4..32 channels, 16 fusion units.
SMALL = ModelConfig(width=1 / 16, fusion_units=16)
PAPER_CLASSES = {"asc": 15, "aec": 50}
ESC10_CLASSES = {"asc": 15, "aec": 10}


def _patches(batch: int = 2, seed: int = 0) -> torch.Tensor:
    # Log-mel dB values are roughly in -100..+40.
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 128, 128, generator=g) * 20 - 40  # (B, 128, 128)


def _expected_shapes(kind, n_classes, task, batch):
    if kind in ("mtl", "mtl-ic"):
        return {t: (batch, p) for t, p in n_classes.items()}
    return {task: (batch, n_classes[task])}


# -----------------------------------------------------------------------------
# Shapes and sizes


@pytest.mark.parametrize("n_classes", [PAPER_CLASSES, ESC10_CLASSES], ids=["aec50", "aec10"])
@pytest.mark.parametrize("task", ["asc", "aec"])
@pytest.mark.parametrize("kind", KINDS)
def test_output_shapes_for_both_input_layouts(kind, task, n_classes):
    torch.manual_seed(0)
    model = build_model(kind, SMALL, n_classes, task).eval()
    x = _patches(batch=3)
    with torch.no_grad():
        out3 = model(x)  # (B, 128, 128)
        out4 = model(x.unsqueeze(1))  # (B, 1, 128, 128)
    expected = _expected_shapes(kind, n_classes, task, 3)
    assert {t: tuple(v.shape) for t, v in out3.items()} == expected
    for t in expected:
        torch.testing.assert_close(out3[t], out4[t], rtol=0, atol=0)
        assert torch.isfinite(out3[t]).all()


@pytest.mark.parametrize("shape", [(2, 1, 64, 128), (2, 2, 128, 128), (128, 128), (2, 128, 127)])
def test_wrong_input_shape_raises(shape):
    model = build_model("baseline", SMALL, PAPER_CLASSES, "asc")
    with pytest.raises(ValueError, match="expected patches"):
        model(torch.zeros(shape))


# Computed once with count_parameters (width 1, fusion_units 1024). By hand, baseline ASC:
#   layer 1:  input standardisation 0 + conv 3*3*1*64 = 576 (no bias) + BN 2*64 = 128 -> 704
#   layer 2:  9*64*64 = 36864 + 128                                       ->    36,992
#   layer 4:  9*64*128 + 256 = 73,984;  layer 5: 9*128*128 + 256          =   147,712
#   layer 7:  9*128*256 + 512 = 295,424; layers 8, 9: 9*256*256 + 512      = 2 * 590,336
#   trunk (1-10) = 1,735,488
#   layer 11: 9*256*512 + 1024 = 1,180,672; layers 12, 14: 9*512*512 + 1024 = 2 * 2,360,320
#   branch (11-14) = 5,901,312
#   layer 15: 1*1*512*15 + 15 = 7,695;  layer 16: 15*15 + 15 = 240
#   total = 1,735,488 + 5,901,312 + 7,695 + 240 = 7,644,735
# MTL = trunk + 2 branches + layer 15 (7,695 + 512*50+50 = 25,650) + heads (240 + 2,550).
# Fusion ASC = MTL - heads (2,790) + dense 15*64*1024+1024 + dense 50*64*1024+1024 + out 1024*15+15.
PARAMETERS_AT_WIDTH_1 = {
    ("baseline", "asc"): 7_644_735,
    ("baseline", "aec"): 7_665_000,
    ("mtl", None): 13_574_247,
    ("mtl-ic", "asc"): 13_574_247,
    ("mtl-ic", "aec"): 13_574_247,
    ("fusion", "asc"): 17_848_720,
    ("fusion", "aec"): 17_884_595,
}


@pytest.mark.parametrize("kind, task", list(PARAMETERS_AT_WIDTH_1))
def test_parameter_counts_at_paper_width(kind, task):
    with torch.device("meta"):  # sizes only: no memory, no initialisation
        model = build_model(kind, ModelConfig(), PAPER_CLASSES, task)
    assert count_parameters(model) == PARAMETERS_AT_WIDTH_1[kind, task]


def test_parameter_count_parts_add_up():
    with torch.device("meta"):
        mtl = build_model("mtl", ModelConfig(), PAPER_CLASSES)
        fusion = build_model("fusion", ModelConfig(), PAPER_CLASSES, "asc")
    assert count_parameters(mtl.features.trunk) == 1_735_488
    assert count_parameters(mtl.features.branches["asc"]) == 5_901_312
    assert count_parameters(mtl.heads) == 240 + 2_550
    new = (15 * 64 * 1024 + 1024) + (50 * 64 * 1024 + 1024) + (1024 * 15 + 15)
    assert count_parameters(fusion) - count_parameters(fusion.features) == new
    assert count_parameters(fusion.features) == count_parameters(mtl.features)


def test_width_scales_channels_and_keeps_at_least_one():
    model = build_model("baseline", ModelConfig(width=1 / 16), PAPER_CLASSES, "asc")
    assert model.trunk.layer1.conv.out_channels == 4
    assert model.branch.layer14.conv.out_channels == 32
    tiny = build_model("baseline", ModelConfig(width=0.001), PAPER_CLASSES, "asc")
    assert tiny.trunk.layer1.conv.out_channels == 1
    assert tiny.branch.layer14.conv.out_channels == 1


# -----------------------------------------------------------------------------
# Factory errors


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ConfigError) as err:
        build_model("vgg", SMALL, PAPER_CLASSES, "asc")
    for kind in ("baseline", "mtl", "mtl-ic", "fusion"):
        assert kind in str(err.value)


@pytest.mark.parametrize("kind", ["baseline", "mtl-ic", "fusion"])
def test_missing_task_raises(kind):
    with pytest.raises(ConfigError, match="needs a target task"):
        build_model(kind, SMALL, PAPER_CLASSES)


def test_mtl_needs_no_task_but_rejects_an_unknown_one():
    assert set(build_model("mtl", SMALL, PAPER_CLASSES)(_patches())) == {"asc", "aec"}
    with pytest.raises(ConfigError, match="unknown task"):
        build_model("mtl", SMALL, PAPER_CLASSES, "speech")


@pytest.mark.parametrize("n_classes", [{"asc": 15}, {"asc": 15, "aec": 0}, {"asc": 15, "aec": 2.0}])
def test_bad_class_counts_raise(n_classes):
    with pytest.raises(ConfigError, match="n_classes"):
        build_model("mtl-ic", SMALL, n_classes, "asc")


def test_baseline_needs_only_its_own_class_count():
    out = build_model("baseline", SMALL, {"aec": 10}, "aec").eval()(_patches())
    assert out["aec"].shape == (2, 10)


# -----------------------------------------------------------------------------
# The inter-connection (Eq. 4-5)


def _capture_h14_and_layer15_inputs(model):
    """Forward hooks: H14 of each branch and what each layer 15 receives."""
    seen = {}
    handles = []
    for t in ("asc", "aec"):
        handles.append(
            model.features.branches[t].register_forward_hook(
                lambda m, i, o, t=t: seen.__setitem__(("h14", t), o)
            )
        )
        handles.append(
            model.features.layer15[t].register_forward_hook(
                lambda m, i, o, t=t: seen.update({("in15", t): i[0], ("h15", t): o})
            )
        )
    return seen, handles


@pytest.mark.parametrize("task, alpha", [("asc", 0.7), ("aec", 0.6)])
@pytest.mark.parametrize("kind", ["mtl-ic", "fusion"])
def test_interconnection_mixes_h14_with_the_target_tasks_alpha(kind, task, alpha):
    torch.manual_seed(1)
    model = build_model(kind, SMALL, PAPER_CLASSES, task).eval()
    assert model.features.alpha == alpha
    seen, handles = _capture_h14_and_layer15_inputs(model)
    with torch.no_grad():
        model(_patches())
    for h in handles:
        h.remove()
    h14s, h14e = seen["h14", "asc"], seen["h14", "aec"]
    assert not torch.allclose(h14s, h14e)  # otherwise any alpha would pass
    # Eq. 4 and Eq. 5, by hand with the paper's alpha (not read from the config).
    torch.testing.assert_close(seen["in15", "asc"], alpha * h14s + (1 - alpha) * h14e, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(seen["in15", "aec"], alpha * h14e + (1 - alpha) * h14s, rtol=1e-6, atol=1e-7)
    # H15 = ReLU(W15 * mixed + b15), the 1x1 conv of each branch.
    for t in ("asc", "aec"):
        conv = model.features.layer15[t].conv
        hand = F.relu(F.conv2d(seen["in15", t], conv.weight, conv.bias))
        torch.testing.assert_close(seen["h15", t], hand, rtol=1e-6, atol=1e-7)


def test_interconnection_alpha_comes_from_the_config():
    cfg = ModelConfig(width=1 / 16, fusion_units=16, alpha_asc=0.55, alpha_aec=0.8)
    assert build_model("mtl-ic", cfg, PAPER_CLASSES, "asc").features.alpha == 0.55
    assert build_model("mtl-ic", cfg, PAPER_CLASSES, "aec").features.alpha == 0.8
    assert build_model("fusion", cfg, PAPER_CLASSES, "aec").features.alpha == 0.8


def test_mtl_has_no_interconnection():
    torch.manual_seed(2)
    model = build_model("mtl", SMALL, PAPER_CLASSES).eval()
    assert model.features.alpha is None
    seen, _ = _capture_h14_and_layer15_inputs(model)
    with torch.no_grad():
        model(_patches())
    for t in ("asc", "aec"):
        assert torch.equal(seen["in15", t], seen["h14", t])


def test_branches_are_separate_copies():
    model = build_model("mtl-ic", SMALL, PAPER_CLASSES, "asc")
    asc, aec = model.features.branches["asc"], model.features.branches["aec"]
    assert asc.layer11.conv.weight.data_ptr() != aec.layer11.conv.weight.data_ptr()
    assert not torch.equal(asc.layer11.conv.weight, aec.layer11.conv.weight)
    assert model.features.layer15["asc"].conv.out_channels == 15
    assert model.features.layer15["aec"].conv.out_channels == 50


# -----------------------------------------------------------------------------
# The fusion network (Fig. 4, Eq. 6)


def _trained_mtl_ic(task="asc", seed=3):
    """An MTL-IC model whose BatchNorm running stats have moved away from their defaults."""
    torch.manual_seed(seed)
    mtl = build_model("mtl-ic", SMALL, PAPER_CLASSES, task).train()
    with torch.no_grad():
        mtl(_patches(batch=4, seed=seed))
    return mtl.eval()


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _adam_step(model, task, params, seed=5):
    model.train()
    opt = torch.optim.Adam(params, lr=1e-2)
    x = _patches(batch=4, seed=seed)
    y = torch.randint(0, PAPER_CLASSES[task], (4,), generator=torch.Generator().manual_seed(seed))
    loss = F.cross_entropy(model(x)[task], y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_load_stage1_restores_layers_1_to_15_exactly():
    mtl = _trained_mtl_ic()
    fusion = build_model("fusion", SMALL, PAPER_CLASSES, "asc")
    new_before = {k: v for k, v in _snapshot(fusion).items() if not k.startswith("features.")}
    source = mtl.state_dict()
    stage1 = [k for k in source if k.startswith("features.")]
    assert any(k.endswith("running_mean") for k in stage1)
    assert any(not torch.equal(fusion.state_dict()[k], source[k]) for k in stage1)

    fusion.load_stage1(source)

    after = fusion.state_dict()
    assert set(k for k in after if k.startswith("features.")) == set(stage1)
    for k in stage1:
        assert torch.equal(after[k], source[k]), k
    for k, v in new_before.items():  # the new dense and output layers keep their init
        if k != "frozen_through":
            assert torch.equal(after[k], v), k


def test_frozen_layers_stay_bit_identical_through_a_training_step():
    mtl = _trained_mtl_ic()
    fusion = build_model("fusion", SMALL, PAPER_CLASSES, "asc")
    fusion.load_stage1(mtl.state_dict())
    fusion.train()
    # Frozen BatchNorms stay in eval mode under train(); the new layers train.
    assert fusion.training and not fusion.features.trunk.layer1.bn.training
    assert not fusion.features.layer15["aec"].training
    assert fusion.fusion["asc"].training and fusion.out.training
    trainable = {id(p) for p in fusion.trainable_parameters()}
    new = {id(p) for n, p in fusion.named_parameters() if not n.startswith("features.")}
    assert trainable == new
    before = _snapshot(fusion)

    # Give Adam every parameter, as a careless loop would: frozen ones get no gradient.
    _adam_step(fusion, "asc", fusion.parameters())

    after = fusion.state_dict()
    for k, v in before.items():
        if k.startswith("features.") or k == "frozen_through":
            assert torch.equal(after[k], v), f"frozen {k} changed"
        else:
            assert not torch.equal(after[k], v), f"new layer {k} did not train"


def test_freeze_through_zero_trains_everything():
    mtl = _trained_mtl_ic()
    cfg = ModelConfig(width=1 / 16, fusion_units=16, freeze_through=0)
    fusion = build_model("fusion", cfg, PAPER_CLASSES, "asc")
    fusion.load_stage1(mtl.state_dict())
    assert len(fusion.trainable_parameters()) == len(list(fusion.parameters()))
    before = _snapshot(fusion)
    _adam_step(fusion, "asc", fusion.trainable_parameters())
    after = fusion.state_dict()
    for k, v in before.items():
        if k.endswith(("weight", "bias", "running_mean", "running_var")):
            assert not torch.equal(after[k], v), f"{k} did not train"


def test_freeze_through_ten_freezes_the_trunk_only():
    mtl = _trained_mtl_ic()
    cfg = ModelConfig(width=1 / 16, fusion_units=16, freeze_through=10)
    fusion = build_model("fusion", cfg, PAPER_CLASSES, "aec")
    fusion.load_stage1(mtl.state_dict())
    before = _snapshot(fusion)
    _adam_step(fusion, "aec", fusion.trainable_parameters())
    after = fusion.state_dict()
    for k, v in before.items():
        if k.startswith("features.trunk."):
            assert torch.equal(after[k], v), f"frozen {k} changed"
        elif k.startswith("features.branches.") and k.endswith(("weight", "running_mean")):
            assert not torch.equal(after[k], v), f"{k} did not train"


def test_fresh_fusion_network_is_not_frozen():
    # "direct": the fusion network trained from scratch.
    fusion = build_model("fusion", SMALL, PAPER_CLASSES, "aec")
    assert int(fusion.frozen_through) == 0
    assert len(trainable_parameters(fusion)) == len(list(fusion.parameters()))
    assert fusion.train().features.trunk.layer1.bn.training


def test_load_stage1_from_a_fusion_network_of_the_other_task():
    # "transfer": layers 1-15 of an ASC fusion network start the AEC one.
    torch.manual_seed(4)
    source = build_model("fusion", SMALL, PAPER_CLASSES, "asc")
    source.load_stage1(_trained_mtl_ic().state_dict())
    target = build_model("fusion", SMALL, PAPER_CLASSES, "aec")
    target.load_stage1(source.state_dict())
    src, dst = source.state_dict(), target.state_dict()
    for k in (k for k in dst if k.startswith("features.")):
        assert torch.equal(dst[k], src[k]), k
    assert not torch.equal(dst["fusion.asc.dense.weight"], src["fusion.asc.dense.weight"])
    assert int(target.frozen_through) == 15
    assert target.out.out_features == 50


def test_load_stage1_rejects_weights_of_another_width():
    other = build_model("mtl-ic", ModelConfig(width=1 / 8), PAPER_CLASSES, "asc")
    fusion = build_model("fusion", SMALL, PAPER_CLASSES, "asc")
    with pytest.raises(ConfigError, match="mismatched shapes"):
        fusion.load_stage1(other.state_dict())
    baseline = build_model("baseline", SMALL, PAPER_CLASSES, "asc")
    with pytest.raises(ConfigError, match="missing"):
        fusion.load_stage1(baseline.state_dict())


def test_load_state_dict_brings_the_frozen_state_back():
    frozen = build_model("fusion", SMALL, PAPER_CLASSES, "asc")
    frozen.load_stage1(_trained_mtl_ic().state_dict())
    resumed = build_model("fusion", SMALL, PAPER_CLASSES, "asc")
    assert resumed.features.trunk.layer1.conv.weight.requires_grad
    resumed.load_state_dict(frozen.state_dict())
    assert int(resumed.frozen_through) == 15
    assert not resumed.features.trunk.layer1.conv.weight.requires_grad
    assert not resumed.features.layer15["asc"].conv.bias.requires_grad
    assert not resumed.train().features.branches["aec"].layer14.bn.training


def test_freeze_rejects_layers_outside_1_to_15():
    fusion = build_model("fusion", SMALL, PAPER_CLASSES, "asc")
    with pytest.raises(ConfigError):
        fusion.freeze(16)


@pytest.mark.parametrize("task", ["asc", "aec"])
def test_fusion_output_is_eq6(task):
    torch.manual_seed(6)
    model = build_model("fusion", SMALL, PAPER_CLASSES, task).eval()
    x = _patches()
    with torch.no_grad():
        logits = model(x)[task]
        h15 = model.features(x)  # {task: (B, P_task, 8, 8)}
        dense = {t: model.fusion[t].dense for t in ("asc", "aec")}
        h16 = {  # (B, fusion_units)
            t: torch.relu(h15[t].reshape(2, -1) @ dense[t].weight.T + dense[t].bias) for t in ("asc", "aec")
        }
        hand = (h16["asc"] + h16["aec"]) @ model.out.weight.T + model.out.bias
    assert logits.shape == (2, PAPER_CLASSES[task])
    assert h15["asc"].shape == (2, 15, 8, 8) and h15["aec"].shape == (2, 50, 8, 8)
    torch.testing.assert_close(logits, hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits.softmax(-1), hand.softmax(-1), rtol=1e-5, atol=1e-6)


# -----------------------------------------------------------------------------
# channels_last and bf16 autocast


@pytest.mark.parametrize("kind", KINDS)
def test_channels_last_and_bf16_autocast(kind):
    torch.manual_seed(7)
    model = build_model(kind, SMALL, PAPER_CLASSES, "aec").eval()
    x = _patches().unsqueeze(1)  # (B, 1, 128, 128)
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        cl = model(x.to(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(x.to(memory_format=torch.channels_last))
    for t, ref in reference.items():
        # Same numbers in channels_last: no layout-dependent flatten or reshape.
        torch.testing.assert_close(cl[t], ref, rtol=1e-4, atol=1e-5)
        assert bf16[t].shape == ref.shape and torch.isfinite(bf16[t]).all()
    # A training step under autocast also runs.
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x.to(memory_format=torch.channels_last))
        loss = sum(v.float().sum() for v in out.values())
    loss.backward()
    assert all(p.grad is not None for p in trainable_parameters(model))
