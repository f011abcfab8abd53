"""Typed records shared by the dataset layouts and featurization."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

DATASETS = ("esc50", "tut2017")
SUBSETS = ("dev", "eval")


@dataclass(frozen=True)
class ClipRecord:
    """One audio file as its dataset's metadata describes it.

    `clip` is the file name exactly as the metadata gives it (`1-100032-A-0.wav`,
    `audio/a001_0_10.wav`); `path` is where the audio was found on disk. `fold` is the ESC-50
    fold, or for TUT the development fold whose `evaluate` list holds the clip (None for the
    evaluation set).
    """

    dataset: str
    subset: str
    clip: str
    path: str
    source: str
    fold: int | None
    label: int
    class_name: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Reject:
    """A file left out, and why (a row of `rejects.csv`)."""

    file: str
    reason: str


@dataclass(frozen=True)
class Layout:
    """A parsed dataset folder: the usable clips, the class list, and what was rejected."""

    dataset: str
    root: str
    clips: tuple[ClipRecord, ...]
    classes: tuple[str, ...]
    rejects: tuple[Reject, ...]

    def counts_by_fold(self) -> dict[int | None, int]:
        out: dict[int | None, int] = {}
        for c in self.clips:
            out[c.fold] = out.get(c.fold, 0) + 1
        return out
