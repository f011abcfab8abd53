"""The run's versions of the paper's Table I and Table II, several runs side by side, as plain
data (dicts and lists) for `raymtl results` and the dashboard's API alike.

Table I (paper §III): per task, one row per experiment present in any run, in the paper's order:
each run's mean ± std over repeats of the mean over divisions (the `table1` view), beside the
paper's figure. The paper ran Table I on the triple variant only, hence the default; `quadruple`
and `all` (both variants together, as reduce's summary does) are there too.

Table II (paper §III-F): per task, each run's ensemble accuracy, the mean of its 8-member
ensembles and its single members' mean ± std, from RUN/ensemble/summary.json, beside the paper's.
"""

from __future__ import annotations

from typing import Any

from raymtl.config import TASKS
from raymtl.errors import UserError
from raymtl.results import paper
from raymtl.results.claims import claims
from raymtl.results.store import ResultsStore
from raymtl.train.experiments import EXPERIMENTS

TABLE1_VARIANTS = ("triple", "quadruple", "all")
_ORDER = {name: i for i, name in enumerate(EXPERIMENTS)}


def _tasks(store: ResultsStore) -> list[str]:
    """The tasks any of the runs plans, in the usual order (asc, aec)."""
    return [t for t in TASKS if any(t in s.files.plan.tasks for s in store.snapshots)]


def table1(store: ResultsStore, variant: str = "triple") -> dict[str, Any]:
    if variant not in TABLE1_VARIANTS:
        raise UserError(f"unknown variant {variant!r} for Table I; valid: {', '.join(TABLE1_VARIANTS)}")
    rows = store.rows(
        "select run, task, experiment, mean, std, n_repeats, n_trials from table1 where variant = ?",
        [variant],
    )
    runs = store.run_names()
    tasks: dict[str, list[dict[str, Any]]] = {}
    for task in _tasks(store):
        present = sorted(
            {r["experiment"] for r in rows if r["task"] == task}, key=lambda e: _ORDER.get(e, 99)
        )
        out = []
        for exp in present:
            figures = paper.table1(exp, task)
            by_run = {r["run"]: r for r in rows if r["task"] == task and r["experiment"] == exp}
            out.append(
                {
                    "experiment": exp,
                    "label": paper.LABELS.get(exp, exp),
                    "paper": {"mean": figures[0], "std": figures[1]} if figures else None,
                    "runs": {
                        run: (
                            {k: by_run[run][k] for k in ("mean", "std", "n_repeats", "n_trials")}
                            if run in by_run
                            else None
                        )
                        for run in runs
                    },
                }
            )
        tasks[task] = out
    return {"variant": variant, "std": "population (ddof=0) over repeats", "tasks": tasks}


def table2(store: ResultsStore) -> dict[str, Any]:
    rows = store.rows("select * from ensemble")
    runs = store.run_names()
    tasks = {}
    for task in _tasks(store):
        figures = paper.TABLE2[task]
        by_run = {r["run"]: r for r in rows if r["task"] == task}
        tasks[task] = {
            "paper": {
                "ensemble": figures.ensemble,
                "members": figures.members,
                "eight_member_mean": figures.eight_member_mean,
                "n_eight_member": 9,  # 3 triple repeats x 3 quadruple repeats
                "others": [{"system": s, "accuracy": a} for s, a in paper.TABLE2_OTHERS[task]],
            },
            "runs": {run: _table2_run(by_run.get(run)) for run in runs},
        }
    return {"tasks": tasks}


def _table2_run(r: dict[str, Any] | None) -> dict[str, Any] | None:
    """None when the run has not been reduced (or has no such task)."""
    if r is None:
        return None
    keys = (
        "ensemble_accuracy",
        "n_members",
        "n_planned",
        "eight_member_mean",
        "n_eight_member",
        "member_mean",
        "member_std",
    )
    return {**{k: r[k] for k in keys}, "missing": [m for m in (r["missing"] or "").split(",") if m]}


def progress(store: ResultsStore) -> dict[str, Any]:
    """Per run: members per state and task, whether it is reduced, whether anything is running."""
    counts = store.rows("select run, task, state, count(*)::integer as n from members group by all")
    runs = {}
    for snap in store.snapshots:
        name = snap.ref.name
        per_task = {
            task: {
                state: sum(c["n"] for c in counts if (c["run"], c["task"], c["state"]) == (name, task, state))
                for state in ("done", "running", "failed", "missing")
            }
            for task in snap.files.plan.tasks
        }
        runs[name] = {
            "uri": snap.ref.uri,
            "reduced": snap.files.summary is not None,
            "live": snap.live,
            "members": per_task,
        }
    return runs


def report(store: ResultsStore, variant: str = "triple") -> dict[str, Any]:
    """The whole `raymtl results` document."""
    return {
        "runs": progress(store),
        "table1": table1(store, variant),
        "table2": table2(store),
        "claims": claims(store, variant),
    }
