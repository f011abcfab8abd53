"""The four divisions of docs/method.md §2, pairing the two datasets.

Division k (1..4):
- TUT: train = `foldk_train.txt`, validation = `foldk_evaluate.txt` (the development clips of
  fold k), test = the evaluation set (the same for every division).
- ESC-50: test = fold k; validation = fold k+1; train = the three other folds (3:1, paper §III-A).

Everything here works from a clip's (dataset, subset, fold), so it applies equally to
`ClipRecord`s and to batches of the Parquet features.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from raymtl.errors import ConfigError

DIVISIONS = (1, 2, 3, 4)
SPLITS = ("train", "validation", "test")
ESC_FOLDS = 5


def check_division(division: int) -> int:
    if division not in DIVISIONS:
        raise ConfigError(f"division must be one of {DIVISIONS}, got {division!r}")
    return division


def esc_validation_fold(division: int) -> int:
    return check_division(division) % ESC_FOLDS + 1


def split_of(dataset: str, subset: str, fold: int | None, division: int) -> str:
    """The split of one clip in division `division`."""
    check_division(division)
    if dataset == "tut2017":
        if subset == "eval":
            return "test"
        return "validation" if fold == division else "train"
    if dataset == "esc50":
        if fold == division:
            return "test"
        return "validation" if fold == esc_validation_fold(division) else "train"
    raise ConfigError(f"unknown dataset {dataset!r}")


def split_mask(batch: Mapping[str, np.ndarray], dataset: str, split: str, division: int) -> np.ndarray:
    """Vectorised `split_of(...) == split` over a batch with `dataset`, `subset`, `fold` columns."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    check_division(division)
    ds = np.asarray(batch["dataset"]) == dataset
    subset = np.asarray(batch["subset"])
    # Null folds (TUT evaluation set) arrive as NaN or None; they never equal a division.
    fold = np.array([(-1 if f is None or f != f else int(f)) for f in batch["fold"]], dtype=np.int64)
    if dataset == "tut2017":
        by_split = {
            "test": subset == "eval",
            "validation": (subset == "dev") & (fold == division),
            "train": (subset == "dev") & (fold != division),
        }
    elif dataset == "esc50":
        val = esc_validation_fold(division)
        by_split = {
            "test": fold == division,
            "validation": fold == val,
            "train": (fold != division) & (fold != val) & (fold > 0),
        }
    else:
        raise ConfigError(f"unknown dataset {dataset!r}")
    return ds & by_split[split]
