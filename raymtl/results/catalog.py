"""The results store's catalogue: every table's rows and columns (documented here and in
docs/results.md), their Arrow types, and the SQL views built on them (Table I and II, per-class
accuracy, confusion counts)."""

from __future__ import annotations

import pyarrow as pa

# name -> (what a row is, {column: meaning}); docs/results.md is generated from it.
# The columns that name a trial, first in every per-trial table.
_TRIAL_COORDS_DOC = {"run": "", "trial": "", "experiment": "", "division": "", "repeat": "", "variant": ""}

TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "runs": (
        "one row per RUN given",
        {
            "run": "name (folder base name; `-N` appended on a clash)",
            "run_index": "position on the command line (0-based)",
            "uri": "the RUN as given",
            "preset": "preset name",
            "created": "RUN/manifest.json creation time",
            "features": "FEATURES folder the run was trained on",
            "plan_source": "plan.json or 'paper default'",
            "divisions": "planned divisions",
            "repeats": "planned repeats",
            "variants": "planned variants",
            "tasks": "planned tasks",
            "n_trials": "trial folders present",
            "reduced": "RUN/ensemble/summary.json exists",
            "reduced_at": "its creation time",
        },
    ),
    "trials": (
        "one row per trial folder or planned member trial",
        {
            "run": "",
            "trial": "<experiment>-d<K>-r<R>-<variant>",
            "experiment": "",
            "division": "",
            "repeat": "",
            "variant": "",
            "state": "done | running | failed | missing",
            "reason": "why (for running: the epoch)",
            "planned": "part of the ensemble plan",
            "targets": "tasks it trains (comma-separated)",
            "epochs_done": "epochs reported",
            "epochs_planned": "epochs the preset asks for (the larger task's)",
            "seconds": "training time (done)",
            "finished": "when result.json was written",
            "updated": "last sign of life",
            "device": "CPU or GPU",
            "restarts": "worker restarts from a checkpoint",
            "seed": "the trial's seed",
        },
    ),
    "members": (
        "one row per planned ensemble member and task: the (mtl-ic, finetune-<task>) pair",
        {
            "run": "",
            "task": "asc | aec",
            "trial": "the finetune-<task> trial",
            "division": "",
            "repeat": "",
            "variant": "",
            "state": "done | running | failed | missing",
            "reason": "why",
            "stage": "experiment it is at",
            "epoch": "epochs done in that stage",
            "epochs": "epochs planned there",
            "test_accuracy": "per-recording test accuracy (done)",
            "val_accuracy": "best validation accuracy",
            "best_epoch": "selected epoch",
            "seconds": "training time of its finished stages (mtl-ic + finetune)",
            "finished": "when finetune-<task> finished",
            "updated": "last sign of life",
        },
    ),
    "results": (
        "one row per finished trial and task it reports",
        {
            **_TRIAL_COORDS_DOC,
            "task": "",
            "test_accuracy": "per-recording test accuracy",
            "val_accuracy": "best validation recording accuracy",
            "best_epoch": "the epoch kept",
            "epochs": "epochs trained",
            "seconds": "trial time",
        },
    ),
    "metrics": (
        "one row per trial, task and epoch",
        {
            **_TRIAL_COORDS_DOC,
            "task": "",
            "epoch": "0-based",
            "loss": "training loss",
            "train_acc": "training patch accuracy",
            "val_acc": "validation recording accuracy",
            "patches_per_s": "training speed",
            "seconds": "epoch time",
            "live": "from Ray's progress of an unfinished trial (else metrics.jsonl)",
        },
    ),
    "ensemble": (
        "one row per reduced run and task (RUN/ensemble/summary.json)",
        {
            "run": "",
            "task": "",
            "ensemble_accuracy": "all members fused",
            "n_members": "members fused",
            "n_planned": "members planned",
            "n_recordings": "test recordings",
            "n_classes": "",
            "member_mean": "single members' mean accuracy",
            "member_std": "their population std",
            "eight_member_mean": "mean of the 8-member ensembles (paper §III-F)",
            "n_eight_member": "how many",
            "missing": "members left out (comma-separated)",
            "created": "when reduce ran",
        },
    ),
    "ensemble_size": (
        "one row per run, task and ensemble size (groups of one model per division)",
        {
            "run": "",
            "task": "",
            "groups": "(repeat, variant) groups",
            "members": "models",
            "combinations": "subsets evaluated",
            "total_combinations": "subsets possible",
            "mean": "mean accuracy",
            "min": "",
            "max": "",
        },
    ),
    "eight_member": (
        "one row per 8-member ensemble (one triple and one quadruple repeat)",
        {
            "run": "",
            "task": "",
            "triple_repeat": "",
            "quadruple_repeat": "",
            "members": "models present",
            "accuracy": "",
        },
    ),
    "classes": (
        "one row per run, task and class",
        {
            "run": "",
            "task": "",
            "label": "class index",
            "class_name": "from FEATURES/manifest.json",
        },
    ),
    "predictions": (
        "one row per run, task and test recording (RUN/ensemble/predictions.parquet)",
        {
            "run": "",
            "task": "",
            "dataset": "",
            "clip": "",
            "label": "true class",
            "prediction": "ensemble vote",
            "correct": "",
            "n_members": "members that scored it",
            "votes": "patch votes per class",
            "summed_scores": "fused scores summed over its patches",
        },
    ),
    "scores": (
        "one row per finished trial, task and test patch (each trial's scores.parquet)",
        {
            "run": "",
            "trial": "",
            "task": "",
            "dataset": "",
            "clip": "",
            "image": "channel image",
            "patch_index": "",
            "label": "",
            "scores": "softmax over the task's classes",
        },
    ),
    "table1": (
        "the run's paper Table I: per run, task, experiment and variant (triple, quadruple, all)",
        {
            "run": "",
            "task": "",
            "experiment": "",
            "variant": "triple | quadruple | all (both)",
            "mean": "mean over repeats of the mean over divisions",
            "std": "population std over repeats",
            "n_repeats": "",
            "n_trials": "trials averaged",
            "label": "the paper's row name",
            "paper_mean": "the paper's figure",
            "paper_std": "",
        },
    ),
    "table2": (
        "the run's paper Table II: per run and task",
        {
            "run": "",
            "task": "",
            "ensemble_accuracy": "",
            "n_members": "",
            "eight_member_mean": "",
            "member_mean": "",
            "member_std": "",
            "paper_ensemble": "the paper's (24 members)",
            "paper_eight_member_mean": "the paper's (ASC only)",
        },
    ),
    "per_class": (
        "ensemble accuracy per run, task and class (from predictions)",
        {
            "run": "",
            "task": "",
            "label": "",
            "class_name": "",
            "n": "test recordings",
            "n_correct": "",
            "accuracy": "",
        },
    ),
    "confusion": (
        "ensemble confusion counts (from predictions)",
        {
            "run": "",
            "task": "",
            "label": "true class",
            "prediction": "voted class",
            "n": "recordings",
        },
    ),
    "paper_table1": (
        "the paper's Table I figures",
        {
            "experiment": "",
            "task": "",
            "label": "",
            "mean": "",
            "std": "",
            "position": "row order",
        },
    ),
    "paper_table2": (
        "the paper's Table II figures",
        {
            "task": "",
            "ensemble": "",
            "members": "",
            "eight_member_mean": "",
        },
    ),
}

TS = pa.timestamp("s", tz="UTC")
_TRIAL_COORDS = [("run", pa.string()), ("trial", pa.string()), ("experiment", pa.string()),
                 ("division", pa.int32()), ("repeat", pa.int32()), ("variant", pa.string())]  # fmt: skip
SCHEMAS = {
    "runs": pa.schema([("run", pa.string()), ("run_index", pa.int32()), ("uri", pa.string()),
                       ("preset", pa.string()), ("created", TS), ("features", pa.string()),
                       ("plan_source", pa.string()), ("divisions", pa.list_(pa.int32())),
                       ("repeats", pa.list_(pa.int32())), ("variants", pa.list_(pa.string())),
                       ("tasks", pa.list_(pa.string())), ("n_trials", pa.int32()), ("reduced", pa.bool_()),
                       ("reduced_at", TS)]),
    "trials": pa.schema([*_TRIAL_COORDS,
                         ("state", pa.string()), ("reason", pa.string()), ("planned", pa.bool_()),
                         ("targets", pa.string()), ("epochs_done", pa.int32()), ("epochs_planned", pa.int32()),
                         ("seconds", pa.float64()), ("finished", TS), ("updated", TS), ("device", pa.string()),
                         ("restarts", pa.int32()), ("seed", pa.int64())]),
    "members": pa.schema([("run", pa.string()), ("task", pa.string()), ("trial", pa.string()),
                          ("division", pa.int32()), ("repeat", pa.int32()), ("variant", pa.string()),
                          ("state", pa.string()), ("reason", pa.string()), ("stage", pa.string()),
                          ("epoch", pa.int32()), ("epochs", pa.int32()), ("test_accuracy", pa.float64()),
                          ("val_accuracy", pa.float64()), ("best_epoch", pa.int32()), ("seconds", pa.float64()),
                          ("finished", TS), ("updated", TS)]),
    "results": pa.schema([*_TRIAL_COORDS,
                          ("task", pa.string()), ("test_accuracy", pa.float64()), ("val_accuracy", pa.float64()),
                          ("best_epoch", pa.int32()), ("epochs", pa.int32()), ("seconds", pa.float64())]),
    "metrics": pa.schema([*_TRIAL_COORDS,
                          ("task", pa.string()), ("epoch", pa.int32()), ("loss", pa.float64()),
                          ("train_acc", pa.float64()), ("val_acc", pa.float64()), ("patches_per_s", pa.float64()),
                          ("seconds", pa.float64()), ("live", pa.bool_())]),
    "ensemble": pa.schema([("run", pa.string()), ("task", pa.string()), ("ensemble_accuracy", pa.float64()),
                           ("n_members", pa.int32()), ("n_planned", pa.int32()), ("n_recordings", pa.int32()),
                           ("n_classes", pa.int32()), ("member_mean", pa.float64()), ("member_std", pa.float64()),
                           ("eight_member_mean", pa.float64()), ("n_eight_member", pa.int32()),
                           ("missing", pa.string()), ("created", TS)]),
    "ensemble_size": pa.schema([("run", pa.string()), ("task", pa.string()), ("groups", pa.int32()),
                                ("members", pa.int32()), ("combinations", pa.int32()),
                                ("total_combinations", pa.int64()), ("mean", pa.float64()), ("min", pa.float64()),
                                ("max", pa.float64())]),
    "eight_member": pa.schema([("run", pa.string()), ("task", pa.string()), ("triple_repeat", pa.int32()),
                               ("quadruple_repeat", pa.int32()), ("members", pa.int32()),
                               ("accuracy", pa.float64())]),
    "classes": pa.schema([("run", pa.string()), ("task", pa.string()), ("label", pa.int32()),
                          ("class_name", pa.string())]),
    "paper_table1": pa.schema([("experiment", pa.string()), ("task", pa.string()), ("label", pa.string()),
                               ("mean", pa.float64()), ("std", pa.float64()), ("position", pa.int32())]),
    "paper_table2": pa.schema([("task", pa.string()), ("ensemble", pa.float64()), ("members", pa.int32()),
                               ("eight_member_mean", pa.float64())]),
}  # fmt: skip
SCORES_SCHEMA = pa.schema([("trial", pa.string()), ("task", pa.string()), ("dataset", pa.string()),
                            ("clip", pa.string()), ("image", pa.string()), ("patch_index", pa.int32()),
                            ("label", pa.int32()), ("scores", pa.list_(pa.float32()))])  # fmt: skip
PREDICTIONS_SCHEMA = pa.schema([("task", pa.string()), ("dataset", pa.string()), ("clip", pa.string()),
                                 ("label", pa.int32()), ("prediction", pa.int32()), ("correct", pa.bool_()),
                                 ("n_members", pa.int32()), ("votes", pa.list_(pa.int32())),
                                 ("summed_scores", pa.list_(pa.float64()))])  # fmt: skip

# Views over the tables above; Table I follows reduce's `_table1` (mean over divisions per repeat,
# and over divisions and variants together for "all"; population std over repeats).
VIEWS = {
    "table1": """
        with per_repeat as (
            select run, task, experiment, variant, repeat, avg(test_accuracy) as acc, count(*) as n
            from results group by all
            union all
            select run, task, experiment, 'all' as variant, repeat, avg(test_accuracy), count(*)
            from results group by run, task, experiment, repeat
        )
        select p.run, p.task, p.experiment, p.variant, avg(p.acc) as mean, stddev_pop(p.acc) as std,
               count(*)::integer as n_repeats, sum(p.n)::integer as n_trials,
               any_value(t.label) as label, any_value(t.mean) as paper_mean, any_value(t.std) as paper_std
        from per_repeat p left join paper_table1 t on t.experiment = p.experiment and t.task = p.task
        group by p.run, p.task, p.experiment, p.variant""",
    "table2": """
        select e.run, e.task, e.ensemble_accuracy, e.n_members, e.eight_member_mean, e.member_mean,
               e.member_std, p.ensemble as paper_ensemble, p.eight_member_mean as paper_eight_member_mean
        from ensemble e left join paper_table2 p on p.task = e.task""",
    "per_class": """
        select p.run, p.task, p.label, any_value(c.class_name) as class_name, count(*)::integer as n,
               sum(p.correct::integer)::integer as n_correct, avg(p.correct::integer) as accuracy
        from predictions p left join classes c on c.run = p.run and c.task = p.task and c.label = p.label
        group by p.run, p.task, p.label""",
    "confusion": """
        select run, task, label, prediction, count(*)::integer as n from predictions group by all""",
}
