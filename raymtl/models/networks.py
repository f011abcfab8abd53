"""The networks of paper §II and docs/method.md §4, in one file.

Layer numbers are the paper's (docs/method.md §4's table, 128 x 128 one-channel input):

    1-2    conv 3x3, 64 x2          (B, 64, 128, 128)   [layer 1 first standardises each patch]
    3      max-pool 2x2             (B, 64, 64, 64)
    4-5    conv 3x3, 128 x2
    6      max-pool                 (B, 128, 32, 32)
    7-9    conv 3x3, 256 x3
    10     max-pool                 (B, 256, 16, 16)    = H10, end of the shared trunk
    11-12  conv 3x3, 512 x2
    13     max-pool                 (B, 512, 8, 8)
    14     conv 3x3, 512            (B, 512, 8, 8)      = H14
    15     conv 1x1, P kernels      (B, P, 8, 8)        = H15 = ReLU(W15 x + b15), Eq. 4-5
    16     global avg pool, dense P (B, P)              logits; softmax is the scorer's job

Choices the paper leaves open (docs/method.md §4 says why):
- convs 1-14 are conv (no bias) -> BatchNorm -> ReLU; BN's shift plays the bias' role.
- layer 1 begins by standardising each input patch (InstanceNorm2d, no parameters): log-mel dB
  values sit around -100..+40, and zero padding of un-centred inputs would draw edges.
- layer 15 is exactly Eq. 4-5: a 1x1 conv with bias, then ReLU, no BatchNorm.
- `width` scales the 64/128/256/512 widths (rounded, at least one channel).
- PyTorch's default initialisation everywhere.

The variants are settings of a few small modules, not classes of their own:

    baseline  Trunk -> Branch -> Layer15 -> GapHead                       SingleTaskNet
    mtl       Trunk -> {asc, aec}: Branch -> Layer15 -> GapHead           MultiTaskNet
    mtl-ic    as mtl, Layer15 of each branch sees a*H14(own) + (1-a)*H14(other)
    fusion    the mtl-ic layers 1-15, then a dense + ReLU on each branch's flattened H15,
              summed, then one dense layer for the target task (Fig. 4, Eq. 6)  FusionNet

`build_model(kind, cfg, n_classes, task)` is the one way in. Every `forward` takes
(B, 128, 128) or (B, 1, 128, 128) and returns a dict of logits by task name.
"""

from __future__ import annotations

import numbers
from collections import OrderedDict
from typing import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from raymtl.config import TASKS, ModelConfig
from raymtl.errors import ConfigError

INPUT_SIZE = 128  # mel bands x frames of one patch
N_POOLS = 4  # layers 3, 6, 10, 13
H15_SIZE = INPUT_SIZE // 2**N_POOLS  # 8: H14 and H15 are 8 x 8 maps
N_STAGE1_LAYERS = 15  # the fusion network restores (and may freeze) layers 1..15

# The other branch of each task, for the inter-connection.
OTHER = {"asc": "aec", "aec": "asc"}


def channels(base: int, width: float) -> int:
    """A conv width of the paper (64, 128, 256 or 512) scaled by `width`."""
    return max(1, round(base * width))


def as_images(x: torch.Tensor) -> torch.Tensor:
    """(B, 128, 128) or (B, 1, 128, 128) -> (B, 1, 128, 128); anything else is an error."""
    if x.dim() == 3:
        x = x.unsqueeze(1)  # (B, 1, 128, 128)
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, INPUT_SIZE, INPUT_SIZE):
        raise ValueError(
            f"expected patches of shape (B, {INPUT_SIZE}, {INPUT_SIZE}) or "
            f"(B, 1, {INPUT_SIZE}, {INPUT_SIZE}), got {tuple(x.shape)}"
        )
    return x


# -----------------------------------------------------------------------------
# Building blocks


class ConvBlock(nn.Module):
    """One conv layer of the table: conv 3x3 (no bias) -> BatchNorm -> ReLU.

    `input_norm` standardises each input patch first (layer 1 only): zero mean and unit
    variance per patch. Log-mel dB values are far from zero, and mixing a scene patch with a
    mostly quiet event patch halves and offsets it (0.5 x_S + 0.5 floor); per-patch
    standardisation makes the network see the same image either way, so a network trained on
    mixup pairs is not thrown off by un-mixed test patches. It has no parameters.
    """

    def __init__(self, c_in: int, c_out: int, input_norm: bool = False):
        super().__init__()
        self.input_norm = nn.InstanceNorm2d(c_in, affine=False, eps=1e-3) if input_norm else None
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_norm is not None:
            x = self.input_norm(x)
        return F.relu(self.bn(self.conv(x)))  # (B, c_out, H, W)


class Trunk(nn.Sequential):
    """Layers 1-10, shared by both branches in the multitask networks. Children are named
    `layer1` .. `layer10` after the paper's numbers."""

    def __init__(self, width: float):
        c64, c128, c256 = channels(64, width), channels(128, width), channels(256, width)
        super().__init__(
            OrderedDict(
                layer1=ConvBlock(1, c64, input_norm=True),  # (B, 64w, 128, 128)
                layer2=ConvBlock(c64, c64),
                layer3=nn.MaxPool2d(2),  # (B, 64w, 64, 64)
                layer4=ConvBlock(c64, c128),
                layer5=ConvBlock(c128, c128),
                layer6=nn.MaxPool2d(2),  # (B, 128w, 32, 32)
                layer7=ConvBlock(c128, c256),
                layer8=ConvBlock(c256, c256),
                layer9=ConvBlock(c256, c256),
                layer10=nn.MaxPool2d(2),  # (B, 256w, 16, 16) = H10
            )
        )
        self.out_channels = c256


class Branch(nn.Sequential):
    """Layers 11-14 of one branch: H10 -> H14. Children are named `layer11` .. `layer14`."""

    def __init__(self, width: float):
        c256, c512 = channels(256, width), channels(512, width)
        super().__init__(
            OrderedDict(
                layer11=ConvBlock(c256, c512),  # (B, 512w, 16, 16)
                layer12=ConvBlock(c512, c512),
                layer13=nn.MaxPool2d(2),  # (B, 512w, 8, 8)
                layer14=ConvBlock(c512, c512),  # (B, 512w, 8, 8) = H14
            )
        )
        self.out_channels = c512


class Layer15(nn.Module):
    """Layer 15: H15 = ReLU(W15 * x + b15), a 1x1 conv with P kernels (paper Eq. 4-5)."""

    def __init__(self, c_in: int, n_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, n_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))  # (B, P, 8, 8) = H15


class GapHead(nn.Module):
    """Layer 16: global average pool, then dense P. Returns logits (no softmax)."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.fc = nn.Linear(n_classes, n_classes)

    def forward(self, h15: torch.Tensor) -> torch.Tensor:
        return self.fc(h15.mean(dim=(2, 3)))  # (B, P, 8, 8) -> (B, P) -> (B, P)


def interconnect(own: torch.Tensor, other: torch.Tensor, alpha: float) -> torch.Tensor:
    """The inter-connection unit between layers 14 and 15 (paper Eq. 4-5)."""
    return alpha * own + (1 - alpha) * other  # (B, 512w, 8, 8)


# -----------------------------------------------------------------------------
# Networks


class SingleTaskNet(nn.Module):
    """The baseline (Fig. 1): all 16 layers for one task."""

    def __init__(self, width: float, n_classes: int, task: str):
        super().__init__()
        self.task = task
        self.trunk = Trunk(width)
        self.branch = Branch(width)
        self.layer15 = Layer15(self.branch.out_channels, n_classes)
        self.head = GapHead(n_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = as_images(x)  # (B, 1, 128, 128)
        h14 = self.branch(self.trunk(x))  # (B, 256w, 16, 16) -> (B, 512w, 8, 8)
        return {self.task: self.head(self.layer15(h14))}  # (B, P, 8, 8) -> (B, P)

    def extra_repr(self) -> str:
        return f"task={self.task!r}"


class TwoBranchFeatures(nn.Module):
    """Layers 1-15 of the two-branch networks: shared trunk, then a scene ("asc") and an event
    ("aec") branch. With `alpha` set, layer 15 of each branch takes
    alpha * H14(own) + (1 - alpha) * H14(other) (MTL-IC, Fig. 3); with None it takes its own H14
    (MTL, Fig. 2). Returns H15 of each branch; each branch's layer 15 has the P of its task.
    """

    def __init__(self, width: float, n_classes: Mapping[str, int], alpha: float | None):
        super().__init__()
        self.alpha = alpha
        self.trunk = Trunk(width)
        self.branches = nn.ModuleDict({t: Branch(width) for t in TASKS})
        c14 = self.branches[TASKS[0]].out_channels
        self.layer15 = nn.ModuleDict({t: Layer15(c14, n_classes[t]) for t in TASKS})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h10 = self.trunk(as_images(x))  # (B, 256w, 16, 16)
        h14 = {t: branch(h10) for t, branch in self.branches.items()}  # (B, 512w, 8, 8)
        if self.alpha is None:
            mixed = h14
        else:
            mixed = {t: interconnect(h14[t], h14[OTHER[t]], self.alpha) for t in TASKS}
        return {t: self.layer15[t](mixed[t]) for t in TASKS}  # (B, P_t, 8, 8) = H15

    def paper_layers(self) -> dict[int, list[nn.Module]]:
        """Paper layer number -> its modules (both branches for 11-15). Pooling layers have
        no parameters but are listed too, so every number 1..15 is present."""
        layers = {n: [getattr(self.trunk, f"layer{n}")] for n in range(1, 11)}
        for n in range(11, 15):
            layers[n] = [getattr(branch, f"layer{n}") for branch in self.branches.values()]
        layers[15] = list(self.layer15.values())
        return layers

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class MultiTaskNet(nn.Module):
    """MTL (Fig. 2) and MTL-IC (Fig. 3): layers 1-15 of both branches, then a layer-16 head on
    each. Returns {"asc": (B, P_asc), "aec": (B, P_aec)} logits."""

    def __init__(self, width: float, n_classes: Mapping[str, int], alpha: float | None):
        super().__init__()
        self.features = TwoBranchFeatures(width, n_classes, alpha)
        self.heads = nn.ModuleDict({t: GapHead(n_classes[t]) for t in TASKS})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h15 = self.features(x)  # {task: (B, P_task, 8, 8)}
        return {t: self.heads[t](h15[t]) for t in TASKS}  # {task: (B, P_task)}


class FusionNet(nn.Module):
    """The cross-task fusion network (Fig. 4, Eq. 6) for one target task.

    Layers 1-15 are the MTL-IC structure (both branches, inter-connection with the target
    task's alpha); the layer-16 heads are replaced by a dense `fusion_units` + ReLU on each
    branch's flattened H15 (H16_S, H16_E), and logits = W(H16_S + H16_E) + b with the target
    task's P. Softmax (g in Eq. 6) is left to the loss and the scorer.

    Stage 2 (fine-tune, transfer): `load_stage1(state_dict)` restores layers 1-15 from an
    MTL(-IC) model or from another fusion network, then freezes layers 1..`freeze_through`.
    Direct training: build it and train; a network that never loaded stage-1 weights has
    nothing frozen. Frozen layers keep requires_grad=False and their BatchNorm in eval mode
    even under `train()`, so they stay bit-identical. How far the network is frozen is a
    buffer (`frozen_through`) in the state dict and is re-applied by `load_state_dict`, so a
    checkpoint resumes frozen.
    """

    def __init__(
        self,
        width: float,
        n_classes: Mapping[str, int],
        task: str,
        alpha: float,
        fusion_units: int,
        freeze_through: int,
    ):
        super().__init__()
        self.task = task
        self.freeze_through = freeze_through  # applied by load_stage1
        self.features = TwoBranchFeatures(width, n_classes, alpha)
        self.fusion = nn.ModuleDict(
            {
                t: nn.Sequential(
                    OrderedDict(
                        flatten=nn.Flatten(),  # (B, P_t, 8, 8) -> (B, P_t * 64)
                        dense=nn.Linear(n_classes[t] * H15_SIZE * H15_SIZE, fusion_units),
                        relu=nn.ReLU(),  # (B, fusion_units) = H16_t
                    )
                )
                for t in TASKS
            }
        )
        self.out = nn.Linear(fusion_units, n_classes[task])
        # How far the network is frozen: a buffer, so state dicts and checkpoints carry it,
        # and a Python copy, so train() needs no tensor read (a device sync on a GPU).
        self.register_buffer("frozen_through", torch.zeros((), dtype=torch.long))
        self._frozen_through = 0
        self.register_load_state_dict_post_hook(_reapply_freeze)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.features(x))  # {task: (B, P_task, 8, 8)} -> {target: (B, P_target)}

    def head(self, h15: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Layers 16-17 alone, from both branches' H15: what a fine-tune trains when layers
        1-15 are all frozen (raymtl.train.frozen computes H15 once and trains this)."""
        h16 = self.fusion["asc"](h15["asc"]) + self.fusion["aec"](h15["aec"])  # H16_S + H16_E
        return {self.task: self.out(h16)}  # (B, P_target)

    @property
    def fully_frozen(self) -> bool:
        """Layers 1-15 all frozen: H15 of a patch is the same every epoch."""
        return self._frozen_through == N_STAGE1_LAYERS

    def load_stage1(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Restore layers 1-15 (trunk, both branches, both layer-15 units; BatchNorm running
        stats included) from the state dict of an MTL / MTL-IC model or of a fusion network
        of either target task, then freeze layers 1..freeze_through. The fusion and output
        layers keep their fresh initialisation."""
        own = {k: v for k, v in self.state_dict().items() if k.startswith("features.")}
        missing = sorted(k for k in own if k not in state_dict)
        mismatched = sorted(
            f"{k}: {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
            for k, v in own.items()
            if k in state_dict and state_dict[k].shape != v.shape
        )
        if missing or mismatched:
            raise ConfigError(
                "stage-1 weights do not fit this fusion network (built with another width or "
                f"class counts?); missing: {missing[:5]}{'...' if len(missing) > 5 else ''}; "
                f"mismatched shapes: {mismatched[:5]}{'...' if len(mismatched) > 5 else ''}"
            )
        self.load_state_dict({k: state_dict[k] for k in own}, strict=False)
        self.freeze(self.freeze_through)

    def freeze(self, through: int) -> None:
        """Freeze paper layers 1..`through` (0 = none) and unfreeze the rest of 1-15."""
        if not 0 <= through <= N_STAGE1_LAYERS:
            raise ConfigError(f"can freeze layers 1..N for N in 0..15 only, got {through!r}")
        self.frozen_through.fill_(through)
        self._frozen_through = through
        for n, modules in self.features.paper_layers().items():
            for module in modules:
                module.requires_grad_(n > through)
        self.train(self.training)  # put the frozen BatchNorms in eval mode now

    def frozen_modules(self) -> list[nn.Module]:
        layers = self.features.paper_layers()
        return [m for n in range(1, self._frozen_through + 1) for m in layers[n]]

    def train(self, mode: bool = True) -> "FusionNet":
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()  # frozen BatchNorms keep their running stats
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return trainable_parameters(self)

    def extra_repr(self) -> str:
        return f"task={self.task!r}, freeze_through={self.freeze_through}"


def _reapply_freeze(module: FusionNet, incompatible_keys) -> None:
    # load_state_dict brought a `frozen_through` value: make requires_grad and BN modes agree.
    module.freeze(int(module.frozen_through))


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimiser should get (all of them except frozen layers)."""
    return [p for p in model.parameters() if p.requires_grad]


# -----------------------------------------------------------------------------
# Factory

KINDS_NEEDING_TASK = ("baseline", "mtl-ic", "fusion")


def _baseline(cfg: ModelConfig, n_classes: Mapping[str, int], task: str | None) -> nn.Module:
    return SingleTaskNet(cfg.width, n_classes[task], task)


def _mtl(cfg: ModelConfig, n_classes: Mapping[str, int], task: str | None) -> nn.Module:
    return MultiTaskNet(cfg.width, n_classes, alpha=None)  # no inter-connection


def _mtl_ic(cfg: ModelConfig, n_classes: Mapping[str, int], task: str | None) -> nn.Module:
    return MultiTaskNet(cfg.width, n_classes, alpha=cfg.alpha(task))


def _fusion(cfg: ModelConfig, n_classes: Mapping[str, int], task: str | None) -> nn.Module:
    return FusionNet(
        cfg.width,
        n_classes,
        task,
        alpha=cfg.alpha(task),
        fusion_units=cfg.fusion_units,
        freeze_through=cfg.freeze_through,
    )


BUILDERS: dict[str, Callable[[ModelConfig, Mapping[str, int], str | None], nn.Module]] = {
    "baseline": _baseline,
    "mtl": _mtl,
    "mtl-ic": _mtl_ic,
    "fusion": _fusion,
}


def build_model(
    kind: str, cfg: ModelConfig, n_classes: Mapping[str, int], task: str | None = None
) -> nn.Module:
    """Build a network of `kind` ("baseline", "mtl", "mtl-ic" or "fusion").

    `n_classes` maps task to P, e.g. {"asc": 15, "aec": 50}; the baseline needs only its own
    task's entry, the others both. `task` is the target task: which P for the baseline, which
    alpha for mtl-ic and fusion, which output for fusion. mtl ignores it. Direct and transfer
    networks are "fusion" networks (see FusionNet).
    """
    try:
        builder = BUILDERS[kind]
    except KeyError:
        raise ConfigError(f"unknown model kind {kind!r}; valid: {', '.join(BUILDERS)}") from None
    if task is None and kind in KINDS_NEEDING_TASK:
        raise ConfigError(f"model kind {kind!r} needs a target task ({' or '.join(TASKS)})")
    if task is not None and task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    needed = (task,) if kind == "baseline" else TASKS
    for t in needed:
        p = n_classes.get(t)
        if not isinstance(p, numbers.Integral) or isinstance(p, bool) or p <= 0:
            raise ConfigError(f"n_classes[{t!r}] must be a positive integer, got {p!r}")
    return builder(cfg, {t: int(n_classes[t]) for t in needed}, task)


def count_parameters(model: nn.Module, params: Iterable[nn.Parameter] | None = None) -> int:
    """Number of scalar parameters (of `params`, default all of the model's)."""
    return sum(p.numel() for p in (model.parameters() if params is None else params))
