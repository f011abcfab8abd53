"""`train_loop_per_worker`: the training loop that Ray Train runs on each worker.

One Train run trains a chain of trials ("stages") back to back: one trial for `raymtl train`,
an ensemble member's `mtl-ic` then `finetune-asc` and `finetune-aec` for `raymtl ensemble`.
A Train run costs seconds of fixed start-up (controller, worker process, imports), so a member
pays it once instead of once per stage; each stage still starts as soon as the one it builds on
is recorded.

A stage trains one network per target task on the same batches (an MTL experiment trains two,
one per task, docs/method.md §5; everything else one), validates each on its task's un-mixed
validation patches by per-recording accuracy every epoch, keeps the best-validating weights, and
reports metrics with a checkpoint every epoch. After its last epoch, rank 0 scores the test
patches with the selected weights, where the model already is (the GPU on a cluster), and writes
the trial folder (`raymtl.train.record`). Rank 0 also sends each trial's settings, epochs and test
accuracy to TensorBoard and MLflow (`raymtl.tracking`).

Faults: a restarted worker runs this function again. Stages whose trial folder is finished are
skipped; the stage named in the last checkpoint resumes from it; later ones start afresh.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.nn.functional as F

from raymtl import schema
from raymtl.models.networks import trainable_parameters
from raymtl.ray_session import placement
from raymtl.run.progress import TrialProgressWriter
from raymtl.tracking import TrialTracker
from raymtl.train import trial as T
from raymtl.train.evaluate import recording_accuracy
from raymtl.train.frozen import FrozenFeatures, compute_h15, precomputes
from raymtl.train.record import write_trial
from raymtl.train.scoring import SCORES
from raymtl.train.stage import StageConfig, build_network

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "state.pt"
TEST_ID_COLUMNS = (schema.DATASET, schema.CLIP, schema.IMAGE, schema.PATCH_INDEX, schema.LABEL)


@dataclass(frozen=True)
class LoopConfig:
    """What one Train run does: its stages in order, and where it records them."""

    run: str  # the RUN folder (absolute path or URI): trial folders are written there
    stages: tuple[StageConfig, ...]
    class_names: dict[str, list[str]]  # per task, in label order; stored in every model file
    epoch_counter: Any = None  # raymtl.data.mixup.EpochCounter handle (when a stage mixes)
    mlflow_uri: str | None = None  # an MLflow tracking server each trial is logged to (raymtl.tracking)


def _labels_for(batch: dict, target: str, mixup: bool) -> dict[str, torch.Tensor]:
    """The labels a network for `target` is trained on: both tasks' on mixup batches."""
    tasks = ("asc", "aec") if mixup else (target,)
    return {t: batch[schema.TASK_LABEL[t]] for t in tasks}


def _validate(
    net: torch.nn.Module, shard, target: str, device, batch_size: int, frozen: FrozenFeatures | None = None
) -> float:
    net.eval()
    clips, labels, scores = [], [], []
    with torch.no_grad():
        if frozen is not None:  # H15 computed once (raymtl.train.frozen): the head alone
            for h15, _ in frozen.batches(batch_size):
                scores.append(_unwrap(net).head(h15)[target].float().softmax(dim=1).cpu().numpy())
            return recording_accuracy(frozen.clips, frozen.labels.cpu().numpy(), np.concatenate(scores))
        for batch in _numpy_batches(shard, batch_size):
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
    with (
        torch.no_grad(),
        torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"),
    ):
        for batch in _numpy_batches(shard, batch_size):
            x = torch.as_tensor(np.ascontiguousarray(batch[schema.X]), device=device)
            parts[SCORES].append(net(x)[target].float().softmax(dim=1).cpu().numpy().astype(np.float32))
            for k in TEST_ID_COLUMNS:
                parts[k].append(batch[k])
    if not parts[SCORES]:
        raise RuntimeError(f"no test patches for {target}")
    return {k: np.concatenate(v) for k, v in parts.items()}


def train_loop_per_worker(config: dict) -> None:

    cfg: LoopConfig = config["loop"]
    _log_to_stderr()
    rank = ray.train.get_context().get_world_rank()
    device = ray.train.torch.get_device()
    saved = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            saved = torch.load(os.path.join(d, CHECKPOINT_FILE), map_location=device, weights_only=False)
    for stage in cfg.stages:
        if T.is_finished(cfg.run, stage.spec):  # recorded before a restart
            log.info("%s: already recorded", stage.trial)
            continue
        resume = saved if saved is not None and saved.get("trial") == stage.trial else None
        try:
            _run_stage(cfg, stage, resume, rank, device)
        except BaseException:
            TrialProgressWriter.stop_all()  # a stage that failed must not look alive
            TrialTracker.fail_all()
            raise


def _run_stage(cfg: LoopConfig, stage: StageConfig, resume: dict | None, rank: int, device) -> None:

    t0 = time.perf_counter()
    on_gpu = device.type == "cuda"
    torch.manual_seed(stage.seed + rank)
    train = stage.preset.train

    # Channels-last suits oneDNN's CPU convolutions as well as the GPU's tensor cores: the tiny
    # networks train ~1.7x faster with it on one CPU thread (benchmarks/bench_step.py).
    nets = {
        t: ray.train.torch.prepare_model(
            build_network(stage, t, restore=resume is None).to(memory_format=torch.channels_last)
        )
        for t in stage.targets
    }
    if resume is not None:  # the weights (and, for a fusion network, which layers are frozen)
        for t in nets:
            _unwrap(nets[t]).load_state_dict(resume["nets"][t])
    opts = {t: torch.optim.Adam(trainable_parameters(net), lr=train.lr) for t, net in nets.items()}
    state = {
        "epoch": -1,
        "best_acc": {t: -1.0 for t in nets},
        "best_epoch": {t: -1 for t in nets},
        "history": [],
        "seconds": 0.0,  # the stage's own time, summed over restarts
    }
    best_weights: dict[str, dict] = {}
    if resume is not None:
        for t in nets:
            opts[t].load_state_dict(resume["opts"][t])
        state, best_weights = resume["state"], resume["best_weights"]
        state.setdefault("resumed_after_epoch", []).append(state["epoch"])  # recorded in result.json
        log.info("%s: resuming from the checkpoint of epoch %d", stage.trial, state["epoch"])
    else:
        log.info("%s: training %s for %s epochs", stage.trial, stage.model_kind, stage.epochs)
    # Where this (re)start runs, from which epoch: result.json records every one.
    state.setdefault("placements", []).append(
        {**_placement(device), "from_epoch": state["epoch"] + 1, "started": round(time.time(), 1)}
    )

    # Our own live record of the stage (RUN/trials/<trial>/progress.json, raymtl.run.progress):
    # what results, the dashboard and the terminal read while it trains.
    progress = tracker = None
    if rank == 0:
        progress = TrialProgressWriter(
            cfg.run,
            stage.trial,
            stage.model_kind,
            stage.epochs,
            state["history"],
            state.get("resumed_after_epoch", []),
            placement(str(device)),
        )
        # TensorBoard (RUN/tb/<trial>) and, when given, MLflow: raymtl.tracking.
        tracker = TrialTracker(cfg.run, stage, state["history"], cfg.mlflow_uri)
    train_shard = ray.train.get_dataset_shard(stage.train_dataset)
    val_shards = {t: ray.train.get_dataset_shard(f"val_{t}") for t in nets}
    epochs = stage.epochs
    first_epoch = state["epoch"] + 1
    left = first_epoch < max(epochs.values())
    pre = _precompute(stage, nets, train_shard, val_shards, device) if left else None
    if pre is not None:  # the stage's own time, as its epochs'
        state["seconds"] = state.get("seconds", 0.0) + pre.seconds
    for epoch in range(first_epoch, max(epochs.values())):
        t_epoch = time.perf_counter()
        if stage.experiment.mixup:
            ray.get(cfg.epoch_counter.set.remote(epoch))  # fresh mixup partners this epoch
        active = [t for t in nets if epoch < epochs[t]]
        for t in active:
            nets[t].train()
        loss_sum = {t: 0.0 for t in active}
        correct = {t: 0 for t in active}
        seen = 0
        # Time spent waiting for batches (data preparation); the first epoch after the H15
        # pass (raymtl.train.frozen) counts that pass too.
        data_s = pre.seconds if pre is not None and epoch == first_epoch else 0.0
        t_mark = time.perf_counter()
        for n, forward, labels_of in _epoch_batches(stage, train_shard, pre, device, epoch):
            data_s += time.perf_counter() - t_mark
            seen += n
            for t in active:
                labels = labels_of[t]
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=on_gpu):
                    out = forward(nets[t])
                    loss = sum(F.cross_entropy(out[task].float(), y.long()) for task, y in labels.items())
                opts[t].zero_grad(set_to_none=True)
                loss.backward()
                opts[t].step()
                loss_sum[t] += float(loss.detach()) * n
                correct[t] += int((out[t].argmax(dim=1) == labels[t]).sum())
            t_mark = time.perf_counter()
        metrics: dict[str, Any] = {
            "trial": stage.trial,
            "stage": stage.model_kind,
            "epoch": epoch,
            "patches": seen,
            "seconds": round(time.perf_counter() - t_epoch, 3),
            "data_s": round(data_s, 3),
        }
        if pre is not None and epoch == first_epoch:  # in data_s, before the epoch's `seconds`
            metrics["precompute_s"] = round(pre.seconds, 3)
        t_val = time.perf_counter()
        for t in active:
            acc = _validate(nets[t], val_shards[t], t, device, train.batch_size, pre and pre.validation[t])
            metrics[f"loss_{t}"] = loss_sum[t] / max(seen, 1)
            metrics[f"train_acc_{t}"] = correct[t] / max(seen, 1)
            metrics[f"val_acc_{t}"] = acc
            # Keep the best-validating weights (the first best on ties); the last epoch's
            # weights when validation is empty.
            if acc > state["best_acc"][t] or (acc != acc):
                state["best_acc"][t], state["best_epoch"][t] = acc, epoch
                best_weights[t] = {
                    k: v.detach().cpu().clone() for k, v in _unwrap(nets[t]).state_dict().items()
                }
        metrics["validate_s"] = round(time.perf_counter() - t_val, 3)
        metrics["patches_per_s"] = round(seen / max(metrics["seconds"], 1e-9), 1)
        state["epoch"] = epoch
        state["history"].append(metrics)
        state["seconds"] = state.get("seconds", 0.0) + time.perf_counter() - t_epoch
        _report(metrics, stage.trial, nets, opts, state, best_weights, rank)
        if progress is not None:  # rank 0: our live record, then the trackers
            progress.epoch(metrics)
            tracker.epoch(metrics)

    # The selected weights score the test patches (every worker holds the whole test set; rank 0
    # scores it and records the trial). This also runs after a restart that resumed past the
    # last epoch.
    if rank == 0:
        t_score = time.perf_counter()
        scores = {}
        for t, net in nets.items():
            _unwrap(net).load_state_dict(best_weights[t])
            scores[t] = _score_test(
                _unwrap(net), ray.train.get_dataset_shard(f"test_{t}"), t, device, train.batch_size
            )
        seconds = state.get("seconds", 0.0) + time.perf_counter() - t_score
        result = write_trial(
            cfg.run,
            stage,
            state,
            best_weights,
            scores,
            cfg.class_names,
            seconds,
            "GPU" if on_gpu else "CPU",
            str(device),
        )
        progress.close()
        tracker.finish(result.test_accuracy)
        took, scoring = time.perf_counter() - t0, time.perf_counter() - t_score
        log.info(
            "%s: recorded in %.0f s, scoring the test set %.1f s (%s)",
            stage.trial,
            took,
            scoring,
            result.test_accuracy,
        )


@dataclass(frozen=True)
class _Precomputed:
    """A fine-tune's training and validation patches as H15 of its frozen layers 1-15."""

    train: FrozenFeatures
    validation: dict[str, FrozenFeatures]
    seconds: float


def _precompute(stage: StageConfig, nets: dict, train_shard, val_shards: dict, device) -> _Precomputed | None:
    """H15 of the training and validation patches, computed once, when every network of the
    stage has layers 1-15 frozen (a fine-tune or transfer) and one worker trains it (the head
    alone would bypass DistributedDataParallel's gradient sync); else None (stream every epoch)."""
    plain = {t: _unwrap(net) for t, net in nets.items()}
    if not all(precomputes(net) for net in plain.values()) or stage.experiment.mixup:
        return None
    if ray.train.get_context().get_world_size() != 1:
        log.info("%s: several workers: the frozen layers run every epoch", stage.trial)
        return None
    t0 = time.perf_counter()
    (target,) = plain  # a fusion network has one target task
    batch_size = stage.preset.train.batch_size
    train = compute_h15(plain[target], _numpy_batches(train_shard, batch_size), target, device)
    validation = {
        target: compute_h15(
            plain[target],
            _numpy_batches(val_shards[target], batch_size),
            target,
            device,
            with_ids=True,
        )
    }
    seconds = time.perf_counter() - t0
    log.info(
        "%s: layers 1-15 are frozen: their output for %d training and %d validation patches "
        "computed once in %.1f s (%.1f MB); the epochs train the dense layers on it",
        stage.trial,
        len(train),
        len(validation[target]),
        seconds,
        (train.nbytes + validation[target].nbytes) / 1e6,
    )
    return _Precomputed(train, validation, seconds)


def _numpy_batches(shard, batch_size: int):
    return shard.iter_batches(batch_size=batch_size, batch_format="numpy")


def _epoch_batches(stage: StageConfig, shard, pre: _Precomputed | None, device, epoch: int):
    """One epoch's training batches as (patches, forward, labels): `forward(net)` gives the
    net's logits for the batch, `labels[target]` the labels its loss takes (both tasks' on a
    mixup batch, the target's own otherwise)."""
    train = stage.preset.train
    if pre is not None:  # a permutation of the H15 set, fresh every epoch
        generator = torch.Generator().manual_seed(stage.seed * 1000 + epoch)
        for h15, y in pre.train.batches(train.batch_size, generator):
            yield len(y), (lambda net, h15=h15: _unwrap(net).head(h15)), {t: {t: y} for t in stage.targets}
        return
    for batch in shard.iter_torch_batches(
        batch_size=train.batch_size,
        local_shuffle_buffer_size=stage.shuffle_buffer,
        local_shuffle_seed=stage.seed * 1000 + epoch,
        device=device,
    ):
        x = batch[schema.X].unsqueeze(1).contiguous(memory_format=torch.channels_last)  # (B, 1, 128, 128)
        labels = {t: _labels_for(batch, t, stage.experiment.mixup) for t in stage.targets}
        yield len(x), (lambda net, x=x: net(x)), labels


def _placement(device) -> dict:
    """The node and device this Train worker runs on, and the resources it holds."""

    ctx = ray.get_runtime_context()
    return {
        "node_id": ctx.get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "device": str(device),
        "resources": ctx.get_assigned_resources(),
    }


def _log_to_stderr() -> None:
    """Our INFO lines from the worker process (Ray forwards its stderr to the driver)."""

    root = logging.getLogger("raymtl")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False  # Ray's own handlers would print each line again


def _unwrap(net: torch.nn.Module) -> torch.nn.Module:
    return net.module if hasattr(net, "module") else net


def _report(metrics, trial, nets, opts, state, best_weights, rank) -> None:
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(
            {
                "trial": trial,  # which stage of the Train run this checkpoint belongs to
                "nets": {t: _unwrap(n).state_dict() for t, n in nets.items()},
                "opts": {t: o.state_dict() for t, o in opts.items()},
                "state": copy.deepcopy(state),
                "best_weights": best_weights,
            },
            os.path.join(d, CHECKPOINT_FILE),
        )
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
