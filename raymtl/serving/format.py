"""`raymtl predict --format table|json|csv`: the same answer document in three forms.

- json: the document itself (docs/formats.md: predict JSON).
- csv: one row per (file, part, task, rank): part is `all` for the whole file or the segment's
  number; task is `scene` (rank 1 only) or `event` (ranks 1..k); an unreadable file is one
  row with `ok` false and the error.
- table: for people; one block per file, a line per segment for long files.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable

from raymtl.errors import UserError
from raymtl.serving.predict import EVENTS, SCENE

CSV_COLUMNS = (
    "file",
    "ok",
    "error",
    "part",
    "start_s",
    "end_s",
    "task",
    "rank",
    "label",
    "score",
    "votes",
    "padded",
)


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _rows(doc: dict[str, Any]):
    for r in doc["files"]:
        if not r["ok"]:
            yield {"file": r["file"], "ok": False, "error": r["error"]}
            continue
        parts = [("all", 0.0, r["duration_s"], r)]
        parts += [(str(s["index"]), s["start_s"], s["end_s"], s) for s in r["segments"]]
        for name, start, end, p in parts:
            base = {
                "file": r["file"],
                "ok": True,
                "part": name,
                "start_s": start,
                "end_s": end,
                "padded": p["padded"],
            }
            yield {**base, "task": "scene", "rank": 1, **_cells(p[SCENE])}
            for rank, e in enumerate(p[EVENTS], 1):
                yield {**base, "task": "event", "rank": rank, **_cells(e)}


def _cells(answer: dict[str, Any]) -> dict[str, Any]:
    return {"label": answer["label"], "score": answer["score"], "votes": answer["votes"]}


def to_csv(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in _rows(doc):
        w.writerow({k: _csv_value(row.get(k)) for k in CSV_COLUMNS})
    return out.getvalue()


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


def _events_text(events: list[dict[str, Any]]) -> str:
    return ", ".join(f"{e['label']} {e['score']:.2f}" for e in events)


def _scene_text(scene: dict[str, Any]) -> str:
    return f"{scene['label']} {scene['score']:.2f} ({scene['votes']}/{scene['patches']} patch votes)"


def to_table(doc: dict[str, Any]) -> str:
    m = doc["model"]
    members = {x["trial"] for x in m["scene_models"] + m["event_models"]}
    lines = [f"model: {m['kind']} ({len(members)} network file(s) from {', '.join(sorted(members))})"]
    for r in doc["files"]:
        if not r["ok"]:
            lines.append(f"{r['file']}: error: {r['error']}")
            continue
        kind = {1: "mono", 2: "stereo"}.get(r["channels"], f"{r['channels']} ch")
        flags = [*r["notes"]]
        lines.append(
            f"{r['file']}: {r['duration_s']:.2f} s, {kind}, {r['sample_rate_hz']} Hz"
            + (f" ({'; '.join(flags)})" if flags else "")
        )
        lines.append(f"  scene   {_scene_text(r[SCENE])}")
        lines.append(f"  events  {_events_text(r[EVENTS])}")
        for s in r["segments"]:
            pad = " (padded)" if s["padded"] else ""
            lines.append(
                f"  {s['start_s']:7.1f}-{s['end_s']:<7.1f} s  "
                f"scene {s[SCENE]['label']} {s[SCENE]['score']:.2f}; events {_events_text(s[EVENTS])}{pad}"
            )
    return "\n".join(lines)


FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {"table": to_table, "json": to_json, "csv": to_csv}


def render(doc: dict[str, Any], fmt: str) -> str:
    try:
        return FORMATS[fmt](doc)
    except KeyError:
        raise UserError(f"unknown --format {fmt!r}; valid: {', '.join(FORMATS)}") from None
