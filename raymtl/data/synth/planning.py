"""The plan of a synthetic dataset: the sizes, and every file it holds with its labels, fold
and name, without audio (`plan`). Also the dataset and file names of the published layouts, and
the seed streams every file's audio is drawn from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raymtl.data.classes import (
    ESC10_TARGETS,
    ESC50_CLASSES,
    ESC50_FOLDS,
    TUT2017_FOLDS,
    TUT2017_SCENES,
)
from raymtl.errors import ConfigError

SAMPLE_RATE_HZ = 44100
ESC_FRAMES = 220500  # 5.0 s
TUT_FRAMES = 441000  # 10.0 s
TUT_SEGMENT_S = 10

# Dataset names: the folder names under `out`, and the keys of `SynthPlan.files`.
ESC50 = "esc50"
TUT_DEV = "tut2017-dev"
TUT_EVAL = "tut2017-eval"
DATASETS: tuple[str, ...] = (ESC50, TUT_DEV, TUT_EVAL)

ESC50_CSV = "meta/esc50.csv"  # relative to the dataset folder
ESC50_CSV_HEADER = "filename,fold,target,category,esc10,src_file,take"
TUT_META = "meta.txt"
TUT_SETUP_DIR = "evaluation_setup"
AUDIO_DIR = "audio"


# ---------------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthSize:
    """How many files of each kind one size holds."""

    esc_clips_per_class_per_fold: int
    esc_takes_per_source: int  # clips cut from one source file (takes A, B, ...), same fold
    tut_dev_recordings_per_class_per_fold: int
    tut_dev_segments_per_recording: int
    tut_eval_recordings_per_class: int
    tut_eval_segments_per_recording: int

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"synth size: {name} must be a positive integer, got {value!r}")
        if self.esc_takes_per_source > 26:
            raise ConfigError("synth size: esc_takes_per_source must be at most 26 (takes A-Z)")
        if self.n_recordings > _MAX_RECORDINGS:
            raise ConfigError(
                f"synth size: {self.n_recordings} TUT source recordings, more than the "
                f"{_MAX_RECORDINGS} that recording ids (a letter and 3 digits) can name"
            )

    @property
    def n_esc50(self) -> int:
        return len(ESC50_CLASSES) * len(ESC50_FOLDS) * self.esc_clips_per_class_per_fold

    @property
    def tut_dev_segments_per_class_per_fold(self) -> int:
        return self.tut_dev_recordings_per_class_per_fold * self.tut_dev_segments_per_recording

    @property
    def n_tut_dev(self) -> int:
        return len(TUT2017_SCENES) * len(TUT2017_FOLDS) * self.tut_dev_segments_per_class_per_fold

    @property
    def tut_eval_segments_per_class(self) -> int:
        return self.tut_eval_recordings_per_class * self.tut_eval_segments_per_recording

    @property
    def n_tut_eval(self) -> int:
        return len(TUT2017_SCENES) * self.tut_eval_segments_per_class

    @property
    def n_recordings(self) -> int:
        per_class = (
            len(TUT2017_FOLDS) * self.tut_dev_recordings_per_class_per_fold
            + self.tut_eval_recordings_per_class
        )
        return len(TUT2017_SCENES) * per_class


_MAX_RECORDINGS = 26 * 999  # ids a001 ... z999

SIZES: dict[str, SynthSize] = {
    # Tests: every class in every fold once, one recording per (scene, fold): 250 / 60 / 30.
    "tiny": SynthSize(
        esc_clips_per_class_per_fold=1,
        esc_takes_per_source=1,
        tut_dev_recordings_per_class_per_fold=1,
        tut_dev_segments_per_recording=1,
        tut_eval_recordings_per_class=1,
        tut_eval_segments_per_recording=2,
    ),
    # Laptop demo: twice tiny's training data, same test set size: 500 / 120 / 30.
    "demo": SynthSize(
        esc_clips_per_class_per_fold=2,
        esc_takes_per_source=2,
        tut_dev_recordings_per_class_per_fold=1,
        tut_dev_segments_per_recording=2,
        tut_eval_recordings_per_class=1,
        tut_eval_segments_per_recording=2,
    ),
    # The real datasets' counts: ESC-50 2000 (8 per class per fold); TUT dev 4680 (78 per
    # class per fold, 3 recordings of 26 segments = 4 min 20 s each); TUT eval 1620 (108 per
    # class, 4 recordings of 27 segments). Real recordings are 3-5 min long.
    "full": SynthSize(
        esc_clips_per_class_per_fold=8,
        esc_takes_per_source=2,
        tut_dev_recordings_per_class_per_fold=3,
        tut_dev_segments_per_recording=26,
        tut_eval_recordings_per_class=4,
        tut_eval_segments_per_recording=27,
    ),
}


def get_size(size: str) -> SynthSize:
    """The `SIZES` entry named `size`; an unknown name is a `ConfigError` listing the valid ones."""
    try:
        return SIZES[size]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown synthetic dataset size {size!r}; valid sizes: {', '.join(SIZES)}"
        ) from None


# ---------------------------------------------------------------------------------------------
# The plan: every file with its labels, no audio
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedClip:
    """One ESC-50 clip, as its `meta/esc50.csv` row describes it."""

    filename: str  # "{fold}-{src_file}-{take}-{target}.wav"
    fold: int
    target: int
    category: str
    esc10: bool
    src_file: int
    take: str

    def csv_row(self) -> str:
        return (
            f"{self.filename},{self.fold},{self.target},{self.category},{self.esc10},"
            f"{self.src_file},{self.take}"
        )


@dataclass(frozen=True)
class PlannedSegment:
    """One TUT 10 s segment, as its `meta.txt` row describes it."""

    filename: str  # "audio/<recording>_<start_s>_<end_s>.wav", as in meta.txt
    scene: str
    scene_index: int
    recording: str  # "a001"
    recording_number: int  # the number the id encodes; seeds the recording conditions
    start_s: int
    end_s: int
    fold: int | None  # development fold 1-4; None in the evaluation set

    def meta_row(self) -> str:
        return f"{self.filename}\t{self.scene}\t{self.recording}"


@dataclass(frozen=True)
class SynthPlan:
    """Every file one `generate(size, seed)` writes, in metadata order; no audio."""

    size: str
    seed: int
    esc50: tuple[PlannedClip, ...]
    tut_dev: tuple[PlannedSegment, ...]
    tut_eval: tuple[PlannedSegment, ...]

    def files(self, dataset: str) -> tuple[PlannedClip, ...] | tuple[PlannedSegment, ...]:
        """The planned files of `dataset` (one of `DATASETS`)."""
        if dataset == ESC50:
            return self.esc50
        if dataset == TUT_DEV:
            return self.tut_dev
        if dataset == TUT_EVAL:
            return self.tut_eval
        raise ConfigError(f"unknown synthetic dataset {dataset!r}; valid: {', '.join(DATASETS)}")

    @property
    def n_files(self) -> int:
        return len(self.esc50) + len(self.tut_dev) + len(self.tut_eval)


# Seed streams: SeedSequence entropy is (seed, stream, dataset code, index).
_STREAM_PLAN = 0
STREAM_FILE = 1
STREAM_SOURCE = 2  # an ESC source file or a TUT source recording
DATASET_CODE = {ESC50: 0, TUT_DEV: 1, TUT_EVAL: 2}


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"synthetic dataset seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def seeded_rng(seed: int, stream: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, *key]))


def _recording_id(number: int) -> str:
    """1 -> "a001", 999 -> "a999", 1000 -> "b001": a letter and three digits, as TUT names them."""
    letter, digits = divmod(number - 1, 999)
    return f"{chr(ord('a') + letter)}{digits + 1:03d}"


def _segment_order(seg: PlannedSegment) -> tuple[int, str, int]:
    """meta.txt order: by scene, then recording, then time."""
    return seg.scene_index, seg.recording, seg.start_s


def plan(size: str, seed: int) -> SynthPlan:
    """List every file that `generate(out, size, seed)` writes, with its labels, fold and name.

    Cheap (no audio), so the counts of `full` can be checked without writing 8000 files. Names
    depend on the seed (ESC source file numbers, the order of TUT recording ids), labels and
    folds only on the size.
    """
    spec = get_size(size)
    seed = _check_seed(seed)
    rng = seeded_rng(seed, _STREAM_PLAN)

    # ESC-50: per (fold, class), sources of `esc_takes_per_source` takes; freesound-like ids.
    n_clips = spec.esc_clips_per_class_per_fold
    takes = [
        min(spec.esc_takes_per_source, n_clips - start)
        for start in range(0, n_clips, spec.esc_takes_per_source)
    ]
    n_sources = len(ESC50_FOLDS) * len(ESC50_CLASSES) * len(takes)
    src_ids = iter(int(i) for i in rng.choice(np.arange(1000, 290000), n_sources, replace=False))
    clips = []
    for fold in ESC50_FOLDS:
        for target, category in enumerate(ESC50_CLASSES):
            for n_takes in takes:
                src = next(src_ids)
                for t in range(n_takes):
                    take = chr(ord("A") + t)
                    clips.append(
                        PlannedClip(
                            filename=f"{fold}-{src}-{take}-{target}.wav",
                            fold=fold,
                            target=target,
                            category=category,
                            esc10=target in ESC10_TARGETS,
                            src_file=src,
                            take=take,
                        )
                    )
    clips.sort(key=lambda c: c.filename)  # the published csv is sorted by file name

    # TUT: recordings get ids in a random order, so an id says nothing about scene or fold.
    numbers = iter(int(n) + 1 for n in rng.permutation(spec.n_recordings))

    def segments(scene_index: int, n_segments: int, fold: int | None) -> list[PlannedSegment]:
        number = next(numbers)
        rec = _recording_id(number)
        return [
            PlannedSegment(
                filename=f"{AUDIO_DIR}/{rec}_{start}_{start + TUT_SEGMENT_S}.wav",
                scene=TUT2017_SCENES[scene_index],
                scene_index=scene_index,
                recording=rec,
                recording_number=number,
                start_s=start,
                end_s=start + TUT_SEGMENT_S,
                fold=fold,
            )
            for start in range(0, n_segments * TUT_SEGMENT_S, TUT_SEGMENT_S)
        ]

    dev: list[PlannedSegment] = []
    for s in range(len(TUT2017_SCENES)):
        for fold in TUT2017_FOLDS:
            for _ in range(spec.tut_dev_recordings_per_class_per_fold):
                dev += segments(s, spec.tut_dev_segments_per_recording, fold)
    ev: list[PlannedSegment] = []
    for s in range(len(TUT2017_SCENES)):
        for _ in range(spec.tut_eval_recordings_per_class):
            ev += segments(s, spec.tut_eval_segments_per_recording, None)
    dev.sort(key=_segment_order)
    ev.sort(key=_segment_order)
    return SynthPlan(size=size, seed=seed, esc50=tuple(clips), tut_dev=tuple(dev), tut_eval=tuple(ev))
