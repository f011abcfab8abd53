"""The results store's catalogue, defined once: every table's rows and columns (name, Arrow type,
meaning), from which the store's schemas, its row checks, `raymtl results --schema`, the
dashboard's /api/schema and docs/results.md are all derived; and the SQL of its views.

Three kinds of table: `built` in memory from each RUN's files (raymtl.results.store), `parquet`
scanned in place from the files training and reduce write (their schemas live beside their
writers: raymtl.train.scoring, raymtl.ensemble.reduce), and `view`s in SQL over the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import pyarrow as pa

from raymtl.ensemble.reduce import PREDICTIONS_SCHEMA
from raymtl.train.scoring import SCORES_SCHEMA

STR, I32, I64, F64, BOOL = pa.string(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()
TS = pa.timestamp("s", tz="UTC")
BUILT, PARQUET, VIEW = "built", "parquet", "view"


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType | None  # None for a view's column (its SQL types it)
    doc: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    rows: str  # what one row is
    columns: tuple[Column, ...]
    kind: str = BUILT

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def schema(self) -> pa.Schema:
        if self.kind == VIEW:
            raise TypeError(f"{self.name} is a view: its SQL types its columns")
        return pa.schema([(c.name, c.type) for c in self.columns])

    @property
    def docs(self) -> dict[str, str]:
        return {c.name: c.doc for c in self.columns}

    def table(self, rows: list[dict[str, Any]]) -> pa.Table:
        """Rows as an Arrow table of this schema; a row with other keys is a bug in its builder
        (pyarrow would silently drop an extra key or fill a missing one with null)."""
        names = set(self.names)
        for row in rows:
            if set(row) != names:
                raise AssertionError(
                    f"{self.name} row: missing {sorted(names - set(row))}, unknown {sorted(set(row) - names)}"
                )
        return pa.Table.from_pylist(rows, schema=self.schema)


def _file_columns(file_schema: pa.Schema, docs: dict[str, str]) -> tuple[Column, ...]:
    """A Parquet file's columns, with the store's leading `run`."""
    return (Column("run", STR), *(Column(f.name, f.type, docs.get(f.name, "")) for f in file_schema))


def _view_columns(docs: Iterable[tuple[str, str]]) -> tuple[Column, ...]:
    return tuple(Column(name, None, doc) for name, doc in docs)


# The columns that name a trial, first in every per-trial table.
TRIAL_COORDS = (
    Column("run", STR),
    Column("trial", STR, "<experiment>-d<K>-r<R>-<variant>"),
    Column("experiment", STR),
    Column("division", I32),
    Column("repeat", I32),
    Column("variant", STR),
)

_TABLES = (
    Table(
        "runs",
        "one row per RUN given",
        (
            Column("run", STR, "name (folder base name; `-N` appended on a clash)"),
            Column("run_index", I32, "position on the command line (0-based)"),
            Column("uri", STR, "the RUN as given"),
            Column("preset", STR, "preset name"),
            Column("created", TS, "RUN/manifest.json creation time"),
            Column("features", STR, "FEATURES folder the run was trained on"),
            Column("plan_source", STR, "plan.json or 'paper default'"),
            Column("divisions", pa.list_(I32), "planned divisions"),
            Column("repeats", pa.list_(I32), "planned repeats"),
            Column("variants", pa.list_(STR), "planned variants"),
            Column("tasks", pa.list_(STR), "planned tasks"),
            Column("n_trials", I32, "trial folders present"),
            Column("reduced", BOOL, "RUN/ensemble/summary.json exists"),
            Column("reduced_at", TS, "its creation time"),
        ),
    ),
    Table(
        "trials",
        "one row per trial folder or planned member trial",
        (
            *TRIAL_COORDS,
            Column("state", STR, "done | running | failed | missing"),
            Column("reason", STR, "why (for running: the epoch)"),
            Column("planned", BOOL, "part of the ensemble plan"),
            Column("targets", STR, "tasks it trains (comma-separated)"),
            Column("epochs_done", I32, "epochs reported"),
            Column("epochs_planned", I32, "epochs the preset asks for (the larger task's)"),
            Column("seconds", F64, "training time (done)"),
            Column("finished", TS, "when result.json was written"),
            Column("updated", TS, "last sign of life"),
            Column("device", STR, "CPU or GPU"),
            Column("restarts", I32, "worker restarts from a checkpoint"),
            Column("seed", I64, "the trial's seed"),
        ),
    ),
    Table(
        "members",
        "one row per planned ensemble member and task: the (mtl-ic, finetune-<task>) pair",
        (
            Column("run", STR),
            Column("task", STR, "asc | aec"),
            Column("trial", STR, "the finetune-<task> trial"),
            Column("division", I32),
            Column("repeat", I32),
            Column("variant", STR),
            Column("state", STR, "done | running | failed | missing"),
            Column("reason", STR, "why"),
            Column("stage", STR, "experiment it is at"),
            Column("epoch", I32, "epochs done in that stage"),
            Column("epochs", I32, "epochs planned there"),
            Column("test_accuracy", F64, "per-recording test accuracy (done)"),
            Column("val_accuracy", F64, "best validation accuracy"),
            Column("best_epoch", I32, "selected epoch"),
            Column("seconds", F64, "training time of its finished stages (mtl-ic + finetune)"),
            Column("finished", TS, "when finetune-<task> finished"),
            Column("updated", TS, "last sign of life"),
        ),
    ),
    Table(
        "results",
        "one row per finished trial and task it reports",
        (
            *TRIAL_COORDS,
            Column("task", STR),
            Column("test_accuracy", F64, "per-recording test accuracy"),
            Column("val_accuracy", F64, "best validation recording accuracy"),
            Column("best_epoch", I32, "the epoch kept"),
            Column("epochs", I32, "epochs trained"),
            Column("seconds", F64, "trial time"),
        ),
    ),
    Table(
        "metrics",
        "one row per trial, task and epoch",
        (
            *TRIAL_COORDS,
            Column("task", STR),
            Column("epoch", I32, "0-based"),
            Column("loss", F64, "training loss"),
            Column("train_acc", F64, "training patch accuracy"),
            Column("val_acc", F64, "validation recording accuracy"),
            Column("patches_per_s", F64, "training speed"),
            Column("seconds", F64, "epoch time"),
            Column("live", BOOL, "from the progress record of an unfinished trial (else metrics.jsonl)"),
        ),
    ),
    Table(
        "ensemble",
        "one row per reduced run and task (RUN/ensemble/summary.json)",
        (
            Column("run", STR),
            Column("task", STR),
            Column("ensemble_accuracy", F64, "all members fused"),
            Column("n_members", I32, "members fused"),
            Column("n_planned", I32, "members planned"),
            Column("n_recordings", I32, "test recordings"),
            Column("n_classes", I32),
            Column("member_mean", F64, "single members' mean accuracy"),
            Column("member_std", F64, "their population std"),
            Column("eight_member_mean", F64, "mean of the 8-member ensembles (paper §III-F)"),
            Column("n_eight_member", I32, "how many"),
            Column("missing", STR, "members left out (comma-separated)"),
            Column("created", TS, "when reduce ran"),
        ),
    ),
    Table(
        "ensemble_size",
        "one row per run, task and ensemble size (groups of one model per division)",
        (
            Column("run", STR),
            Column("task", STR),
            Column("groups", I32, "(repeat, variant) groups"),
            Column("members", I32, "models"),
            Column("combinations", I32, "subsets evaluated"),
            Column("total_combinations", I64, "subsets possible"),
            Column("mean", F64, "mean accuracy"),
            Column("min", F64),
            Column("max", F64),
        ),
    ),
    Table(
        "eight_member",
        "one row per 8-member ensemble (one triple and one quadruple repeat)",
        (
            Column("run", STR),
            Column("task", STR),
            Column("triple_repeat", I32),
            Column("quadruple_repeat", I32),
            Column("members", I32, "models present"),
            Column("accuracy", F64),
        ),
    ),
    Table(
        "classes",
        "one row per run, task and class",
        (
            Column("run", STR),
            Column("task", STR),
            Column("label", I32, "class index"),
            Column("class_name", STR, "from FEATURES/manifest.json"),
        ),
    ),
    Table(
        "predictions",
        "one row per run, task and test recording (RUN/ensemble/predictions.parquet)",
        _file_columns(
            PREDICTIONS_SCHEMA,
            {
                "label": "true class",
                "prediction": "ensemble vote",
                "n_members": "members that scored it",
                "votes": "patch votes per class",
                "summed_scores": "fused scores summed over its patches",
            },
        ),
        PARQUET,
    ),
    Table(
        "scores",
        "one row per finished trial, task and test patch (each trial's scores.parquet)",
        _file_columns(SCORES_SCHEMA, {"image": "channel image", "scores": "softmax over the task's classes"}),
        PARQUET,
    ),
    Table(
        "table1",
        "the run's paper Table I: per run, task, experiment and variant (triple, quadruple, all)",
        (
            Column("run", STR),
            Column("task", STR),
            Column("experiment", STR),
            Column("variant", STR, "triple | quadruple | all (both)"),
            Column("mean", F64, "mean over repeats of the mean over divisions (raymtl.ensemble.table1)"),
            Column("std", F64, "population std over repeats"),
            Column("n_repeats", I32),
            Column("n_trials", I32, "trials averaged"),
            Column("label", STR, "the paper's row name"),
            Column("paper_mean", F64, "the paper's figure"),
            Column("paper_std", F64),
        ),
    ),
    Table(
        "table2",
        "the run's paper Table II: per run and task",
        _view_columns(
            [
                ("run", ""),
                ("task", ""),
                ("ensemble_accuracy", ""),
                ("n_members", ""),
                ("eight_member_mean", ""),
                ("member_mean", ""),
                ("member_std", ""),
                ("paper_ensemble", "the paper's (24 members)"),
                ("paper_eight_member_mean", "the paper's (ASC only)"),
            ]
        ),
        VIEW,
    ),
    Table(
        "per_class",
        "ensemble accuracy per run, task and class (from predictions)",
        _view_columns(
            [
                ("run", ""),
                ("task", ""),
                ("label", ""),
                ("class_name", ""),
                ("n", "test recordings"),
                ("n_correct", ""),
                ("accuracy", ""),
            ]
        ),
        VIEW,
    ),
    Table(
        "confusion",
        "ensemble confusion counts (from predictions)",
        _view_columns(
            [
                ("run", ""),
                ("task", ""),
                ("label", "true class"),
                ("prediction", "voted class"),
                ("n", "recordings"),
            ]
        ),
        VIEW,
    ),
    Table(
        "paper_table1",
        "the paper's Table I figures",
        (
            Column("experiment", STR),
            Column("task", STR),
            Column("label", STR),
            Column("mean", F64),
            Column("std", F64),
            Column("position", I32, "row order"),
        ),
    ),
    Table(
        "paper_table2",
        "the paper's Table II figures",
        (
            Column("task", STR),
            Column("ensemble", F64),
            Column("members", I32),
            Column("eight_member_mean", F64),
        ),
    ),
)
TABLES: dict[str, Table] = {t.name: t for t in _TABLES}
SCHEMAS = {name: t.schema for name, t in TABLES.items() if t.kind == BUILT}  # the tables built in memory

# The SQL of the views (their columns are documented in TABLES).
VIEWS = {
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
