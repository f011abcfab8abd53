"""Running one trial end to end on Ray: streams, TorchTrainer, selected models, test scores,
result files. Used by `raymtl train` and, per member, by the ensemble grid."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import raymtl
from raymtl import schema, storage
from raymtl.config import TASKS, Preset, get_preset
from raymtl.errors import UserError
from raymtl.train import trial as T
from raymtl.train.evaluate import vote
from raymtl.train.experiments import Experiment, get_experiment
from raymtl.train.loop import CHECKPOINT_FILE, TEST_SCORES_FILE, LoopConfig, build_network, train_loop_per_worker
from raymtl.train.scoring import scores_matrix, scores_table

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrialOptions:
    """How a trial runs (not what it computes)."""

    use_gpu: bool | None = None  # None: use one if the cluster has any
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0  # when use_gpu
    max_failures: int = 2  # worker restarts from the last checkpoint before the trial fails
    stage1_from: str | None = None  # a model file to fine-tune from, instead of the RUN's stage-1 trial
    train_callbacks: tuple = ()  # Ray Train callbacks (the ensemble passes TuneReportCallback)


def ensure_run_manifest(run: str, preset: Preset, features: str) -> dict:
    """Write RUN/manifest.json on first use; later, refuse a different preset or features."""
    fs, path = storage.resolve(run)
    manifest_path = storage.join(path, T.RUN_MANIFEST)
    if storage.is_file(fs, manifest_path):
        manifest = storage.read_json(fs, manifest_path)
        if manifest["preset"]["name"] != preset.name or manifest["preset"] != preset.to_dict():
            raise UserError(
                f"{run} was made with preset {manifest['preset']['name']!r}; this run asks for {preset.name!r}. "
                "Use another --out for another preset."
            )
        if manifest.get("features") != os.path.abspath(features) and "://" not in features:
            log.warning("%s was made from features %s; now reading %s", run, manifest.get("features"), features)
        return manifest
    manifest = {
        "format": "raymtl-run",
        "raymtl_version": raymtl.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "features": features if "://" in features else os.path.abspath(features),
        "preset": preset.to_dict(),
    }
    storage.write_json(fs, manifest_path, manifest, overwrite=False)
    return manifest


def stage1_models(run: str, spec: T.TrialSpec, exp: Experiment, stage1_from: str | None) -> dict[str, str | None]:
    """Per target, the model file a fine-tune starts from; a clear error if there is none."""
    if exp.init_from is None:
        return {t: None for t in exp.targets}
    if stage1_from:
        fs, path = storage.resolve(stage1_from)
        if not storage.is_file(fs, path):
            raise UserError(f"--from {stage1_from}: no such model file")
        return {t: storage.absolute(stage1_from) for t in exp.targets}
    source = spec.with_experiment(exp.init_from)
    out = {}
    for t in exp.targets:
        uri = T.model_file(run, source, exp.stage1_task(t))
        fs, path = storage.resolve(uri)
        if not (T.is_finished(run, source) and storage.is_file(fs, path)):
            raise UserError(
                f"{spec.experiment} starts from the {exp.init_from} trial {source.name}, which is not finished in "
                f"{run}: run `raymtl train --experiment {exp.init_from} --division {spec.division} --repeat "
                f"{spec.repeat} --variant {spec.variant}` first, or pass --from MODEL_FILE"
            )
        out[t] = uri
    return out


# Streams smaller than this are read from Parquet once and kept in the object store; larger
# ones stream from Parquet every epoch. Validation sets are always kept (read every epoch).
MATERIALIZE_BELOW_BYTES = 512 * 2**20
PATCH_BYTES = 128 * 128 * 4


def _datasets(exp: Experiment, spec: T.TrialSpec, features: str, preset: Preset, seed: int, counter) -> dict:
    from raymtl.data import streams

    cap = preset.train.max_train_patches
    if exp.mixup:
        n = streams.expected_patches(features, "tut2017", spec.division, "train", spec.variant)
        train = streams.mixup_stream(
            features, spec.division, "train", spec.variant, seed, counter, max_patches=cap,
            materialize_scenes=min(n, cap or n) * PATCH_BYTES < MATERIALIZE_BELOW_BYTES,
        )  # fmt: skip
    else:
        (target,) = exp.targets
        n = streams.expected_patches(features, schema.TASK_DATASET[target], spec.division, "train", spec.variant)
        train = streams.single_task_stream(features, target, spec.division, "train", spec.variant, max_patches=cap)
        if min(n, cap or n) * PATCH_BYTES < MATERIALIZE_BELOW_BYTES:
            train = train.materialize()
    out = {"train": train}
    for t in exp.targets:
        val = streams.single_task_stream(features, t, spec.division, "validation", spec.variant, with_ids=True)
        out[f"val_{t}"] = val.materialize()
        # Read once, after the last epoch, by the worker that scores them.
        out[f"test_{t}"] = streams.test_patches(features, schema.TASK_DATASET[t], spec.division, spec.variant)
    return out


def run_trial(
    spec: T.TrialSpec,
    features: str,
    run: str,
    preset: Preset | str = "tiny",
    options: TrialOptions = TrialOptions(),
) -> dict[str, Any]:
    """Train, select, score and record one trial; returns its result.json content.

    A finished trial is not run again: its stored result comes back with `already_done: True`.
    """
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    from raymtl.data import streams
    from raymtl.data.mixup import EpochCounter
    from raymtl.ray_session import ensure_ray

    preset = get_preset(preset) if isinstance(preset, str) else preset
    features, run = storage.absolute(features), storage.absolute(run)
    fs, run_path = storage.resolve(run)
    tdir = T.trial_dir(run, spec)
    if T.is_finished(run, spec):
        result = storage.read_json(fs, storage.join(tdir, T.RESULT))
        log.info("%s: already done (%s)", spec.name, _accuracy_text(result["test_accuracy"]))
        return {**result, "already_done": True}

    exp = get_experiment(spec.experiment)
    init = stage1_models(run, spec, exp, options.stage1_from)
    ensure_run_manifest(run, preset, features)
    ensure_ray()
    t0 = time.perf_counter()
    # Class names in label order (read once); stored in each model file too, so that
    # `raymtl predict` needs no FEATURES folder.
    classes = streams.read_manifest(features)["classes"]
    class_names = {t: list(classes[schema.TASK_DATASET[t]]) for t in TASKS}
    n_classes = {t: len(names) for t, names in class_names.items()}
    seed = spec.seed(preset.train.seed)
    counter = EpochCounter.start() if exp.mixup else None
    use_gpu = options.use_gpu if options.use_gpu is not None else ray.cluster_resources().get("GPU", 0) > 0
    loop_cfg = LoopConfig(
        preset=preset,
        model_kind=exp.model_kind,
        targets=exp.targets,
        n_classes=n_classes,
        epochs={t: preset.train.epochs(exp.stage, t) for t in exp.targets},
        mixup=exp.mixup,
        seed=seed,
        init=init,
        freeze=exp.freeze,
        epoch_counter=counter,
    )
    log.info(
        "%s: training %s for %s epochs on %s", spec.name, exp.model_kind, loop_cfg.epochs, "GPU" if use_gpu else "CPU"
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**dataclasses.asdict(loop_cfg), "preset": preset.to_dict(), "epoch_counter": counter},
        scaling_config=ray.train.ScalingConfig(
            num_workers=1,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": options.cpus_per_worker}
            | ({"GPU": options.gpus_per_worker} if use_gpu else {}),
        ),
        datasets=_datasets(exp, spec, features, preset, seed, counter),
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
        run_config=ray.train.RunConfig(
            name=spec.name,
            storage_path=storage.join(run if "://" in run else run_path, "ray"),
            failure_config=ray.train.FailureConfig(max_failures=options.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=list(options.train_callbacks),
        ),
    )
    fit = trainer.fit()
    if fit.error is not None:
        raise fit.error
    with fit.checkpoint.as_directory() as d:
        import torch

        saved = torch.load(os.path.join(d, CHECKPOINT_FILE), map_location="cpu", weights_only=False)
        test_scores = {}
        for t in exp.targets:
            with np.load(os.path.join(d, TEST_SCORES_FILE.format(task=t)), allow_pickle=True) as z:
                test_scores[t] = {k: z[k] for k in z.files}
    state, best_weights = saved["state"], saved["best_weights"]

    fs.create_dir(tdir, recursive=True)
    tables, accuracy, model_uris = [], {}, {}
    for t in exp.targets:
        model_uris[t] = _save_selected(run, spec, exp, loop_cfg, t, best_weights[t], state, class_names)
        table = scores_table(spec.name, t, test_scores[t])
        tables.append(table)
        clips, labels = table.column(schema.CLIP).to_numpy(), table.column(schema.LABEL).to_numpy()
        accuracy[t] = vote(clips, scores_matrix(table), labels).accuracy
    _write_parquet(fs, storage.join(tdir, T.SCORES), pa.concat_tables(tables))
    metrics_lines = "".join(json.dumps(m) + "\n" for m in state["history"])
    storage.write_text(fs, storage.join(tdir, T.METRICS), metrics_lines)
    result = {
        "trial": spec.name,
        "experiment": spec.experiment,
        "division": spec.division,
        "repeat": spec.repeat,
        "variant": spec.variant,
        "preset": preset.name,
        "targets": list(exp.targets),
        "test_accuracy": accuracy,
        "best_epoch": state["best_epoch"],
        "val_accuracy": state["best_acc"],
        "epochs": loop_cfg.epochs,
        "resumed_after_epoch": state.get("resumed_after_epoch", []),  # worker restarts from a checkpoint
        "seed": seed,
        "stage1": init,
        "models": model_uris,
        "n_classes": n_classes,
        "seconds": round(time.perf_counter() - t0, 1),
        "device": "GPU" if use_gpu else "CPU",
        "raymtl_version": raymtl.__version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    storage.write_json(fs, storage.join(tdir, T.RESULT), result, overwrite=False)  # last: marks it finished
    log.info("%s: done in %.0f s (%s)", spec.name, result["seconds"], _accuracy_text(accuracy))
    return {**result, "already_done": False}


def _accuracy_text(accuracy: dict[str, float]) -> str:
    return ", ".join(f"{t} test accuracy {a:.3f}" for t, a in accuracy.items())


def _save_selected(
    run, spec, exp, loop_cfg: LoopConfig, target: str, weights: dict, state: dict, class_names: dict | None = None
) -> str:
    from raymtl.models import save_model

    net = build_network(dataclasses.replace(loop_cfg, init={}), target)
    net.load_state_dict(weights)
    buf = io.BytesIO()
    save_model(
        buf,
        net,
        kind=exp.model_kind,
        task=target,
        cfg=_model_cfg_for(loop_cfg, exp),
        n_classes=loop_cfg.n_classes,
        extra={
            "trial": spec.name,
            "experiment": spec.experiment,
            "variant": spec.variant,
            "best_epoch": int(state["best_epoch"][target]),
            "val_accuracy": float(state["best_acc"][target]),
            # {task: [class names]} in label order; checkpoints written before this lack it.
            **({"class_names": class_names} if class_names is not None else {}),
        },
    )
    uri = T.model_file(run, spec, target)
    fs, path = storage.resolve(uri)
    storage.write_bytes(fs, path, buf.getvalue())
    return uri


def _model_cfg_for(loop_cfg: LoopConfig, exp: Experiment):
    cfg = loop_cfg.preset.model
    if exp.model_kind == "fusion" and not exp.freeze:
        cfg = dataclasses.replace(cfg, freeze_through=0)
    return cfg


def _write_parquet(fs, path: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.write_bytes(fs, path, buf.getvalue())
