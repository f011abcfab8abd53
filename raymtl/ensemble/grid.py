"""The grids: chains of trials as Ray Train runs under Ray Tune (the ensemble's members, the study's
chains, raymtl.ensemble.study).

A chain (raymtl.train.chains) is a list of trials of one (division, repeat, variant) that one
Train run trains in order, each fine-tune after the trial it starts from. The ensemble's chains
are its members: one Tune trial per (division, repeat, variant) runs that member's stages back to back: the
`mtl-ic` trial (which trains the stage-1 network of each target task: alpha 0.7 and ASC's
epochs for ASC, alpha 0.6 and AEC's epochs for AEC), then `finetune-asc` and `finetune-aec`,
each starting as soon as its own stage 1 is recorded. The stages are one `TorchTrainer` run
(`member-d<K>-r<R>-<variant>`) inside the Tune function trainable (Ray Train V2's way to run
many Train runs under Tune), reporting to Tune through `TuneReportCallback`: a member pays Ray
Train's start-up once, not once per stage. `max_concurrent_trials` bounds how many run at once.
What each member requests and how many are queued come from what the cluster has or can add
(`raymtl.ensemble.capacity`); one driver at a time trains a RUN (`raymtl.ensemble.lock`).

Faults: a Train worker that dies restarts from its last checkpoint (`FailureConfig`); a rerun of
the same command skips finished trials (their `result.json`) and resumes unfinished ones from
their Train checkpoints, which live under names made only from the member's coordinates.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune import Callback
from ray.tune.integration.ray_train import TuneReportCallback

from raymtl import storage
from raymtl.config import Preset, get_preset
from raymtl.ensemble.capacity import plan_resources, read_capacity
from raymtl.ensemble.lock import RunLock
from raymtl.ensemble.plan import EnsemblePlan, member_experiment, write_plan
from raymtl.live import GridDisplay
from raymtl.ray_session import ensure_ray, placement
from raymtl.run import layout
from raymtl.run.progress import DONE, FAILED, QUEUED, RUNNING, write_member
from raymtl.tracking import check_mlflow
from raymtl.train import trial as T
from raymtl.train.runner import TrialOptions, ensure_run_manifest, run_trials
from raymtl.train.trial import TrialSpec

log = logging.getLogger(__name__)

STAGE1 = "mtl-ic"


@dataclass(frozen=True)
class GridOptions:
    # Accelerators per Train worker; None: 1 if the cluster has or can add them.
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None  # per Train worker; None: `raymtl.ensemble.capacity.plan_resources`
    max_concurrent: int | None = None  # None: every member on a cluster that can add nodes, else what fits
    max_failures: int = 2  # Train worker restarts per stage
    # The resource a member's accelerator is: `GPU` on real clusters; tests on a local autoscaling
    # cluster name a custom resource of their worker nodes (a fake GPU has no CUDA device).
    accelerator: str = "GPU"
    mlflow_uri: str | None = None  # an MLflow tracking server to log each trial to (raymtl.tracking)


def member_trials(division: int, repeat: int, variant: str, tasks) -> list[T.TrialSpec]:
    """The trials of one member, in the order they run."""
    specs = [T.TrialSpec(STAGE1, division, repeat, variant)]
    specs += [T.TrialSpec(member_experiment(t), division, repeat, variant) for t in tasks]
    return specs


def _chain_specs(chain: dict[str, Any]) -> list[TrialSpec]:
    return [TrialSpec(e, chain["division"], chain["repeat"], chain["variant"]) for e in chain["experiments"]]


def chain_name(chain: dict[str, Any]) -> str:
    """The chain's Train run name (raymtl.train.trial.chain_run_name): `member-d1-r1-triple` for
    a member's stages, e.g. `direct-asc+transfer-aec-d1-r1-triple` for another chain."""
    return T.chain_run_name(_chain_specs(chain))


def run_chain(config: dict[str, Any]) -> dict[str, Any]:
    """Tune function trainable: one chain's trials in one Train run, skipping those already
    finished. A chain that is an ensemble member (`config["member"]`) also keeps the member's
    state record (raymtl.run.progress) up to date."""

    chain = config["chain"]
    options = TrialOptions(
        use_gpu=config["gpus_per_trial"] > 0,
        cpus_per_worker=config["cpus_per_trial"],
        gpus_per_worker=config["gpus_per_trial"],
        accelerator=config["accelerator"],
        max_failures=config["max_failures"],
        train_callbacks=(TuneReportCallback(),),
        mlflow_uri=config["mlflow_uri"],
    )
    specs = _chain_specs(chain)
    coords = (config["run"], chain["division"], chain["repeat"], chain["variant"])
    member = chain["member"]
    preset = Preset.from_dict(config["preset"])
    if member:
        write_member(*coords, RUNNING, placement=placement())
    try:
        results = run_trials(specs, config["features"], config["run"], preset, options, chain_name(chain))
    except BaseException as e:
        if member:
            write_member(*coords, FAILED, error=f"{type(e).__name__}: {e}".splitlines()[0][:300])
        raise
    if member:
        write_member(*coords, DONE)
    final = {f"{o.result.experiment}/{t}": a for o in results for t, a in o.result.test_accuracy.items()}
    tune.report({"chain_done": 1, **final})
    return final


@dataclass(frozen=True)
class GridOutcome:
    """What a grid did: its chains, those finished before, those trained now and those failed."""

    chains: int
    finished_before: int
    trained: int
    failed: list[str]
    trials_trained: int  # trials not finished before, in the chains that ran
    seconds: float


@dataclass(frozen=True)
class EnsembleReport:
    run: str
    members: int
    finished_before: int
    trained: int
    failed: list[str]
    seconds: float

    def summary(self) -> str:
        failed = f"; FAILED: {', '.join(self.failed)}" if self.failed else ""
        return (
            f"{self.members} members in {self.run}: {self.finished_before} already done, "
            f"{self.trained} trained now in {self.seconds:.0f} s{failed}"
        )


def member_chain(division: int, repeat: int, variant: str, tasks) -> dict[str, Any]:
    """An ensemble member as a chain: `mtl-ic`, then the fine-tune of each task."""
    experiments = [s.experiment for s in member_trials(division, repeat, variant, tasks)]
    return {"experiments": experiments, "division": division, "repeat": repeat, "variant": variant}


def pack_by_coordinates(chains: list[dict[str, Any]], max_concurrent: int, autoscaling: bool) -> list[dict]:
    """The Train runs to start for `chains`. Chains of one (division, repeat, variant) share
    nothing, so they may run in parallel; but each Train run pays Ray Train's start-up (tens of
    seconds on a small machine). When more chains are left than can run at once and no node can
    be added, the chains of each coordinate run one after another in one Train run instead (their
    trials in the chains' order, so every fine-tune still follows what it starts from). On a
    cluster that can add nodes, every chain keeps its own Train run."""
    if autoscaling or len(chains) <= max_concurrent:
        return chains
    units: dict[tuple, dict[str, Any]] = {}
    for c in chains:
        key = (c["division"], c["repeat"], c["variant"])
        if key not in units:
            units[key] = {**c, "experiments": list(c["experiments"])}
        else:
            units[key]["experiments"] += c["experiments"]
            units[key]["member"] = units[key]["member"] or c["member"]
    return list(units.values())


def _chain_done(run: str, chain: dict[str, Any]) -> bool:
    return all(T.is_finished(run, s) for s in _chain_specs(chain))


class _Progress(Callback):
    """Tune's events for the chains, passed on to the live display (raymtl.live.GridDisplay)."""

    def __init__(self, display: GridDisplay):
        self.display = display

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks into the experiment state (for `Tuner.restore`, which the
        # grids do not use: a rerun skips finished trials instead); a display, with its lock and
        # terminal, is not part of that state.
        return {}

    def __setstate__(self, state: dict) -> None:
        self.display = GridDisplay([], title="restored", stream=io.StringIO())

    def on_trial_start(self, iteration, trials, trial, **info):
        self.display.started(chain_name(trial.config["chain"]))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "trial" in result:  # an epoch of one of the chain's trials (TuneReportCallback)
            val = {k.removeprefix("val_acc_"): v for k, v in result.items() if k.startswith("val_acc_")}
            self.display.epoch(chain_name(trial.config["chain"]), result["trial"], result["epoch"], val)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.display.finished(chain_name(trial.config["chain"]))

    def on_trial_error(self, iteration, trials, trial, **info):
        try:
            error = trial.get_pickled_error()  # the exception the chain raised, as Tune stored it
        except Exception:  # the display must never stop the grid
            error = None
        what = f"{type(error).__name__}: {error}".splitlines()[0][:300] if error else "see RUN/logs/ray.log"
        self.display.failed(chain_name(trial.config["chain"]), what)


def run_ensemble(
    features: str,
    run: str,
    preset: Preset | str,
    plan: EnsemblePlan,
    options: GridOptions = GridOptions(),
) -> EnsembleReport:
    """Train every member of `plan` not yet finished in `run`; returns what happened. Refuses
    (`RunLockedError`) while another driver trains the same RUN."""
    t0 = time.perf_counter()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    features, run = storage.absolute(features), storage.absolute(run)  # trials run in other folders
    ensure_run_manifest(run, preset, features)
    write_plan(run, plan, preset=preset.name)
    members = [
        member_chain(d, r, v, plan.tasks) for r in plan.repeats for v in plan.variants for d in plan.divisions
    ]
    log.info("ensemble: %d members, tasks %s", len(members), ",".join(plan.tasks))
    with RunLock(run):  # one driver per RUN, from before it looks at what is finished
        out = train_chains(features, run, preset, members, options, layout.GRID, "ensemble", members=True)
    return EnsembleReport(
        run, out.chains, out.finished_before, out.trained, out.failed, time.perf_counter() - t0
    )


def train_chains(
    features: str,
    run: str,
    preset: Preset,
    chains: list[dict[str, Any]],
    options: GridOptions,
    tune_name: str,
    what: str,
    members: bool = False,
) -> GridOutcome:
    """Train every chain of `chains` not finished in `run` as one Tune grid named `tune_name`
    (under RUN/ray); `members`: the chains are ensemble members (their state records are kept),
    unless a chain says otherwise in its own "member" key. The caller holds the RUN's lock."""
    t0 = time.perf_counter()
    chains = [{"member": members, **c} for c in chains]
    todo = [c for c in chains if not _chain_done(run, c)]
    done_before = len(chains) - len(todo)
    trials_todo = sum(not T.is_finished(run, s) for c in todo for s in _chain_specs(c))
    log.info(
        "%s: %d chains (%d already done, %d trials to train)", what, len(chains), done_before, trials_todo
    )
    if not todo:
        return GridOutcome(len(chains), done_before, 0, [], 0, time.perf_counter() - t0)

    check_mlflow(options.mlflow_uri)  # before any member is queued: exit 2 if it does not answer
    for c in todo:  # our own record of the members' queue (raymtl.run.progress), until Tune starts each
        if c["member"]:
            write_member(run, c["division"], c["repeat"], c["variant"], QUEUED)
    ensure_ray()
    capacity = read_capacity()
    log.info("%s: cluster: %s", what, capacity.describe())

    def plan(n: int):
        return plan_resources(
            capacity,
            n,
            options.accelerator,
            options.gpus_per_trial,
            options.cpus_per_trial,
            options.max_concurrent,
        )

    resources = plan(len(todo))
    units = pack_by_coordinates(todo, resources.max_concurrent, capacity.autoscaling)
    if len(units) < len(todo):
        log.info(
            "%s: %d chains, at most %d at once and no node to add: their Train runs are packed "
            "per (division, repeat, variant), %d Train runs (one start-up each)",
            what,
            len(todo),
            resources.max_concurrent,
            len(units),
        )
        todo = units
        resources = plan(len(todo))
    options = dataclasses.replace(
        options, gpus_per_trial=resources.accelerators_per_trial, cpus_per_trial=resources.cpus_per_trial
    )
    log.info("%s: %s", what, resources.describe())
    with GridDisplay([chain_name(c) for c in todo], done_before, title=what) as display:
        results = _fit(
            todo, features, run, preset, options, resources.max_concurrent, tune_name, _Progress(display)
        )
    failed = []
    for r in results:
        if r.error is not None:
            # A Tune trial that failed before it started has no config: name it by what is left.
            name = chain_name(r.config["chain"]) if r.config else "a chain that did not start"
            failed.append(name)
            log.error("%s failed: %s", name, r.error)
    trained = len(todo) - len(failed)
    return GridOutcome(len(chains), done_before, trained, failed, trials_todo, time.perf_counter() - t0)


def _fit(todo, features, run, preset, options, max_concurrent, tune_name, progress):
    """The Tune run of the chains in `todo`; its results."""

    fs, run_path = storage.resolve(run)
    tuner = tune.Tuner(
        # The chain function only drives Train runs: it holds (almost) no CPU of its own, so the
        # Train workers and Ray Data get the cluster (docs/method.md §8: Tune can starve Data
        # otherwise). Tune refuses an empty resource request, hence 0.01 rather than 0.
        tune.with_resources(run_chain, {"CPU": 0.01}),
        param_space={
            "chain": tune.grid_search(todo),
            "features": features,
            "run": run,
            "preset": preset.to_dict(),
            **{k: v for k, v in dataclasses.asdict(options).items() if k != "max_concurrent"},
        },
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
        run_config=tune.RunConfig(
            name=tune_name,
            storage_path=layout.ray_storage(run, run_path),
            failure_config=tune.FailureConfig(max_failures=1),
            callbacks=[progress],
            verbose=0,
        ),
    )
    return tuner.fit()


def _auto_cpus_per_trial(options: GridOptions) -> float:
    """CPUs per Train worker that `raymtl ensemble` would pick on the connected cluster."""
    return plan_resources(read_capacity(), 1, options.accelerator, options.gpus_per_trial).cpus_per_trial


def _default_concurrency(options: GridOptions) -> int:
    """Members at once that `raymtl ensemble` would pick for a one-member plan (at least 1)."""
    plan = plan_resources(
        read_capacity(), 1, options.accelerator, options.gpus_per_trial, options.cpus_per_trial
    )
    return plan.max_concurrent
