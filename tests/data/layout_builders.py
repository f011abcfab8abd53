"""Small dataset folders in the published layouts, built in a temporary directory for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from raymtl.data.classes import ESC50_CLASSES, TUT2017_SCENES

ESC_HEADER = "filename,fold,target,category,esc10,src_file,take"


def write_wav(
    path: Path, seconds: float, channels: int, sr: int = 44100, seed: int = 0, subtype="PCM_16"
) -> Path:
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    y = (0.1 * rng.standard_normal((n, channels))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y if channels > 1 else y[:, 0], sr, subtype=subtype)
    return path


def make_esc(root: Path, targets=(0, 1), folds=(1, 2, 3, 4, 5), extra_rows: list[str] = ()) -> Path:
    """One mono 5 s clip per (fold, target); `extra_rows` are appended verbatim to esc50.csv."""
    rows = [ESC_HEADER]
    for fold in folds:
        for t in targets:
            name = f"{fold}-{1000 + t}-A-{t}.wav"
            write_wav(root / "audio" / name, 5.0, 1, seed=fold * 100 + t)
            rows.append(f"{name},{fold},{t},{ESC50_CLASSES[t]},True,{1000 + t},A")
    rows.extend(extra_rows)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return root


def make_tut(dev: Path, evl: Path, scenes=(0, 1), per_fold: int = 1, n_eval: int = 1) -> tuple[Path, Path]:
    """TUT 2017 development (4 folds) and evaluation folders with `scenes` (indices)."""
    folds: dict[int, list[tuple[str, str]]] = {}
    meta = []
    for k in (1, 2, 3, 4):
        for s in scenes:
            for j in range(per_fold):
                rec = f"a{k}{s:02d}{j}"
                clip = f"audio/{rec}_0_10.wav"
                write_wav(dev / clip, 10.0, 2, seed=k * 1000 + s * 10 + j)
                meta.append(f"{clip}\t{TUT2017_SCENES[s]}\t{rec}")
                folds.setdefault(k, []).append((clip, TUT2017_SCENES[s]))
    (dev / "meta.txt").write_text("\n".join(meta) + "\n")
    setup = dev / "evaluation_setup"
    setup.mkdir(parents=True, exist_ok=True)
    for k in folds:
        (setup / f"fold{k}_evaluate.txt").write_text("".join(f"{c}\t{s}\n" for c, s in folds[k]))
        (setup / f"fold{k}_test.txt").write_text("".join(f"{c}\n" for c, _ in folds[k]))
        (setup / f"fold{k}_train.txt").write_text(
            "".join(f"{c}\t{s}\n" for j in folds if j != k for c, s in folds[j])
        )
    rows = []
    for s in scenes:
        for j in range(n_eval):
            clip = f"audio/{s * 10 + j + 1}.wav"
            write_wav(evl / clip, 10.0, 2, seed=99000 + s * 10 + j)
            rows.append(f"{clip}\t{TUT2017_SCENES[s]}")
    (evl / "meta.txt").write_text("\n".join(rows) + "\n")
    return dev, evl
