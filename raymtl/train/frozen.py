"""Fine-tunes over a fully frozen trunk: layers 1-15 computed once, the head trained on them.

A fine-tune (and a transfer) restores layers 1-15 from its stage-1 network and freezes them, in
eval mode, and trains on un-mixed patches with no augmentation (docs/method.md §5). So H15 of a
patch is the same in every epoch: the paper preset's 100 (ASC) and 500 (AEC) fine-tune epochs
would run the convolutions over the same patches 100-500 times to train two dense layers. Here
the stage reads its training and validation patches once, keeps both branches' H15 (the
float32 maps, (P_asc + P_aec) x 8 x 8 per patch) on the training device, and each epoch trains
`FusionNet.head` on a fresh permutation of them. Every update is the one the whole network
would make on the same batch (tests/train/test_frozen.py checks it step by step); what differs
from streaming is only which patches share a batch: a permutation of the whole set each epoch
instead of the stream's file-by-file shuffle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from raymtl import schema
from raymtl.models.networks import FusionNet


def precomputes(net: torch.nn.Module) -> bool:
    """A fusion network whose layers 1-15 are all frozen: its H15 can be computed once."""
    return isinstance(net, FusionNet) and net.fully_frozen


@dataclass(frozen=True)
class FrozenFeatures:
    """H15 of both branches for a set of patches, on the training device, with their labels
    (and recording ids, for per-recording validation)."""

    h15: dict[str, torch.Tensor]  # task -> (N, P_task, 8, 8)
    labels: torch.Tensor  # (N,) the target task's labels
    clips: np.ndarray | None  # (N,) recording ids, or None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.h15.values())

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[tuple]:
        """(h15 batch, labels batch) in a permutation drawn from `generator` (in order if None)."""
        n = len(self)
        if generator is None:
            order = torch.arange(n)
        else:
            order = torch.randperm(n, generator=generator)
        order = order.to(self.labels.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield {t: h[idx] for t, h in self.h15.items()}, self.labels[idx]


def compute_h15(
    net: FusionNet, batches: Iterable[dict], target: str, device: torch.device, with_ids: bool = False
) -> FrozenFeatures:
    """One pass of `batches` (numpy batches with the patch column and the target's labels, and
    the recording ids when `with_ids`) through the frozen layers 1-15 of `net`."""
    if not precomputes(net):
        raise ValueError("only a fusion network with layers 1-15 all frozen has fixed H15 features")
    was_training = net.training
    net.eval()
    h15: dict[str, list[torch.Tensor]] = {}
    labels, clips = [], []
    with torch.no_grad():
        for batch in batches:
            x = torch.as_tensor(np.ascontiguousarray(batch[schema.X]), device=device)
            x = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)  # (B, 1, 128, 128)
            for t, h in net.features(x).items():  # {task: (B, P_task, 8, 8)}
                h15.setdefault(t, []).append(h.float().contiguous())
            labels.append(torch.as_tensor(np.asarray(batch[schema.TASK_LABEL[target]]), device=device))
            if with_ids:
                clips.append(np.asarray(batch[schema.CLIP]))
    net.train(was_training)
    if not labels:
        raise ValueError(f"no patches to compute H15 for ({target})")
    return FrozenFeatures(
        h15={t: torch.cat(parts) for t, parts in h15.items()},
        labels=torch.cat(labels).long(),
        clips=np.concatenate(clips) if with_ids else None,
    )
