"""Writing a synthetic dataset: each file's audio (`render`), PCM16 WAV files and the metadata
of the published layouts, written atomically through `raymtl.storage` (`generate`)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from raymtl import storage
from raymtl.data.classes import TUT2017_FOLDS
from raymtl.data.synth.events import esc_clip
from raymtl.data.synth.planning import (
    AUDIO_DIR,
    DATASETS,
    ESC50,
    ESC50_CSV,
    ESC50_CSV_HEADER,
    SAMPLE_RATE_HZ,
    TUT_DEV,
    TUT_EVAL,
    TUT_META,
    TUT_SETUP_DIR,
    PlannedClip,
    PlannedSegment,
    SynthPlan,
    plan,
)
from raymtl.data.synth.scenes import tut_segment
from raymtl.errors import OutputExistsError

logger = logging.getLogger(__name__)


def render(the_plan: SynthPlan, dataset: str, index: int) -> np.ndarray:
    """The audio of file `index` of `dataset` in `the_plan`, float32 within [-0.89, 0.89].

    ESC-50 clips are (220500,), TUT segments (441000, 2). Depends only on the plan's seed, the
    dataset and the index, never on which files were made before.
    """
    record = the_plan.files(dataset)[index]
    if dataset == ESC50:
        return esc_clip(record, the_plan.seed, index)
    return tut_segment(record, dataset, the_plan.seed, index)


@dataclass(frozen=True)
class SynthSummary:
    """What `generate` wrote."""

    size: str
    seed: int
    esc50_dir: Path
    tut_dev_dir: Path
    tut_eval_dir: Path
    n_esc50: int
    n_tut_dev: int
    n_tut_eval: int
    n_stale_removed: int  # audio files of an earlier, different dataset removed from audio/
    elapsed_s: float

    def describe(self) -> str:
        """A few lines for the command line."""
        return "\n".join(
            [
                f"synthetic data, size {self.size}, seed {self.seed} ({self.elapsed_s:.1f} s):",
                f"  {self.esc50_dir}: {self.n_esc50} ESC-50 clips",
                f"  {self.tut_dev_dir}: {self.n_tut_dev} TUT 2017 development segments",
                f"  {self.tut_eval_dir}: {self.n_tut_eval} TUT 2017 evaluation segments",
            ]
        )


def _to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float in [-1, 1) to int16 at full scale 32768 (how soundfile and librosa read PCM16
    back), rounded to nearest. 3x cheaper than libsndfile's own float conversion."""
    scaled = np.rint(np.asarray(audio, dtype=np.float32) * np.float32(32768.0))
    return np.clip(scaled, -32768, 32767).astype(np.int16, order="C")


def _write_wav_atomic(path: Path, audio: np.ndarray) -> None:
    with storage.atomic_local_file(path) as tmp:
        sf.write(tmp, _to_pcm16(audio), SAMPLE_RATE_HZ, subtype="PCM_16", format="WAV")


def _write_text_atomic(path: Path, lines: list[str]) -> None:
    fs, local = storage.resolve(path)
    storage.write_text(fs, local, "".join(line + "\n" for line in lines))


def _finished_markers(out: Path) -> list[Path]:
    """The metadata files whose presence means a finished dataset (they are written last)."""
    return [out / ESC50 / ESC50_CSV, out / TUT_DEV / TUT_META, out / TUT_EVAL / TUT_META]


def _metadata(the_plan: SynthPlan) -> dict[str, list[str]]:
    """Every metadata file, relative to `out`, and its lines."""
    files = {
        f"{ESC50}/{ESC50_CSV}": [ESC50_CSV_HEADER] + [c.csv_row() for c in the_plan.esc50],
    }
    for fold in TUT2017_FOLDS:
        setup = f"{TUT_DEV}/{TUT_SETUP_DIR}/fold{fold}"
        files[f"{setup}_train.txt"] = [f"{s.filename}\t{s.scene}" for s in the_plan.tut_dev if s.fold != fold]
        files[f"{setup}_evaluate.txt"] = [
            f"{s.filename}\t{s.scene}" for s in the_plan.tut_dev if s.fold == fold
        ]
        files[f"{setup}_test.txt"] = [s.filename for s in the_plan.tut_dev if s.fold == fold]
    # meta.txt last in each folder: its presence marks the folder finished.
    files[f"{TUT_DEV}/{TUT_META}"] = [s.meta_row() for s in the_plan.tut_dev]
    files[f"{TUT_EVAL}/{TUT_META}"] = [s.meta_row() for s in the_plan.tut_eval]
    return files


def _audio_path(out: Path, dataset: str, record: PlannedClip | PlannedSegment) -> Path:
    if dataset == ESC50:
        return out / ESC50 / AUDIO_DIR / record.filename
    return out / dataset / record.filename  # TUT names already start with "audio/"


def generate(out: str | Path, size: str = "tiny", seed: int = 0, *, overwrite: bool = False) -> SynthSummary:
    """Write synthetic ESC-50 and TUT Acoustic Scenes 2017 (dev and eval) under `out`.

    Makes ``out/esc50``, ``out/tut2017-dev`` and ``out/tut2017-eval`` in the published layouts
    (see the module docstring). Refuses with `OutputExistsError` if any of them already holds a
    finished dataset (its metadata file exists) unless `overwrite`; an unfinished one (an
    interrupted run) is completed. Audio files in the three ``audio/`` folders that the new
    dataset does not list are removed. Raises `ConfigError` for an unknown `size` or a bad seed.
    """
    t0 = time.perf_counter()
    the_plan = plan(size, seed)
    out = Path(out)
    finished = [p for p in _finished_markers(out) if p.exists()]
    if finished and not overwrite:
        raise OutputExistsError(
            f"{out}: already holds a finished dataset ({', '.join(str(p) for p in finished)}); "
            "choose another folder, or pass --overwrite (overwrite=True) to replace it"
        )
    for marker in finished:  # an interrupted overwrite must not look finished
        marker.unlink()

    jobs = [(d, i) for d in DATASETS for i in range(len(the_plan.files(d)))]
    logger.info("synth: writing %d files (size %s, seed %d) under %s", len(jobs), size, seed, out)
    for d in DATASETS:
        (out / d / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    every = max(1, len(jobs) // 10)
    for done, (dataset, index) in enumerate(jobs, start=1):
        record = the_plan.files(dataset)[index]
        _write_wav_atomic(_audio_path(out, dataset, record), render(the_plan, dataset, index))
        if done % every == 0 or done == len(jobs):
            logger.info("synth: %d/%d files written", done, len(jobs))

    n_stale = 0
    for d in DATASETS:
        wanted = {_audio_path(out, d, r).name for r in the_plan.files(d)}
        for path in (out / d / AUDIO_DIR).iterdir():
            stale_wav = path.suffix == ".wav" and path.name not in wanted
            # Temporary files of an interrupted run (".partial": this module's name for them before
            # raymtl.storage wrote every file).
            leftover = storage.is_temporary(path.name) or path.name.endswith(".partial")
            if path.is_file() and (stale_wav or leftover):
                path.unlink()
                n_stale += stale_wav
    if n_stale:
        logger.info("synth: removed %d audio files the new dataset does not list", n_stale)

    for rel, lines in _metadata(the_plan).items():
        _write_text_atomic(out / rel, lines)
    summary = SynthSummary(
        size=size,
        seed=the_plan.seed,
        esc50_dir=out / ESC50,
        tut_dev_dir=out / TUT_DEV,
        tut_eval_dir=out / TUT_EVAL,
        n_esc50=len(the_plan.esc50),
        n_tut_dev=len(the_plan.tut_dev),
        n_tut_eval=len(the_plan.tut_eval),
        n_stale_removed=n_stale,
        elapsed_s=time.perf_counter() - t0,
    )
    logger.info(
        "synth: done in %.1f s: %d ESC-50 clips, %d TUT dev and %d TUT eval segments",
        summary.elapsed_s,
        summary.n_esc50,
        summary.n_tut_dev,
        summary.n_tut_eval,
    )
    return summary
