"""ESC-50: 2000 five-second environmental recordings in 50 classes, 5 folds (Piczak, 2015).

Published layout, read untouched::

    ESC-50/
      meta/esc50.csv   filename,fold,target,category,esc10,src_file,take
      audio/1-100032-A-0.wav ...        ({fold}-{src_file}-{take}-{target}.wav)

The older revision of `esc50.csv` named the columns `filename,fold,category,category_name,...`
(the integer target under `category`); both headers are read. Audio may be WAV, FLAC or Ogg:
when the listed file is absent, a file with the same stem and one of those extensions is used.
`subset="esc10"` keeps the ESC-10 rows (the `esc10` column) and gives a 10-class problem.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from raymtl.data.classes import ESC50_CLASSES, ESC50_FOLDS
from raymtl.data.records import ClipRecord, Layout, Reject
from raymtl.errors import ConfigError, LayoutError

log = logging.getLogger(__name__)

META = "meta/esc50.csv"
AUDIO_DIR = "audio"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
SUBSETS = ("all", "esc10")
_HEADER_CURRENT = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
_HEADER_OLD = ["filename", "fold", "category", "category_name", "esc10", "src_file", "take"]


def find_audio(audio_dir: Path, filename: str) -> Path | None:
    """The listed file, or the same stem with another supported extension."""
    path = audio_dir / filename
    if path.is_file():
        return path
    for ext in AUDIO_EXTENSIONS:
        alt = path.with_suffix(ext)
        if alt.is_file():
            return alt
    return None


def parse_esc50(root: str | Path, subset: str = "all") -> Layout:
    """Read an ESC-50 folder. Bad rows become rejects; a bad folder raises `LayoutError`."""
    if subset not in SUBSETS:
        raise ConfigError(f"unknown ESC subset {subset!r}; valid: {', '.join(SUBSETS)}")
    root = Path(root)
    meta_path = root / META
    if not meta_path.is_file():
        raise LayoutError(str(meta_path), "missing: not an ESC-50 folder (expected meta/esc50.csv)")
    with open(meta_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header == _HEADER_CURRENT:
            target_col, name_col = "target", "category"
        elif header == _HEADER_OLD:
            target_col, name_col = "category", "category_name"
        else:
            raise LayoutError(
                str(meta_path),
                f"unexpected header {','.join(header)!r}; expected {','.join(_HEADER_CURRENT)!r}",
            )
        rows = [(line_no, dict(zip(header, row))) for line_no, row in enumerate(reader, start=2) if row]

    audio_dir = root / AUDIO_DIR
    rejects: list[Reject] = []
    seen: dict[str, int] = {}
    accepted: list[tuple[dict, int, int, Path]] = []
    for line_no, row in rows:
        filename = (row.get("filename") or "").strip()
        where = f"{META} line {line_no}"
        if len(row) != len(header) or not filename:
            rejects.append(Reject(str(meta_path), f"{where}: malformed row"))
            continue
        if filename in seen:
            rejects.append(
                Reject(str(audio_dir / filename), f"duplicate file (first listed on line {seen[filename]})")
            )
            continue
        seen[filename] = line_no
        try:
            target = int(row[target_col])
        except ValueError:
            rejects.append(
                Reject(
                    str(audio_dir / filename), f"unknown class: target {row[target_col]!r} is not an integer"
                )
            )
            continue
        name = row[name_col].strip()
        if not 0 <= target < len(ESC50_CLASSES) or ESC50_CLASSES[target] != name:
            rejects.append(
                Reject(str(audio_dir / filename), f"unknown class: target {target}, category {name!r}")
            )
            continue
        try:
            fold = int(row["fold"])
        except ValueError:
            fold = -1
        if fold not in ESC50_FOLDS:
            rejects.append(
                Reject(str(audio_dir / filename), f"fold {row['fold']!r} out of range 1..{max(ESC50_FOLDS)}")
            )
            continue
        if subset == "esc10" and row["esc10"].strip().lower() != "true":
            continue
        path = find_audio(audio_dir, filename)
        if path is None:
            rejects.append(Reject(str(audio_dir / filename), f"missing audio file {AUDIO_DIR}/{filename}"))
            continue
        accepted.append((row, target, fold, path))

    # The class list is what the metadata holds, in the published target order.
    targets = sorted({t for _, t, _, _ in accepted})
    label_of = {t: i for i, t in enumerate(targets)}
    clips = tuple(
        ClipRecord(
            dataset="esc50",
            subset="dev",
            clip=row["filename"].strip(),
            path=str(path),
            source=row["src_file"].strip(),
            fold=fold,
            label=label_of[target],
            class_name=ESC50_CLASSES[target],
        )
        for row, target, fold, path in accepted
    )
    if not clips:
        raise LayoutError(str(meta_path), "no usable clips")
    log.info("ESC-50 %s: %d clips, %d classes, %d rejected", subset, len(clips), len(targets), len(rejects))
    return Layout(
        dataset="esc50",
        root=str(root),
        clips=clips,
        classes=tuple(ESC50_CLASSES[t] for t in targets),
        rejects=tuple(rejects),
    )
