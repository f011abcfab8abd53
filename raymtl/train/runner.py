"""Running trials end to end on Ray: the streams, one TorchTrainer run for a chain of trials
(`raymtl.train.loop` trains, scores and records each), and their results. Used by `raymtl train`
(one trial) and, per member, by the ensemble grid (its stages in one Train run)."""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import ray
import ray.train
from ray.train.torch import TorchTrainer

import raymtl
from raymtl import schema, storage
from raymtl.config import TASKS, Preset, get_preset
from raymtl.data import partitions, streams
from raymtl.data.mixup import EpochCounter
from raymtl.errors import UserError
from raymtl.ray_session import ensure_ray
from raymtl.run import layout, records
from raymtl.run.records import RunManifest, TrialResult
from raymtl.tracking import check_mlflow
from raymtl.train import trial as T
from raymtl.train.experiments import Experiment, get_experiment
from raymtl.train.loop import LoopConfig, train_loop_per_worker
from raymtl.train.stage import StageConfig

log = logging.getLogger(__name__)

# Ray Train's controller collects a worker's report only when it polls the worker, every
# RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (2 s by default), and a worker's next report waits until the
# previous one is collected. An epoch shorter than that waits out the rest: a fine-tune over the
# frozen trunk (~0.1 s an epoch on a CPU) took 2 s an epoch, 40 s of the demo's 20-epoch
# fine-tunes. Polled every 0.2 s instead; Ray Train passes the variable on from the process that
# makes the trainer to its controller. A value the user set wins.
REPORT_POLL_S = "0.2"


@dataclasses.dataclass(frozen=True)
class TrialOptions:
    """How a trial runs (not what it computes)."""

    use_gpu: bool | None = None  # None: use one if the cluster has any
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0  # when use_gpu
    # The resource name the accelerator is requested as. Only `GPU` gives the worker a CUDA
    # device; another name (a custom resource of the accelerator nodes) places the worker there
    # and trains on its CPU, as tests on a local autoscaling cluster do.
    accelerator: str = "GPU"
    max_failures: int = 2  # worker restarts from the last checkpoint before the trial fails
    stage1_from: str | None = None  # a model file to fine-tune from, instead of the RUN's stage-1 trial
    train_callbacks: tuple = ()  # Ray Train callbacks (the ensemble passes TuneReportCallback)
    mlflow_uri: str | None = None  # an MLflow tracking server to log each trial to (raymtl.tracking)


@dataclasses.dataclass(frozen=True)
class TrialOutcome:
    """A trial's result, and whether it was finished before this run (then it was not run)."""

    result: TrialResult
    already_done: bool


def ensure_run_manifest(run: str, preset: Preset, features: str) -> RunManifest:
    """Write RUN/manifest.json on first use; later, refuse a different preset or features."""
    fs, path = storage.resolve(run)
    if storage.is_file(fs, layout.manifest(path)):
        manifest = records.read_manifest(fs, path)
        if manifest.preset_name != preset.name or manifest.preset != preset.to_dict():
            raise UserError(
                f"{run} was made with preset {manifest.preset_name!r}; this run asks for {preset.name!r}. "
                "Use another --out for another preset."
            )
        if manifest.features != storage.absolute(features):
            log.warning("%s was made from features %s; now reading %s", run, manifest.features, features)
        return manifest
    manifest = RunManifest(
        preset=preset.to_dict(),
        features=storage.absolute(features),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        raymtl_version=raymtl.__version__,
    )
    records.write_manifest(fs, path, manifest)
    return manifest


def stage1_models(
    run: str, spec: T.TrialSpec, exp: Experiment, stage1_from: str | None, chained: tuple[str, ...] = ()
) -> dict[str, str | None]:
    """Per target, the model file a fine-tune starts from; a clear error if there is none.
    `chained`: trials trained earlier in the same Train run, whose model files will be there."""
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
        if source.name not in chained and not (T.is_finished(run, source) and storage.is_file(fs, path)):
            raise UserError(
                f"{spec.experiment} starts from the {exp.init_from} trial {source.name}, which is not "
                f"finished in {run}: run `raymtl train --experiment {exp.init_from} "
                f"--division {spec.division} --repeat {spec.repeat} --variant {spec.variant}` first, "
                "or pass --from MODEL_FILE"
            )
        out[t] = uri
    return out


class _Keeper:
    """Decides, stream by stream, which of a member's streams are read once and kept in the
    object store (`streams.fits_in_object_store`: from the node's own object store, which Ray
    sizes from its real memory), and logs each decision. Validation sets first (read every
    epoch), then the training streams, then the test sets (read once per stage). Streams of the
    same clip rows (the mixup stream's scenes and the ASC fine-tune's patches) keep them once,
    in `splits`."""

    def __init__(self, features: str):
        self.features = features
        self.kept = 0
        self.splits = streams.KeptSplits()
        self.decided: dict[tuple, tuple[str, bool]] = {}  # rows -> (the first stream of them, kept)

    def __call__(
        self, what: str, dataset: str, division: int, split: str, variant: str, with_dataset: bool = False
    ) -> bool:
        key = streams.rows_key(dataset, division, split, variant, with_dataset)
        if key in self.decided:
            first, keep = self.decided[key]
            log.info("%s: the clip rows of %s, %s", what, first, "kept once for both" if keep else "streamed")
            return keep
        n = partitions.stored_bytes(self.features, dataset, division, split, variant)
        keep = streams.fits_in_object_store(self.kept + n)
        self.kept += n if keep else 0
        self.decided[key] = (what, keep)
        if keep:
            why = "kept in the object store after the first read"
        else:
            why = "streamed from Parquet on every pass (more than this node's object store can keep)"
        patches = partitions.expected_patches(self.features, dataset, division, split, variant)
        log.info("%s: %.1f MB of clip rows (%d patches) %s", what, n / 1e6, patches, why)
        return keep


def _train_stream(stage: StageConfig, features: str, counter, keep: _Keeper):
    spec, cap = stage.spec, stage.preset.train.max_train_patches
    # The streams shuffle (files every pass, patches within a file): see StageConfig.shuffle_buffer.
    if stage.experiment.mixup:
        kept = keep(f"{spec.name} train (mixup)", "tut2017", spec.division, "train", spec.variant)
        return streams.mixup_stream(
            features,
            spec.division,
            "train",
            spec.variant,
            stage.seed,
            counter,
            max_patches=cap,
            materialize_scenes=kept,
            kept=keep.splits,
            shuffle=True,
        )
    (target,) = stage.targets
    dataset = schema.TASK_DATASET[target]
    kept = keep(f"{spec.name} train", dataset, spec.division, "train", spec.variant)
    return streams.single_task_stream(
        features,
        target,
        spec.division,
        "train",
        spec.variant,
        max_patches=cap,
        shuffle_seed=stage.seed,
        materialize=kept,
        kept=keep.splits,
    )


def _datasets(stages: list[StageConfig], features: str, counter) -> dict:
    """Every stream the Train run's stages read: one training stream per stage, and one
    validation and one test set per task, shared by the stages (one member: one division and
    variant)."""

    spec = stages[0].spec
    keep = _Keeper(features)
    tasks = list(dict.fromkeys(t for stage in stages for t in stage.targets))
    out = {}
    for t in tasks:
        kept = keep(f"validation ({t})", schema.TASK_DATASET[t], spec.division, "validation", spec.variant)
        out[f"val_{t}"] = streams.single_task_stream(
            features,
            t,
            spec.division,
            "validation",
            spec.variant,
            with_ids=True,
            materialize=kept,
            kept=keep.splits,
        )
    out.update({stage.train_dataset: _train_stream(stage, features, counter, keep) for stage in stages})
    for t in tasks:
        dataset = schema.TASK_DATASET[t]
        # Read after each stage's last epoch by the worker that scores them: kept when it fits,
        # as a member's stages score the same test set.
        kept = len(stages) > 1 and keep(
            f"test ({t})", dataset, spec.division, "test", spec.variant, with_dataset=True
        )
        out[f"test_{t}"] = streams.test_patches(
            features, dataset, spec.division, spec.variant, materialize=kept, kept=keep.splits
        )
    return out


def run_trial(
    spec: T.TrialSpec,
    features: str,
    run: str,
    preset: Preset | str = "tiny",
    options: TrialOptions = TrialOptions(),
) -> TrialOutcome:
    """Train, select, score and record one trial.

    A finished trial is not run again: its stored result comes back with `already_done`.
    """
    return run_trials([spec], features, run, preset, options)[0]


def run_trials(
    specs: list[T.TrialSpec],
    features: str,
    run: str,
    preset: Preset | str = "tiny",
    options: TrialOptions = TrialOptions(),
    name: str | None = None,
) -> list[TrialOutcome]:
    """Train, select, score and record a chain of trials of one (division, repeat, variant) in
    one Ray Train run named `name` (default: the only trial's name), in order; a fine-tune may
    start from a trial earlier in the chain. Returns each trial's outcome; those finished before
    are `already_done` (they are not run again).

    The run name must not depend on which trials are left: a rerun after a crash resumes the
    Train run of that name from its last checkpoint.
    """

    if len({(s.division, s.repeat, s.variant) for s in specs}) != 1:
        raise ValueError(f"one Train run trains trials of one division, repeat and variant, got {specs}")
    if name is None:
        if len(specs) != 1:
            raise ValueError("a Train run of several trials needs a name")
        name = specs[0].name
    preset = get_preset(preset) if isinstance(preset, str) else preset
    features, run = storage.absolute(features), storage.absolute(run)
    fs, run_path = storage.resolve(run)
    done = {}
    for spec in specs:
        if T.is_finished(run, spec):
            done[spec.name] = TrialOutcome(_read_result(fs, run, spec), already_done=True)
            log.info("%s: already done (%s)", spec.name, _accuracy_text(done[spec.name].result.test_accuracy))
    todo = [s for s in specs if s.name not in done]
    if not todo:
        return [done[s.name] for s in specs]

    inits = {}
    for i, spec in enumerate(todo):
        chained = tuple(s.name for s in todo[:i])
        inits[spec.name] = stage1_models(
            run, spec, get_experiment(spec.experiment), options.stage1_from, chained
        )
    ensure_run_manifest(run, preset, features)
    check_mlflow(options.mlflow_uri)
    ensure_ray()
    # Class names in label order (read once); stored in each model file too, so that
    # `raymtl predict` needs no FEATURES folder.
    classes = partitions.read_manifest(features)["classes"]
    class_names = {t: list(classes[schema.TASK_DATASET[t]]) for t in TASKS}
    n_classes = {t: len(names) for t, names in class_names.items()}
    stages = [
        StageConfig(
            spec=s, preset=preset, n_classes=n_classes, init=inits[s.name], train_dataset=f"train_{i}"
        )
        for i, s in enumerate(todo)
    ]
    counter = EpochCounter.start() if any(s.experiment.mixup for s in stages) else None
    use_gpu = options.use_gpu if options.use_gpu is not None else ray.cluster_resources().get("GPU", 0) > 0
    for s in stages:
        where = options.accelerator if use_gpu else "CPU"
        log.info("%s: training %s for %s epochs on %s", s.trial, s.model_kind, s.epochs, where)
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", REPORT_POLL_S)
    t0 = time.perf_counter()
    datasets = _datasets(stages, features, counter)
    log.info("%s: streams ready in %.1f s", name, time.perf_counter() - t0)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "loop": LoopConfig(
                run=run,
                stages=tuple(stages),
                class_names=class_names,
                epoch_counter=counter,
                mlflow_uri=options.mlflow_uri,
            )
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=1,
            use_gpu=use_gpu and options.accelerator == "GPU",
            resources_per_worker={"CPU": options.cpus_per_worker}
            | ({options.accelerator: options.gpus_per_worker} if use_gpu else {}),
        ),
        datasets=datasets,
        # One worker: a split would be the whole dataset anyway, and each split stream costs a
        # coordinator actor (seconds of start-up on a small machine).
        dataset_config=ray.train.DataConfig(datasets_to_split=[]),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=layout.ray_storage(run, run_path),
            failure_config=ray.train.FailureConfig(max_failures=options.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=list(options.train_callbacks),
        ),
    )
    fit = trainer.fit()
    if fit.error is not None:
        raise fit.error
    for s in todo:
        if not T.is_finished(run, s):
            raise RuntimeError(f"the Train run {name} ended without recording {s.name}")
        done[s.name] = TrialOutcome(_read_result(fs, run, s), already_done=False)
        log.info("%s: done (%s)", s.name, _accuracy_text(done[s.name].result.test_accuracy))
    log.info("%s: %d trial(s) trained in %.0f s", name, len(todo), time.perf_counter() - t0)
    return [done[s.name] for s in specs]


def _read_result(fs, run: str, spec: T.TrialSpec) -> TrialResult:
    _, run_path = storage.resolve(run)
    return records.read_result(fs, run_path, spec.name)


def _accuracy_text(accuracy: dict[str, float]) -> str:
    return ", ".join(f"{t} test accuracy {a:.3f}" for t, a in accuracy.items())
