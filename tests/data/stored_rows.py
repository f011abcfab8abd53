"""Reading a FEATURES folder (format version 2) with plain pyarrow, for the tests' expectations:
independent of the streams under test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from raymtl import schema
from raymtl.config import FeatureConfig

KEYED = {"esc50": ("mono",), "tut2017": ("left", "right", "sum", "diff")}
META = (
    schema.DATASET,
    schema.SUBSET,
    schema.CLIP,
    schema.SOURCE,
    schema.FOLD,
    schema.LABEL,
    schema.CLASS_NAME,
)


def manifest(features: Path) -> dict:
    return json.loads((Path(features) / schema.FEATURES_MANIFEST).read_text())


def files(features: Path) -> list[Path]:
    """Every Parquet file the manifest lists (each partition's), sorted."""
    parts = manifest(features)["partitions"].values()
    return sorted(Path(features) / f for p in parts for f in p["files"])


def clip_rows(features: Path, columns=None) -> pa.Table:
    """All clip rows, from the files the manifest lists."""
    return pa.concat_tables(pq.read_table(f, columns=columns) for f in files(features))


def patch_meta(features: Path) -> pd.DataFrame:
    """One row per patch the streams can cut (every image, sum and diff included): the clip's
    metadata, image and patch_index; the order is clip, image, patch."""
    cfg = FeatureConfig(**manifest(features)["features"])
    clips = clip_rows(features, [*META, "n_frames"]).to_pandas()
    rows = []
    for r in clips.itertuples(index=False):
        for image in KEYED[r.dataset]:
            for p in range(cfg.n_patches(int(r.n_frames))):
                rows.append((*(getattr(r, c) for c in META), image, p))
    return pd.DataFrame(rows, columns=[*META, schema.IMAGE, schema.PATCH_INDEX])


def stored_image(row: dict, name: str, n_mels: int = 128) -> np.ndarray:
    """One stored channel image of a clip row (as `pq.read_table(...).to_pylist()` gives it), in dB."""
    q = np.frombuffer(row[name], dtype="<i2").reshape(n_mels, -1)
    return q.astype(np.float32) / np.float32(128)
