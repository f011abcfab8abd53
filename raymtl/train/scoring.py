"""The scores table of a trial's test patches (scored in the Train worker, `raymtl.train.loop`).

`scores.parquet` has one row per (task, test patch): trial, task, dataset, clip, image,
patch_index, label and `scores`, the softmax over the task's P classes (list<float32>).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from raymtl import schema

SCORES = "scores"
TRIAL = "trial"
TASK = "task"
SCORES_SCHEMA = pa.schema(
    [
        (TRIAL, pa.string()),
        (TASK, pa.string()),
        (schema.DATASET, pa.string()),
        (schema.CLIP, pa.string()),
        (schema.IMAGE, pa.string()),
        (schema.PATCH_INDEX, pa.int32()),
        (schema.LABEL, pa.int32()),
        (SCORES, pa.list_(pa.float32())),
    ]
)
SCORE_COLUMNS = tuple(SCORES_SCHEMA.names)


def scores_table(trial: str, task: str, scored: dict[str, np.ndarray]) -> pa.Table:
    """A scores table from per-patch id columns and their `scores` (N, P)."""
    n = len(scored[schema.CLIP])
    scores = np.asarray(scored[SCORES], dtype=np.float32)
    flat = pa.array(scores.reshape(-1), pa.float32())
    offsets = pa.array(np.arange(0, n * scores.shape[1] + 1, scores.shape[1], dtype=np.int32))
    return pa.table(
        {
            TRIAL: pa.array([trial] * n, pa.string()),
            TASK: pa.array([task] * n, pa.string()),
            schema.DATASET: pa.array(scored[schema.DATASET].astype(str), pa.string()),
            schema.CLIP: pa.array(scored[schema.CLIP].astype(str), pa.string()),
            schema.IMAGE: pa.array(scored[schema.IMAGE].astype(str), pa.string()),
            schema.PATCH_INDEX: pa.array(scored[schema.PATCH_INDEX], pa.int32()),
            schema.LABEL: pa.array(scored[schema.LABEL], pa.int32()),
            SCORES: pa.ListArray.from_arrays(offsets, flat),
        },
        schema=SCORES_SCHEMA,
    )


def scores_matrix(table: pa.Table) -> np.ndarray:
    """(N, P) float32 from a scores table's list column."""
    col = table.column(SCORES).combine_chunks()
    n = len(col)
    return col.flatten().to_numpy(zero_copy_only=False).reshape(n, -1) if n else np.zeros((0, 0), np.float32)
