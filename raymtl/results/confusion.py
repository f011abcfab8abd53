"""Per-class accuracy and the confusion matrix of a task, per recording: for the ensemble (from
RUN/ensemble/predictions.parquet) or for one finished trial (its scores.parquet, voted per
recording exactly as training and reduce vote: `raymtl.train.evaluate.vote`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from raymtl.errors import UserError
from raymtl.results.store import ResultsStore
from raymtl.train.evaluate import vote
from raymtl.train.scoring import scores_matrix


class NotFound(UserError):
    """An unknown run, task or trial in a request (the dashboard answers 404)."""


def class_names(store: ResultsStore, run: str, task: str, n: int) -> list[str]:
    names = [
        r["class_name"]
        for r in store.rows(
            "select class_name from classes where run = ? and task = ? order by label", [run, task]
        )
    ]
    return names + [f"class {i}" for i in range(len(names), n)]


def confusion(store: ResultsStore, run: str, task: str, trial: str | None = None) -> dict[str, Any]:
    """{source, classes, matrix (true x predicted counts), per_class, accuracy, n_recordings}."""
    if trial is None:
        rows = store.rows("select label, prediction from predictions where run = ? and task = ?", [run, task])
        if not rows:
            raise NotFound(f"run {run!r} has no ensemble predictions for {task} (run `raymtl reduce` first)")
        labels = np.array([r["label"] for r in rows], dtype=np.int64)
        preds = np.array([r["prediction"] for r in rows], dtype=np.int64)
        n_classes = store.rows(
            "select max(n_classes) as n from ensemble where run = ? and task = ?", [run, task]
        )[0]["n"]
    else:
        table = store.query(
            "select dataset, clip, label, scores from scores where run = ? and trial = ? and task = ?",
            [run, trial, task],
        )
        if table.num_rows == 0:
            raise NotFound(f"run {run!r} has no {task} scores of a finished trial {trial!r}")
        scores = scores_matrix(table)  # (N, P)
        recording = np.char.add(
            np.asarray(table.column("dataset").to_pylist(), dtype=str),
            np.char.add("/", np.asarray(table.column("clip").to_pylist(), dtype=str)),
        )
        votes = vote(recording, scores, table.column("label").to_numpy())
        labels, preds, n_classes = votes.labels, votes.predictions, scores.shape[1]
    n = max(int(n_classes or 0), int(labels.max()) + 1, int(preds.max()) + 1)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    names = class_names(store, run, task, n)
    totals = matrix.sum(axis=1)
    per_class = [
        {
            "label": i,
            "class_name": names[i],
            "n": int(totals[i]),
            "n_correct": int(matrix[i, i]),
            "accuracy": float(matrix[i, i] / totals[i]) if totals[i] else None,
        }
        for i in range(n)
    ]
    return {
        "run": run,
        "task": task,
        "source": "ensemble" if trial is None else trial,
        "classes": names,
        "matrix": matrix.tolist(),
        "per_class": per_class,
        "accuracy": float(np.trace(matrix) / matrix.sum()),
        "n_recordings": int(matrix.sum()),
    }
