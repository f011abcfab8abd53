"""The ten experiments of paper §III (Table I and §III-E), as data.

Every experiment trains one network per target task it reports. An MTL experiment reports both
tasks from two networks trained on the same mixup batches: the one for ASC with ASC's epochs
(and, with inter-connections, alpha 0.7), the one for AEC with AEC's (alpha 0.6). That is how the
paper's Table I row "MTL model with inter-connections" gets its two numbers, and each fine-tune
then starts from the network trained for its own task.
"""

from __future__ import annotations

from dataclasses import dataclass

from raymtl.errors import ConfigError


@dataclass(frozen=True)
class Experiment:
    name: str
    model_kind: str  # raymtl.models.build_model kind
    targets: tuple[str, ...]  # one network per target task
    stage: str  # "train" (from scratch) or "finetune" (epochs_finetune_*, init from `init_from`)
    mixup: bool  # mixup pairs (both labels) or the target task's own un-mixed patches
    init_from: str | None = None  # the stage-1 experiment whose network for ...
    init_task: str | None = None  # ... this task (None: the same as the target) is restored
    freeze: bool = False  # freeze layers 1..freeze_through of the restored network

    def stage1_task(self, target: str) -> str:
        return self.init_task or target


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment("baseline-asc", "baseline", ("asc",), "train", mixup=False),
        Experiment("baseline-aec", "baseline", ("aec",), "train", mixup=False),
        Experiment("mtl", "mtl", ("asc", "aec"), "train", mixup=True),
        Experiment("mtl-ic", "mtl-ic", ("asc", "aec"), "train", mixup=True),
        Experiment("finetune-asc", "fusion", ("asc",), "finetune", False, "mtl-ic", freeze=True),
        Experiment("finetune-aec", "fusion", ("aec",), "finetune", False, "mtl-ic", freeze=True),
        # The fusion network (Fig. 4) trained from scratch on one dataset (§III-E).
        Experiment("direct-asc", "fusion", ("asc",), "train", mixup=False),
        Experiment("direct-aec", "fusion", ("aec",), "train", mixup=False),
        # Conventional transfer learning (§III-E): pre-trained on the other dataset, fine-tuned.
        Experiment("transfer-asc", "fusion", ("asc",), "finetune", False, "direct-aec", "aec", freeze=True),
        Experiment("transfer-aec", "fusion", ("aec",), "finetune", False, "direct-asc", "asc", freeze=True),
    )
}


def get_experiment(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}") from None
