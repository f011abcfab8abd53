"""`train_loop_per_worker`: the training loop that Ray Train runs on each worker.

It trains one network per target task on the same batches (an MTL experiment trains two, one
per task, DESIGN.md §1; everything else one), validates each on its task's un-mixed validation
patches by per-recording accuracy every epoch, keeps the best-validating weights, and reports
metrics with a checkpoint every epoch. A restarted worker resumes from the last checkpoint.

After the last epoch, rank 0 scores the test patches with the selected weights and reports them
in a final checkpoint: scoring happens where the model already is (the GPU on a cluster), with
no second model load or actor start-up.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from raymtl import schema
from raymtl.config import Preset
from raymtl.models import build_model
from raymtl.models.networks import trainable_parameters
from raymtl.train.evaluate import recording_accuracy
from raymtl.train.scoring import SCORES

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "state.pt"
TEST_SCORES_FILE = "test-scores-{task}.npz"  # in the final checkpoint, per target task
TEST_ID_COLUMNS = (schema.DATASET, schema.CLIP, schema.IMAGE, schema.PATCH_INDEX, schema.LABEL)


@dataclass(frozen=True)
class LoopConfig:
    """What the loop needs, as plain values (Ray passes the config as a dict)."""

    preset: Preset
    model_kind: str
    targets: tuple[str, ...]
    n_classes: dict[str, int]
    epochs: dict[str, int]  # per target
    mixup: bool
    seed: int
    init: dict[str, str | None]  # per target: a stage-1 model file (raymtl.models.checkpoint) or None
    freeze: bool
    epoch_counter: Any = None  # raymtl.data.mixup.EpochCounter handle (mixup experiments)
    shuffle_buffer: int = 2048

    @classmethod
    def from_dict(cls, d: dict) -> "LoopConfig":
        d = dict(d)
        d["preset"] = Preset.from_dict(d["preset"]) if isinstance(d["preset"], dict) else d["preset"]
        d["targets"] = tuple(d["targets"])
        return cls(**d)


def build_network(cfg: LoopConfig, target: str) -> torch.nn.Module:
    model_cfg = cfg.preset.model
    if cfg.model_kind == "fusion" and not cfg.freeze:
        model_cfg = dataclasses.replace(model_cfg, freeze_through=0)  # direct: train everything
    net = build_model(cfg.model_kind, model_cfg, cfg.n_classes, task=target)
    if cfg.init.get(target):
        net.load_stage1(load_stage1_state(cfg.init[target]))
    return net


def load_stage1_state(uri: str) -> dict:
    """The state dict of a saved model, read through pyarrow (shared storage on a cluster)."""
    import io

    from raymtl import storage
    from raymtl.models import load_model

    fs, path = storage.resolve(uri)
    model, _ = load_model(io.BytesIO(storage.read_bytes(fs, path)))
    return model.state_dict()


def _labels_for(batch: dict, target: str, mixup: bool) -> dict[str, torch.Tensor]:
    """The labels a network for `target` is trained on: both tasks' on mixup batches."""
    tasks = ("asc", "aec") if mixup else (target,)
    return {t: batch[schema.TASK_LABEL[t]] for t in tasks}


def _validate(net: torch.nn.Module, shard, target: str, device, batch_size: int) -> float:
    net.eval()
    clips, labels, scores = [], [], []
    with torch.no_grad():
        for batch in shard.iter_batches(batch_size=batch_size, batch_format="numpy"):
            x = torch.as_tensor(batch[schema.X], device=device)
            out = net(x)[target].float().softmax(dim=1).cpu().numpy()
            clips.append(batch[schema.CLIP])
            labels.append(batch[schema.TASK_LABEL[target]])
            scores.append(out)
    if not clips:
        return float("nan")
    return recording_accuracy(np.concatenate(clips), np.concatenate(labels), np.concatenate(scores))


def _score_test(net: torch.nn.Module, shard, target: str, device, batch_size: int) -> dict[str, np.ndarray]:
    """Per-patch softmax scores of the test shard, with the id columns that identify each patch."""
    net.eval()
    parts: dict[str, list] = {k: [] for k in (*TEST_ID_COLUMNS, SCORES)}
    with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for batch in shard.iter_batches(batch_size=batch_size, batch_format="numpy"):
            x = torch.as_tensor(np.ascontiguousarray(batch[schema.X]), device=device)
            parts[SCORES].append(net(x)[target].float().softmax(dim=1).cpu().numpy().astype(np.float32))
            for k in TEST_ID_COLUMNS:
                parts[k].append(batch[k])
    if not parts[SCORES]:
        raise RuntimeError(f"no test patches for {target}")
    return {k: np.concatenate(v) for k, v in parts.items()}


def train_loop_per_worker(config: dict) -> None:
    import ray.train
    import ray.train.torch

    cfg = LoopConfig.from_dict(config)
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    device = ray.train.torch.get_device()
    on_gpu = device.type == "cuda"
    torch.manual_seed(cfg.seed + rank)
    train = cfg.preset.train

    nets = {t: build_network(cfg, t) for t in cfg.targets}
    for t, net in nets.items():
        if on_gpu:
            net = net.to(memory_format=torch.channels_last)
        nets[t] = ray.train.torch.prepare_model(net)
    opts = {t: torch.optim.Adam(trainable_parameters(net), lr=train.lr) for t, net in nets.items()}
    state = {"epoch": -1, "best_acc": {t: -1.0 for t in nets}, "best_epoch": {t: -1 for t in nets}, "history": []}
    best_weights: dict[str, dict] = {}

    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            saved = torch.load(os.path.join(d, CHECKPOINT_FILE), map_location=device, weights_only=False)
        for t in nets:
            _unwrap(nets[t]).load_state_dict(saved["nets"][t])
            opts[t].load_state_dict(saved["opts"][t])
        state = saved["state"]
        best_weights = saved["best_weights"]
        state.setdefault("resumed_after_epoch", []).append(state["epoch"])  # recorded in result.json
        log.info("resuming from the checkpoint of epoch %d", state["epoch"])

    train_shard = ray.train.get_dataset_shard("train")
    val_shards = {t: ray.train.get_dataset_shard(f"val_{t}") for t in nets}
    n_epochs = max(cfg.epochs.values())
    for epoch in range(state["epoch"] + 1, n_epochs):
        t0 = time.perf_counter()
        if cfg.epoch_counter is not None:
            ray.get(cfg.epoch_counter.set.remote(epoch))  # fresh mixup partners this epoch
        active = [t for t in nets if epoch < cfg.epochs[t]]
        for t in active:
            nets[t].train()
        loss_sum = {t: 0.0 for t in active}
        correct = {t: 0 for t in active}
        seen = 0
        for batch in train_shard.iter_torch_batches(
            batch_size=train.batch_size,
            local_shuffle_buffer_size=cfg.shuffle_buffer,
            local_shuffle_seed=cfg.seed * 1000 + epoch,
            device=device,
        ):
            x = batch[schema.X]
            if on_gpu:
                x = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)
            seen += len(x)
            for t in active:
                labels = _labels_for(batch, t, cfg.mixup)
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=on_gpu):
                    out = nets[t](x)
                    loss = sum(F.cross_entropy(out[task].float(), y.long()) for task, y in labels.items())
                opts[t].zero_grad(set_to_none=True)
                loss.backward()
                opts[t].step()
                loss_sum[t] += float(loss.detach()) * len(x)
                correct[t] += int((out[t].argmax(dim=1) == labels[t]).sum())
        metrics: dict[str, Any] = {
            "stage": cfg.model_kind, "epoch": epoch, "patches": seen, "seconds": round(time.perf_counter() - t0, 3)
        }  # fmt: skip
        for t in active:
            acc = _validate(nets[t], val_shards[t], t, device, train.batch_size)
            metrics[f"loss_{t}"] = loss_sum[t] / max(seen, 1)
            metrics[f"train_acc_{t}"] = correct[t] / max(seen, 1)
            metrics[f"val_acc_{t}"] = acc
            # Keep the best-validating weights (the first best on ties); the last epoch's
            # weights when validation is empty.
            if acc > state["best_acc"][t] or (acc != acc):
                state["best_acc"][t], state["best_epoch"][t] = acc, epoch
                best_weights[t] = {k: v.detach().cpu().clone() for k, v in _unwrap(nets[t]).state_dict().items()}
        metrics["patches_per_s"] = round(seen / max(metrics["seconds"], 1e-9), 1)
        state["epoch"] = epoch
        state["history"].append(metrics)
        _report(metrics, nets, opts, state, best_weights, rank)

    # The selected weights score the test patches (every worker holds the whole test set; rank 0
    # scores it). This also runs after a restart that resumed past the last epoch.
    scores = {}
    if rank == 0:
        for t, net in nets.items():
            _unwrap(net).load_state_dict(best_weights[t])
            scores[t] = _score_test(_unwrap(net), ray.train.get_dataset_shard(f"test_{t}"), t, device, train.batch_size)
    _report({"epoch": state["epoch"], "scored": True}, nets, opts, state, best_weights, rank, scores)


def _unwrap(net: torch.nn.Module) -> torch.nn.Module:
    return net.module if hasattr(net, "module") else net


def _report(metrics, nets, opts, state, best_weights, rank, test_scores=None) -> None:
    import ray.train

    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        for t, arrays in (test_scores or {}).items():
            np.savez(os.path.join(d, TEST_SCORES_FILE.format(task=t)), **arrays)
        torch.save(
            {
                "nets": {t: _unwrap(n).state_dict() for t, n in nets.items()},
                "opts": {t: o.state_dict() for t, o in opts.items()},
                "state": copy.deepcopy(state),
                "best_weights": best_weights,
            },
            os.path.join(d, CHECKPOINT_FILE),
        )
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
