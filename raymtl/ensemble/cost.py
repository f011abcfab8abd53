"""What a study or an ensemble costs in GPU-hours, by arithmetic (not measured).

A trial's work is counted in FLOPs from its patch counts (the FEATURES manifest: clips x images
x patches, exactly what the streams deliver; `max_train_patches` caps a training epoch) and its
networks' forward FLOPs per patch (torch's FlopCounterMode on one patch):

- training from scratch: per target network, epochs x (3 x forward x training patches, the
  backward being ~2 forwards, + forward x validation patches), then one forward over the test
  patches; an MTL experiment trains two networks on the same mixup batches (one per task, each
  with its task's epochs);
- a fine-tune over frozen layers 1-15 computes them once for its training and validation
  patches (docs/method.md §5) and trains the dense layers on that (negligible here), then
  scores the test patches: one forward per patch.

GPU-hours = FLOPs / (peak dense bf16 FLOP/s x utilization). The utilization (0.5) is an
assumption, the same one bench_stream's GPU line uses; a measured member on a real GPU replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
from torch.utils.flop_counter import FlopCounterMode

from raymtl import schema
from raymtl.config import ModelConfig, Preset
from raymtl.data import partitions
from raymtl.models import build_model
from raymtl.train.experiments import EXPERIMENTS, get_experiment
from raymtl.train.trial import TrialSpec

UTILIZATION = 0.5
MEMBER = ("mtl-ic", "finetune-asc", "finetune-aec")  # an ensemble member's trials


@dataclass(frozen=True)
class Accelerator:
    name: str
    peak_flops: float  # dense bf16, from the vendor's datasheet

    def hours(self, flops: float) -> float:
        return flops / (self.peak_flops * UTILIZATION) / 3600


ACCELERATORS = {
    "h100": Accelerator("H100 SXM", 989e12),
    "a10g": Accelerator("A10G (g5 nodes)", 125e12),
}


@cache
def forward_flops(kind: str, model: ModelConfig, task: str, n_classes: tuple[tuple[str, int], ...]) -> float:
    """FLOPs of one patch through the network `kind` trains for `task` (multiply-add = 2)."""
    net = build_model(kind, model, dict(n_classes), task=task).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.zeros(1, 128, 128))
    return float(counter.get_total_flops())


def trial_flops(spec: TrialSpec, preset: Preset, features: str) -> float:
    exp = get_experiment(spec.experiment)
    classes = partitions.read_manifest(features)["classes"]
    n_classes = tuple((t, len(classes[schema.TASK_DATASET[t]])) for t in ("asc", "aec"))

    def patches(task: str, split: str) -> int:
        # A mixup epoch is one pass over the scene patches (each paired with an event patch).
        dataset = "tut2017" if exp.mixup and split == "train" else schema.TASK_DATASET[task]
        n = partitions.expected_patches(features, dataset, spec.division, split, spec.variant)
        cap = preset.train.max_train_patches
        return min(n, cap) if split == "train" and cap else n

    total = 0.0
    for task in exp.targets:
        f = forward_flops(exp.model_kind, preset.model, task, n_classes)
        train, val, test = patches(task, "train"), patches(task, "validation"), patches(task, "test")
        if exp.stage == "finetune" and exp.freeze:
            total += f * (train + val + test)
        else:
            total += preset.train.epochs(exp.stage, task) * f * (3 * train + val) + f * test
    return total


@dataclass(frozen=True)
class Cost:
    """FLOPs per experiment (summed over the given trials) and per member chain."""

    by_experiment: dict[str, float]
    member: dict[str, float]  # variant -> FLOPs of one member (mtl-ic + both fine-tunes)
    total: float

    def lines(self, accelerator: Accelerator) -> list[str]:
        h = accelerator.hours
        out = [f"GPU-hours on {accelerator.name} at {UTILIZATION:.0%} of peak (arithmetic, not measured):"]
        out += [f"  {e:<14} {h(f):8.1f}" for e, f in self.by_experiment.items()]
        out += [f"  one member ({v}): {h(f):.2f}" for v, f in self.member.items()]
        out.append(f"  total: {h(self.total):.1f}")
        return out


def estimate(specs: list[TrialSpec], preset: Preset, features: str) -> Cost:
    by_experiment: dict[str, float] = {}
    for spec in specs:
        by_experiment[spec.experiment] = by_experiment.get(spec.experiment, 0.0) + trial_flops(
            spec, preset, features
        )
    by_experiment = {e: by_experiment[e] for e in EXPERIMENTS if e in by_experiment}  # the paper's order
    member = {
        v: sum(trial_flops(TrialSpec(e, 1, 1, v), preset, features) for e in MEMBER)
        for v in sorted({s.variant for s in specs})
    }
    return Cost(by_experiment, member, sum(by_experiment.values()))
