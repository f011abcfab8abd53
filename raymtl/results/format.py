"""Text, CSV and JSON renderings of the results report and of query rows (for the terminal)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from typing import Any, Sequence

_TASK_TITLE = {"asc": "ASC (TUT Acoustic Scenes 2017)", "aec": "AEC (ESC-50)"}


def pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def pm(mean: float | None, std: float | None) -> str:
    return "-" if mean is None else f"{pct(mean)} ± {pct(std)}"


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def report_text(doc: dict[str, Any]) -> str:
    """Progress per run, then per task Table I and Table II with the paper's figures."""
    runs = list(doc["runs"])
    out = []
    for name, r in doc["runs"].items():
        parts = [
            f"{t} {m['done']}/{sum(m.values())} done"
            + "".join(f", {m[s]} {s}" for s in ("running", "failed") if m[s])
            for t, m in r["members"].items()
        ]
        state = "reduced" if r["reduced"] else "not reduced yet (`raymtl reduce`)"
        out.append(f"{name} ({r['uri']}): members {'; '.join(parts)}; {state}")
    t1, t2 = doc["table1"], doc["table2"]
    for task in t1["tasks"]:
        out += [
            "",
            f"Table I, {_TASK_TITLE.get(task, task)}: per-recording accuracy %, mean ± std over repeats "
            f"of the mean over divisions, {t1['variant']} variant; (repeats/trials)",
        ]
        rows = []
        for row in t1["tasks"][task]:
            cells = [row["label"]]
            for run in runs:
                v = row["runs"][run]
                cells.append(
                    "-" if v is None else f"{pm(v['mean'], v['std'])} ({v['n_repeats']}/{v['n_trials']})"
                )
            cells.append(pm(row["paper"]["mean"], row["paper"]["std"]) if row["paper"] else "/")
            rows.append(cells)
        out += (
            _grid(["experiment", *runs, "paper"], rows) if rows else ["(no finished trial reports this task)"]
        )
        t = t2["tasks"][task]
        paper = t["paper"]
        out += ["", f"Table II, {_TASK_TITLE.get(task, task)}: ensemble per-recording accuracy %; (members)"]
        rows = [
            [
                "ensemble of all members",
                *(_t2(t["runs"][r], "ensemble_accuracy", "n_members") for r in runs),
                f"{pct(paper['ensemble'])} ({paper['members']})",
            ],
            [
                "8-member ensembles, mean",
                *(_t2(t["runs"][r], "eight_member_mean", "n_eight_member") for r in runs),
                (
                    "-"
                    if paper["eight_member_mean"] is None
                    else f"{pct(paper['eight_member_mean'])} ({paper['n_eight_member']})"
                ),
            ],
            ["single members, mean ± std", *(_members(t["runs"][r]) for r in runs), "-"],
        ]
        out += _grid(["", *runs, "paper"], rows)
        out.append(
            "other systems in the paper's Table II: "
            + ", ".join(f"{o['system']} {pct(o['accuracy'], 1)}" for o in paper["others"])
        )
        missing = {r: v["missing"] for r, v in t["runs"].items() if v and v["missing"]}
        for r, names in missing.items():
            out.append(f"{r}: fused without {', '.join(names)}")
    out += _claims_text(doc["claims"], runs)
    return "\n".join(out)


def _claims_text(c: dict[str, Any], runs: Sequence[str]) -> list[str]:
    """The paper's claims: per claim, each run's verdict and paired figures (differences in points)."""
    out = [
        "",
        f"The paper's claims, each a paired comparison over divisions and repeats ({c['variant']} "
        f"variant; the ensemble against each member); mean difference in points, "
        f"{100 * c['confidence']:.0f} % interval:",
    ]
    for k in c["claims"]:
        out.append(f"  {k['task']}: {k['claim']} ({k['source']})")
        out += [f"    {run}: {k['runs'][run]['words']}" for run in runs]
    return out


def _t2(v: dict | None, key: str, n_key: str) -> str:
    if v is None:
        return "not reduced"
    return "-" if v[key] is None else f"{pct(v[key])} ({v[n_key]})"


def _members(v: dict | None) -> str:
    return "not reduced" if v is None else f"{pm(v['member_mean'], v['member_std'])} ({v['n_members']})"


REPORT_CSV_COLUMNS = ("table", "task", "row", "run", "mean", "std", "n", "paper_mean", "paper_std")


def report_csv(doc: dict[str, Any]) -> str:
    """Long form: one line per (table, task, row, run); the paper's figures on every line."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(REPORT_CSV_COLUMNS)
    for task, rows in doc["table1"]["tasks"].items():
        for row in rows:
            p = row["paper"] or {}
            for run, v in row["runs"].items():
                if v is not None:
                    w.writerow(
                        [
                            "table1",
                            task,
                            row["experiment"],
                            run,
                            v["mean"],
                            v["std"],
                            v["n_trials"],
                            p.get("mean"),
                            p.get("std"),
                        ]
                    )
    for task, t in doc["table2"]["tasks"].items():
        p = t["paper"]
        for run, v in t["runs"].items():
            if v is None:
                continue
            w.writerow(
                [
                    "table2",
                    task,
                    "ensemble",
                    run,
                    v["ensemble_accuracy"],
                    None,
                    v["n_members"],
                    p["ensemble"],
                    None,
                ]
            )
            w.writerow(
                [
                    "table2",
                    task,
                    "eight_member_mean",
                    run,
                    v["eight_member_mean"],
                    None,
                    v["n_eight_member"],
                    p["eight_member_mean"],
                    None,
                ]
            )
            w.writerow(
                [
                    "table2",
                    task,
                    "members",
                    run,
                    v["member_mean"],
                    v["member_std"],
                    v["n_members"],
                    None,
                    None,
                ]
            )
    return buf.getvalue().rstrip("\n")


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    return value


def plain(obj: Any) -> Any:
    """JSON-safe: datetimes as ISO text, NaN as null (JSON has no NaN), recursively."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return _plain(obj)


def to_json(obj: Any) -> str:
    return json.dumps(plain(obj), indent=2, allow_nan=False)


def rows_text(columns: Sequence[str], rows: Sequence[Sequence[Any]], limit: int = 10000) -> str:
    """Query rows as an aligned table (at most `limit` rows, then a count of the rest)."""
    shown = [["NULL" if v is None else str(_plain(v)) for v in r] for r in rows[:limit]]
    lines = _grid(list(columns), shown)
    more = len(rows) - len(shown)
    lines.append(
        f"({len(rows)} row{'s' if len(rows) != 1 else ''}" + (f", {more} not shown)" if more else ")")
    )
    return "\n".join(lines)


def rows_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_plain(v) for v in r])
    return buf.getvalue().rstrip("\n")


def rows_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return to_json([dict(zip(columns, r)) for r in rows])
