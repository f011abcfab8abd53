"""TUT Acoustic Scenes 2017 (DCASE 2017 task 1): 10 s binaural segments of 15 scenes.

Published layout, read untouched (tab-separated, no header)::

    TUT-acoustic-scenes-2017-development/
      meta.txt                          audio/a001_0_10.wav<TAB>beach<TAB>a001
      evaluation_setup/fold1_train.txt  audio/a001_0_10.wav<TAB>beach
      evaluation_setup/fold1_evaluate.txt   (same format)
      evaluation_setup/fold1_test.txt   audio/a001_0_10.wav
      audio/...
    TUT-acoustic-scenes-2017-evaluation/
      meta.txt                          audio/1.wav<TAB>beach[<TAB>source]

A development clip's fold is the fold whose `evaluate` list holds it; `foldk_train.txt` must be
the rest of the development set (checked), so a division's split follows from the fold alone.
The scene list is what the development metadata holds, in the published order.
"""

from __future__ import annotations

import logging
from pathlib import Path

from raymtl.data.classes import TUT2017_FOLDS, TUT2017_SCENES
from raymtl.data.esc50 import find_audio
from raymtl.data.records import ClipRecord, Layout, Reject
from raymtl.errors import LayoutError

log = logging.getLogger(__name__)

META = "meta.txt"
SETUP_DIR = "evaluation_setup"


def _read_tsv(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-empty lines; tolerates CRLF and trailing tabs."""
    with open(path, encoding="utf-8") as f:
        return [
            (i, [field.strip() for field in line.rstrip("\r\n").split("\t")])
            for i, line in enumerate(f, start=1)
            if line.strip()
        ]


def _source_of(clip: str) -> str:
    """`audio/a001_0_10.wav` -> `a001`; for names without segment times, the stem."""
    stem = Path(clip).stem
    parts = stem.rsplit("_", 2)
    return parts[0] if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() else stem


def _parse_meta(root: Path, scenes: set[str] | None) -> tuple[list[tuple[str, str, str, Path]], list[Reject]]:
    """Rows (clip, scene, source, path) of `root/meta.txt`, and the rejected ones."""
    meta_path = root / META
    if not meta_path.is_file():
        raise LayoutError(
            str(meta_path), "missing: not a TUT Acoustic Scenes 2017 folder (expected meta.txt)"
        )
    rows, rejects, seen = [], [], {}
    for line_no, fields in _read_tsv(meta_path):
        if len(fields) < 2 or not fields[0]:
            rejects.append(Reject(str(meta_path), f"line {line_no}: malformed row (expected file<TAB>scene)"))
            continue
        clip, scene = fields[0], fields[1]
        source = fields[2] if len(fields) > 2 and fields[2] else _source_of(clip)
        if clip in seen:
            rejects.append(Reject(str(root / clip), f"duplicate file (first listed on line {seen[clip]})"))
            continue
        seen[clip] = line_no
        known = scenes if scenes is not None else set(TUT2017_SCENES)
        if scene not in known:
            rejects.append(Reject(str(root / clip), f"unknown class {scene!r}"))
            continue
        path = find_audio(root, clip)
        if path is None:
            rejects.append(Reject(str(root / clip), f"missing audio file {clip}"))
            continue
        rows.append((clip, scene, source, path))
    return rows, rejects


def _read_fold_list(path: Path) -> dict[str, str | None]:
    if not path.is_file():
        raise LayoutError(str(path), f"missing: a TUT development set needs {SETUP_DIR}/{path.name}")
    return {fields[0]: (fields[1] if len(fields) > 1 else None) for _, fields in _read_tsv(path)}


def _dev_folds(root: Path, meta: dict[str, str]) -> dict[str, int]:
    """clip -> fold from the evaluate lists, checked against the train lists and meta.txt."""
    fold_of: dict[str, int] = {}
    evaluate_lists = {}
    for k in TUT2017_FOLDS:
        evaluate = _read_fold_list(root / SETUP_DIR / f"fold{k}_evaluate.txt")
        evaluate_lists[k] = evaluate
        for clip, scene in evaluate.items():
            if clip in fold_of:
                raise LayoutError(
                    str(root / SETUP_DIR / f"fold{k}_evaluate.txt"),
                    f"{clip} is also in fold{fold_of[clip]}_evaluate.txt; folds must be disjoint",
                )
            fold_of[clip] = k
            if clip in meta and scene is not None and scene != meta[clip]:
                raise LayoutError(
                    str(root / SETUP_DIR / f"fold{k}_evaluate.txt"),
                    f"{clip} is labelled {scene!r} here but {meta[clip]!r} in meta.txt",
                )
    folded = set(fold_of)
    for k in TUT2017_FOLDS:
        train_path = root / SETUP_DIR / f"fold{k}_train.txt"
        train = set(_read_fold_list(train_path))
        expected = folded - set(evaluate_lists[k])
        if train != expected:
            extra, missing = sorted(train - expected), sorted(expected - train)
            raise LayoutError(
                str(train_path),
                f"must list exactly the development clips outside fold{k}_evaluate.txt; "
                f"{len(extra)} unexpected (e.g. {extra[:2]}), {len(missing)} missing (e.g. {missing[:2]})",
            )
    return fold_of


def parse_tut2017(dev_root: str | Path, eval_root: str | Path) -> Layout:
    """Read the development and evaluation folders into one layout (subset dev / eval)."""
    dev_root, eval_root = Path(dev_root), Path(eval_root)
    dev_rows, rejects = _parse_meta(dev_root, None)
    if not dev_rows:
        raise LayoutError(str(dev_root / META), "no usable clips")
    fold_of = _dev_folds(dev_root, {clip: scene for clip, scene, _, _ in dev_rows})
    scene_set = {scene for _, scene, _, _ in dev_rows}
    classes = tuple(s for s in TUT2017_SCENES if s in scene_set)
    label_of = {s: i for i, s in enumerate(classes)}

    clips: list[ClipRecord] = []
    for clip, scene, source, path in dev_rows:
        if clip not in fold_of:
            rejects.append(Reject(str(dev_root / clip), "in meta.txt but in no fold's evaluate list"))
            continue
        clips.append(
            ClipRecord("tut2017", "dev", clip, str(path), source, fold_of[clip], label_of[scene], scene)
        )

    eval_rows, eval_rejects = _parse_meta(eval_root, scene_set)
    rejects.extend(eval_rejects)
    dev_sources = {c.source for c in clips}
    for clip, scene, source, path in eval_rows:
        if source in dev_sources:
            log.warning(
                "evaluation clip %s shares source recording %s with the development set", clip, source
            )
        clips.append(ClipRecord("tut2017", "eval", clip, str(path), source, None, label_of[scene], scene))
    if not any(c.subset == "eval" for c in clips):
        raise LayoutError(str(eval_root / META), "no usable clips")
    log.info(
        "TUT 2017: %d development + %d evaluation clips, %d scenes, %d rejected",
        sum(c.subset == "dev" for c in clips),
        sum(c.subset == "eval" for c in clips),
        len(classes),
        len(rejects),
    )
    return Layout(
        dataset="tut2017", root=str(dev_root), clips=tuple(clips), classes=classes, rejects=tuple(rejects)
    )
