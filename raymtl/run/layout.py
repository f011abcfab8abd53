"""The RUN folder's layout: every path in it, one function each. No other module builds a RUN
path; they all call these (with the path inside the RUN's file system, `storage.resolve`).

    RUN/
      manifest.json                 the run's preset, code version, features (first writer wins)
      ray/                          Ray Train and Tune storage: checkpoints, for resuming
        <trial>/                    ... of a `raymtl train` run of one trial
        member-d<K>-r<R>-<variant>/ ... of an ensemble member's Train run (all its trials)
        grid/                       ... of the ensemble's Tune experiment
        study/                      ... of the study's Tune experiment
        <chain>/                    ... of a study chain's Train run (raymtl.train.trial.chain_run_name)
      trials/<trial>/
        result.json                 written last: its presence means the trial is finished
        scores.parquet              every test patch's scores, per task (raymtl.train.scoring)
        metrics.jsonl               one line of metrics per epoch
        model-<task>.pt             the selected network per target task (raymtl.models.checkpoint)
        progress.json               live progress while it trains (raymtl.run.progress)
      ensemble/
        plan.json                   the planned member matrix (raymtl.ensemble.plan)
        members/d<K>-r<R>-<variant>.json   each member's state (raymtl.run.progress)
        summary.json                `raymtl reduce`'s result (raymtl.ensemble.reduce)
        predictions.parquet         ... and its per-recording predictions
        driver.lock                 the `ensemble` or `study` driver holding the RUN (raymtl.ensemble.lock)
      study/
        plan.json                   the last `raymtl study`'s plan (raymtl.ensemble.study)
      logs/
        ray.log                     Ray's, Ray Data's, Train's and Tune's own logs, kept off the
                                    terminal unless `raymtl -v` (raymtl.ray_logs; local RUNs only)
      tb/                           TensorBoard event files (raymtl.tracking): `tensorboard --logdir RUN/tb`
        <trial>/                    ... of each trial: its epoch curves, settings, test accuracy
        ensemble/                   ... of `raymtl reduce`: the ensemble's final figures

Trial names come only from (experiment, division, repeat, variant) (raymtl.train.trial), never
from timestamps or random values, so a rerun finds the same folders and resumes.
"""

from __future__ import annotations

from raymtl.storage import join

MANIFEST = "manifest.json"
RAY_DIR = "ray"
GRID = "grid"  # the ensemble's Tune experiment, under RAY_DIR
STUDY = "study"  # the study's Tune experiment (under RAY_DIR) and its folder in the RUN
TRIALS_DIR = "trials"
ENSEMBLE_DIR = "ensemble"
RESULT = "result.json"
SCORES = "scores.parquet"
METRICS = "metrics.jsonl"
PROGRESS = "progress.json"
PLAN = "plan.json"
MEMBERS_DIR = "members"
SUMMARY = "summary.json"
PREDICTIONS = "predictions.parquet"
DRIVER_LOCK = "driver.lock"
LOGS_DIR = "logs"
RAY_LOG = "ray.log"
TB_DIR = "tb"


def manifest(run_path: str) -> str:
    return join(run_path, MANIFEST)


def ray_storage(run: str, run_path: str) -> str:
    """Ray's `storage_path` for the RUN given as `run` (a URI or local path) at `run_path`: a
    remote RUN keeps its scheme (Ray opens it through pyarrow), a local one is a plain path."""
    return join(run if "://" in run else run_path, RAY_DIR)


def trials_dir(run_path: str) -> str:
    return join(run_path, TRIALS_DIR)


def trial_dir(run_path: str, trial: str) -> str:
    return join(run_path, TRIALS_DIR, trial)


def result(run_path: str, trial: str) -> str:
    return join(trial_dir(run_path, trial), RESULT)


def scores(run_path: str, trial: str) -> str:
    return join(trial_dir(run_path, trial), SCORES)


def metrics(run_path: str, trial: str) -> str:
    return join(trial_dir(run_path, trial), METRICS)


def model(run_path: str, trial: str, task: str) -> str:
    return join(trial_dir(run_path, trial), f"model-{task}.pt")


def progress(run_path: str, trial: str) -> str:
    return join(trial_dir(run_path, trial), PROGRESS)


def ensemble_dir(run_path: str) -> str:
    return join(run_path, ENSEMBLE_DIR)


def plan(run_path: str) -> str:
    return join(ensemble_dir(run_path), PLAN)


def members_dir(run_path: str) -> str:
    return join(ensemble_dir(run_path), MEMBERS_DIR)


def member(run_path: str, key: str) -> str:
    """The record of the member named `key` (raymtl.run.progress.member_key)."""
    return join(members_dir(run_path), f"{key}.json")


def summary(run_path: str) -> str:
    return join(ensemble_dir(run_path), SUMMARY)


def predictions(run_path: str) -> str:
    return join(ensemble_dir(run_path), PREDICTIONS)


def driver_lock(run_path: str) -> str:
    return join(ensemble_dir(run_path), DRIVER_LOCK)


def study_plan(run_path: str) -> str:
    return join(run_path, STUDY, PLAN)


def ray_log(run_path: str) -> str:
    """Ray's own logs of the commands run on this RUN (raymtl.ray_logs)."""
    return join(run_path, LOGS_DIR, RAY_LOG)


def tb(run_path: str, name: str) -> str:
    """The TensorBoard event folder of a trial, or of the ensemble (`name` "ensemble")."""
    return join(run_path, TB_DIR, name)
