"""The results store: one or more RUN folders as tables, queryable with DuckDB.

`ResultsStore.load(runs)` reads each RUN as it is now (finished or still going) and exposes the
tables documented in `raymtl.results.catalog.TABLES` (and docs/results.md). Small tables are built
in memory; the member scores and the ensemble predictions stay in their Parquet files (read
through pyarrow file systems, so S3 and NFS paths work) and DuckDB scans only what a query asks
for.

A store is a snapshot: the dashboard loads a new one when the run moves on.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from raymtl import storage
from raymtl.ensemble.reduce import PREDICTIONS_SCHEMA
from raymtl.ensemble.table1 import table1
from raymtl.errors import UserError
from raymtl.results import paper
from raymtl.results import progress as P
from raymtl.results.catalog import SCHEMAS, TABLES, VIEWS
from raymtl.results.runs import FinishedTrialCache, RunFiles, RunRef, read_run, run_refs
from raymtl.results.status import STALE_AFTER_S, MemberState, TrialState, member_state, trial_state
from raymtl.run import layout
from raymtl.train import trial as T
from raymtl.train.experiments import EXPERIMENTS, get_experiment
from raymtl.train.scoring import SCORES_SCHEMA

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSnapshot:
    """One RUN as read at `loaded`: its files, and the state of every trial and member."""

    files: RunFiles
    trial_states: dict[str, TrialState]
    member_states: dict[tuple[str, str], MemberState]  # (task, finetune trial) -> state
    planned: frozenset[str]
    progress: dict[str, P.TrialProgress]
    loaded: float

    @property
    def ref(self) -> RunRef:
        return self.files.ref

    @property
    def live(self) -> bool:
        """Something is still running (the dashboard keeps refreshing)."""
        return any(s.state == "running" for s in self.trial_states.values()) or any(
            s.state == "running" for s in self.member_states.values()
        )


def snapshot_run(
    ref: RunRef,
    cache: FinishedTrialCache | None = None,
    now: float | None = None,
    stale_after_s: float = STALE_AFTER_S,
) -> RunSnapshot:
    now = time.time() if now is None else now
    files = read_run(ref, cache)
    preset = files.preset()
    plan = files.plan
    planned = {}
    for r, v in plan.groups():
        for d in plan.divisions:
            for task in plan.tasks:
                final = T.TrialSpec(f"finetune-{task}", d, r, v)
                planned[final.name] = final
                stage1 = final.with_experiment(get_experiment(final.experiment).init_from)
                planned[stage1.name] = stage1
    specs = {**planned, **{n: t.spec for n, t in files.trials.items()}}
    unfinished = [n for n in specs if n not in files.trials or files.trials[n].result is None]
    members_recorded = P.member_statuses(files.fs, files.path)
    prog = P.train_progress(files.fs, files.path, unfinished) if unfinished else {}

    def member_of(spec: T.TrialSpec):
        return (
            members_recorded.get((spec.division, spec.repeat, spec.variant)) if spec.name in planned else None
        )

    states = {
        name: trial_state(
            spec, files.trials.get(name), prog.get(name), member_of(spec), preset, now, stale_after_s
        )
        for name, spec in specs.items()
    }
    results = {n: t.result for n, t in files.trials.items() if t.result is not None}
    members = {}
    for name, spec in planned.items():
        if not spec.experiment.startswith("finetune-"):
            continue
        task = spec.experiment.split("-", 1)[1]
        members[(task, name)] = member_state(
            task,
            spec.division,
            spec.repeat,
            spec.variant,
            states,
            results,
            member_of(spec),
            now,
            stale_after_s,
        )
    return RunSnapshot(files, states, members, frozenset(planned), prog, now)


class ResultsStore:
    """Tables over a list of run snapshots, and a DuckDB connection to query them.

    DuckDB connections are not thread-safe: queries are serialised by a lock (the dashboard's
    requests are small, so this costs nothing worth measuring)."""

    def __init__(self, snapshots: Sequence[RunSnapshot]):
        self.snapshots = list(snapshots)
        self.tables = _build_tables(self.snapshots)
        self._lock = threading.Lock()
        self._con = duckdb.connect(":memory:")
        for name, table in self.tables.items():
            self._con.register(name, table)
        self._lazy = _lazy_sources(self.snapshots)  # keep the datasets alive as long as the views
        for name, (parts, empty) in self._lazy.items():
            _register_union(self._con, name, parts, empty)
        for name, sql in VIEWS.items():
            self._con.execute(f"create view {name} as {sql}")
        # Queries see the store's tables only: no reading or writing other files (COPY, read_csv).
        self._con.execute("set enable_external_access = false")
        self._con.execute("set lock_configuration = true")

    @classmethod
    def load(
        cls,
        runs: Sequence[str | RunRef],
        cache: FinishedTrialCache | None = None,
        stale_after_s: float = STALE_AFTER_S,
    ) -> "ResultsStore":
        refs = run_refs(list(runs)) if runs and isinstance(runs[0], str) else list(runs)
        now = time.time()
        return cls([snapshot_run(ref, cache, now, stale_after_s) for ref in refs])

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run SQL over the tables; a bad query is a UserError (the message is DuckDB's)."""

        with self._lock:
            try:
                result = self._con.sql(sql, params=list(params) if params else None)
                return result.to_arrow_table() if result is not None else pa.table({})
            except duckdb.Error as e:
                raise UserError(f"query failed: {str(e).strip()}") from None

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        return self.query(sql, params).to_pylist()

    def run_names(self) -> list[str]:
        return [s.ref.name for s in self.snapshots]

    def close(self) -> None:
        with self._lock:
            self._con.close()


# ---------------------------------------------------------------- building the tables


def _ts(value: Any) -> dt.datetime | None:
    """result.json's "%Y-%m-%dT%H:%M:%S%z" strings and mtimes, as UTC datetimes."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    try:
        return dt.datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S%z").astimezone(dt.timezone.utc)
    except ValueError:
        return None


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _build_tables(snapshots: Sequence[RunSnapshot]) -> dict[str, pa.Table]:
    rows: dict[str, list[dict]] = {name: [] for name in SCHEMAS}
    for snap in snapshots:
        _run_rows(snap, rows)
    for pos, (exp, tasks) in enumerate(paper.TABLE1.items()):
        for task, (mean, std) in tasks.items():
            rows["paper_table1"].append(
                {
                    "experiment": exp,
                    "task": task,
                    "label": paper.LABELS[exp],
                    "mean": mean,
                    "std": std,
                    "position": pos,
                }
            )
    for task, f in paper.TABLE2.items():
        rows["paper_table2"].append(
            {
                "task": task,
                "ensemble": f.ensemble,
                "members": f.members,
                "eight_member_mean": f.eight_member_mean,
            }
        )
    rows["table1"] = _table1_rows(rows["results"])
    return {name: TABLES[name].table(rows[name]) for name in SCHEMAS}


def _table1_rows(results: list[dict]) -> list[dict]:
    """Paper Table I of every run, task and experiment (raymtl.ensemble.table1), beside the
    paper's figure."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["run"], r["task"], r["experiment"]), []).append(r)
    out = []
    for (run, task, experiment), rs in groups.items():
        variants = sorted({r["variant"] for r in rs}, key=lambda v: (v != "triple", v))
        figures = paper.table1(experiment, task)
        cells = table1(((r["repeat"], r["variant"], r["test_accuracy"]) for r in rs), variants)
        for variant, cell in cells.items():
            out.append(
                {
                    "run": run,
                    "task": task,
                    "experiment": experiment,
                    "variant": variant,
                    "mean": cell.mean,
                    "std": cell.std,
                    "n_repeats": cell.n_repeats,
                    "n_trials": cell.n_trials,
                    "label": paper.LABELS.get(experiment) if figures else None,
                    "paper_mean": figures[0] if figures else None,
                    "paper_std": figures[1] if figures else None,
                }
            )
    return out


def _run_rows(snap: RunSnapshot, rows: dict[str, list[dict]]) -> None:
    files, run = snap.files, snap.ref.name
    manifest = files.manifest
    plan = files.plan
    summary = files.summary
    rows["runs"].append(
        {
            "run": run,
            "run_index": snap.ref.index,
            "uri": snap.ref.uri,
            "preset": manifest.preset_name if manifest else None,
            "created": _ts(manifest.created if manifest else None),
            "features": manifest.features if manifest else None,
            "plan_source": files.plan_source,
            "divisions": list(plan.divisions),
            "repeats": list(plan.repeats),
            "variants": list(plan.variants),
            "tasks": list(plan.tasks),
            "n_trials": len(files.trials),
            "reduced": files.summary is not None,
            "reduced_at": _ts(summary.created) if summary else None,
        }
    )
    for name in sorted(snap.trial_states, key=_trial_order):
        state = snap.trial_states[name]
        t = files.trials.get(name)
        spec = t.spec if t else _spec(name)
        result = t.result if t else None
        coords = {
            "run": run,
            "trial": name,
            "experiment": spec.experiment,
            "division": spec.division,
            "repeat": spec.repeat,
            "variant": spec.variant,
        }
        rows["trials"].append(
            {
                **coords,
                "state": state.state,
                "reason": state.reason,
                "planned": name in snap.planned,
                "targets": ",".join(get_experiment(spec.experiment).targets),
                "epochs_done": state.epochs_done,
                "epochs_planned": state.epochs_planned,
                "seconds": result.seconds if result else None,
                "finished": _ts(result.finished) if result else None,
                "updated": _ts(state.updated),
                "device": result.device if result else None,
                "restarts": len(result.resumed_after_epoch) if result else None,
                "seed": result.seed if result else None,
            }
        )
        for task, acc in (result.test_accuracy if result else {}).items():
            rows["results"].append(
                {
                    **coords,
                    "task": task,
                    "test_accuracy": acc,
                    "val_accuracy": result.val_accuracy.get(task),
                    "best_epoch": result.best_epoch.get(task),
                    "epochs": result.epochs.get(task),
                    "seconds": result.seconds,
                }
            )
        live = t is None or t.result is None
        epochs = (
            snap.progress[name].epochs.values()
            if live and name in snap.progress
            else (t.metrics if t else [])
        )
        for m in sorted(epochs, key=lambda m: m.get("epoch", 0)):
            for task in get_experiment(spec.experiment).targets:
                if f"loss_{task}" not in m and f"val_acc_{task}" not in m:
                    continue  # this task's network had finished its epochs
                rows["metrics"].append(
                    {
                        **coords,
                        "task": task,
                        "epoch": _int(m.get("epoch")),
                        "loss": _num(m.get(f"loss_{task}")),
                        "train_acc": _num(m.get(f"train_acc_{task}")),
                        "val_acc": _num(m.get(f"val_acc_{task}")),
                        "patches_per_s": _num(m.get("patches_per_s")),
                        "seconds": _num(m.get("seconds")),
                        "live": live,
                    }
                )
    for (task, name), ms in sorted(
        snap.member_states.items(), key=lambda kv: (kv[0][0], _trial_order(kv[0][1]))
    ):
        spec = _spec(name)
        result = files.trials[name].result if name in files.trials else None
        rows["members"].append(
            {
                "run": run,
                "task": task,
                "trial": name,
                "division": spec.division,
                "repeat": spec.repeat,
                "variant": spec.variant,
                "state": ms.state,
                "reason": ms.reason,
                "stage": ms.stage,
                "epoch": ms.epoch,
                "epochs": ms.epochs,
                "test_accuracy": result.test_accuracy.get(task) if result else None,
                "val_accuracy": result.val_accuracy.get(task) if result else None,
                "best_epoch": result.best_epoch.get(task) if result else None,
                "seconds": ms.seconds,
                "finished": _ts(ms.finished),
                "updated": _ts(ms.updated),
            }
        )
    for task, s in (summary.tasks if summary else {}).items():
        eight = s.eight_member
        combos = [c for c in eight.get("combinations") or [] if c.get("accuracy") is not None]
        rows["ensemble"].append(
            {
                "run": run,
                "task": task,
                "ensemble_accuracy": s.ensemble_accuracy,
                "n_members": s.n_members,
                "n_planned": s.n_planned,
                "n_recordings": s.n_recordings,
                "n_classes": s.n_classes,
                "member_mean": s.member_accuracy.mean,
                "member_std": s.member_accuracy.std,
                "eight_member_mean": _num(eight.get("mean")),
                "n_eight_member": len(combos),
                "missing": ",".join(s.missing),
                "created": _ts(summary.created),
            }
        )
        for b in s.by_size:
            rows["ensemble_size"].append(
                {
                    "run": run,
                    "task": task,
                    **{
                        k: b.get(k)
                        for k in (
                            "groups",
                            "members",
                            "combinations",
                            "total_combinations",
                            "mean",
                            "min",
                            "max",
                        )
                    },
                }
            )
        for c in eight.get("combinations") or []:
            rows["eight_member"].append(
                {
                    "run": run,
                    "task": task,
                    **{k: c.get(k) for k in ("triple_repeat", "quadruple_repeat", "members", "accuracy")},
                }
            )
    for task, names in files.class_names.items():
        rows["classes"].extend(
            {"run": run, "task": task, "label": i, "class_name": n} for i, n in enumerate(names)
        )


_EXPERIMENT_ORDER = {name: i for i, name in enumerate(EXPERIMENTS)}


def _spec(name: str) -> T.TrialSpec:
    spec = T.parse_trial_name(name)
    assert spec is not None, name  # names come from TrialSpec or were parsed already
    return spec


def _trial_order(name: str) -> tuple:
    s = _spec(name)
    return (_EXPERIMENT_ORDER.get(s.experiment, 99), s.repeat, s.variant != "triple", s.division)


def _lazy_sources(snapshots: Sequence[RunSnapshot]) -> dict[str, tuple[list[tuple[str, Any]], pa.Table]]:
    """Per lazy table: [(run name, pyarrow dataset)] and the empty table that stands in for none."""
    scores, predictions = [], []
    for snap in snapshots:
        f = snap.files
        paths = [layout.scores(f.path, n) for n, t in sorted(f.trials.items()) if t.result]
        paths = [p for p in paths if storage.is_file(f.fs, p)]
        if paths:
            scores.append((snap.ref.name, pads.dataset(paths, filesystem=f.fs, format="parquet")))
        if f.predictions_path:
            predictions.append(
                (snap.ref.name, pads.dataset([f.predictions_path], filesystem=f.fs, format="parquet"))
            )
    return {
        "scores": (scores, SCORES_SCHEMA.empty_table()),
        "predictions": (predictions, PREDICTIONS_SCHEMA.empty_table()),
    }


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _register_union(con, name: str, parts: list[tuple[str, Any]], empty: pa.Table) -> None:
    """A view `name` = every run's dataset with a leading `run` column (or an empty table)."""
    if not parts:
        con.register(f"_{name}_empty", empty)
        con.execute(f"create view {name} as select ''::varchar as run, * from _{name}_empty where false")
        return
    selects = []
    for i, (run, ds) in enumerate(parts):
        con.register(f"_{name}_{i}", ds)
        selects.append(f"select {_sql_string(run)} as run, * from _{name}_{i}")
    con.execute(f"create view {name} as " + " union all by name ".join(selects))
