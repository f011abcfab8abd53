"""Synthetic stand-ins for ESC-50 and TUT Acoustic Scenes 2017, in their published layouts.

The real datasets are not available offline, yet every stage of raymtl (featurize, the
divisions, mixup, training, the ensemble) must run end to end in tests and in the laptop demo.
`generate` writes three folders that the dataset loaders read exactly as they read the real
ones, same file names, metadata formats and audio formats:

``<out>/esc50`` (ESC-50)
    ``meta/esc50.csv`` with the header ``filename,fold,target,category,esc10,src_file,take``
    and rows such as ``1-100032-A-0.wav,1,0,dog,True,100032,A``; ``audio/<filename>``: mono,
    5.0 s, 44.1 kHz, PCM16 WAV (220500 frames). 50 classes, folds 1-5; a source file's takes
    (A, B, ...) share one fold, as in the real data.
``<out>/tut2017-dev`` (TUT Acoustic Scenes 2017, development set)
    ``meta.txt``: ``audio/<rec>_<start>_<end>.wav<TAB><scene><TAB><rec>``, no header; each
    source recording (``a001``) is cut into consecutive 10 s segments (``a001_0_10``,
    ``a001_10_20``, ...). ``evaluation_setup/fold{1..4}_{train,evaluate}.txt``
    (``audio/<file>.wav<TAB><scene>``) and ``fold{1..4}_test.txt`` (``audio/<file>.wav``): all
    segments of a recording lie in one fold; fold k's evaluate list is that fold, its train list
    every other development segment. ``audio/``: binaural stereo, 10.0 s, 44.1 kHz, PCM16 WAV
    (441000 frames). 15 scenes.
``<out>/tut2017-eval`` (TUT Acoustic Scenes 2017, evaluation set)
    ``meta.txt`` in the same three-column format, with its own source recordings.

`SIZES` sets the counts: ``tiny`` for tests (every class in every fold, featurizes in
seconds), ``demo`` for the laptop demo, ``full`` with the real datasets' counts (2000 / 4680 /
1620 files; about 12 GB).

What the signals are, and why:

- An *event class* (ESC-50 target k) is a spectro-temporal pattern fixed by k alone, the same
  for every seed: a sound family (harmonic stack, frequency sweep, noise band, inharmonic
  "metallic" partials, train of resonant clicks) at a class-specific frequency, plus a class
  temporal pattern (number, length and spacing of bursts, envelope shape, amplitude modulation).
  Each clip varies the pitch (a few semitones, shared by the takes of one source file), the
  burst timing, the onset and the level, over a little background noise. The classes are
  separable on 128-band log-mel images, but no two clips are alike.
- A *scene* (TUT label) is a background of coloured noise with a scene-specific spectral
  envelope, slow modulation and stereo image (inter-channel level difference, delay and
  coherence), plus a few events drawn from that scene's typical event classes, placed at random
  times, levels and stereo positions. Recording conditions (level, spectral tilt, resonances,
  stereo offsets) vary per source recording and a little per segment, so the folds, which keep
  a recording's segments together, matter as they do in the real data.

Because scenes are made of the same event classes that ESC-50 labels, knowing the events helps
to recognise the scenes: the premise of the paper's multitask learning.

Every file's audio comes from its own random generator, seeded from (seed, dataset, file
index), so output does not depend on generation order: the same seed gives byte-identical
files, another seed other audio. Files are written atomically and the metadata last, so a
dataset whose metadata exists is complete.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft
import soundfile as sf

from raymtl.data.classes import (
    ESC10_TARGETS,
    ESC50_CLASSES,
    ESC50_FOLDS,
    TUT2017_FOLDS,
    TUT2017_SCENES,
)
from raymtl.errors import ConfigError, OutputExistsError

logger = logging.getLogger(__name__)

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

_PEAK_LIMIT = 0.89  # -1 dBFS: headroom for the PCM16 conversion


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
_STREAM_FILE = 1
_STREAM_SOURCE = 2  # an ESC source file or a TUT source recording
_DATASET_CODE = {ESC50: 0, TUT_DEV: 1, TUT_EVAL: 2}


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"synthetic dataset seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _rng(seed: int, stream: int, *key: int) -> np.random.Generator:
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
    rng = _rng(seed, _STREAM_PLAN)

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
    return SynthPlan(
        size=size, seed=seed, esc50=tuple(clips), tut_dev=tuple(dev), tut_eval=tuple(ev)
    )


# ---------------------------------------------------------------------------------------------
# Event classes: one spectro-temporal pattern per ESC-50 target
# ---------------------------------------------------------------------------------------------

FAMILIES: tuple[str, ...] = ("harmonic", "sweep", "noise", "metallic", "impulsive")
# Class k is family k % 5 at frequency step k // 5 (0-9), log-spaced over the family's range:
# harmonic f0, sweep start, noise-band centre, metallic fundamental, click resonance.
_FAMILY_RANGE_HZ = {
    "harmonic": (110.0, 1400.0),
    "sweep": (450.0, 5000.0),
    "noise": (180.0, 11000.0),
    "metallic": (300.0, 4200.0),
    "impulsive": (350.0, 9000.0),
}
_CLASS_SALT = 0xE5C50  # class k's attributes come from default_rng([_CLASS_SALT, k]), seed-free
_MAX_EVENT_S = 4.5
_PITCH_JITTER_ST = 2.0  # per-source pitch variation, +- semitones


@dataclass(frozen=True)
class EventSpec:
    """The fixed pattern of one event class; each clip varies it (see `_render_event`)."""

    target: int
    family: str
    base_hz: float
    n_bursts: int
    burst_s: float
    gap_s: float
    envelope: str  # "percussive" | "swell" | "flat"
    am_hz: float  # amplitude modulation rate (0: none)
    am_depth: float
    harmonic_amps: tuple[float, ...] = ()  # harmonic and sweep: amplitude of partial h = 1, 2, ...
    vibrato: float = 0.0  # harmonic: relative frequency deviation at 5.5 Hz
    sweep_oct: float = 0.0  # sweep: octaves travelled in each burst (negative: downwards)
    bandwidth_oct: float = 0.0  # noise: standard deviation of the band, in octaves
    partial_ratios: tuple[float, ...] = ()  # metallic: partial frequencies / base_hz
    partial_decay_s: tuple[float, ...] = ()  # metallic: decay time constant of each partial
    click_rate_hz: float = 0.0  # impulsive: clicks per second inside a burst
    click_decay_s: float = 0.0  # impulsive: decay time constant of one click

    @property
    def duration_s(self) -> float:
        return self.n_bursts * self.burst_s + (self.n_bursts - 1) * self.gap_s


@functools.lru_cache(maxsize=None)
def event_spec(target: int) -> EventSpec:
    """The pattern of ESC-50 class `target`, derived from the index alone."""
    if not 0 <= target < len(ESC50_CLASSES):
        raise ConfigError(f"event class must be in 0..{len(ESC50_CLASSES) - 1}, got {target}")
    family = FAMILIES[target % len(FAMILIES)]
    step = target // len(FAMILIES)
    lo, hi = _FAMILY_RANGE_HZ[family]
    base_hz = lo * (hi / lo) ** (step / 9)
    rng = np.random.default_rng([_CLASS_SALT, target])

    n_bursts = int(rng.choice([1, 1, 2, 3, 4, 6]))
    if family in ("metallic", "impulsive"):
        envelope = "flat"  # strikes and clicks bring their own decay
    else:
        envelope = str(rng.choice(["percussive", "swell", "flat"]))
    if n_bursts == 1:
        burst_s = float(rng.uniform(0.5, 3.8))
        gap_s = 0.0
    else:
        burst_s = float(rng.uniform(0.1, min(1.0, 3.2 / n_bursts)))
        gap_s = float(rng.uniform(0.05, min(0.5, (3.8 - n_bursts * burst_s) / (n_bursts - 1))))
    if rng.random() < 0.35:
        am_hz, am_depth = float(rng.uniform(3.0, 16.0)), float(rng.uniform(0.4, 0.9))
    else:
        am_hz, am_depth = 0.0, 0.0

    extra: dict = {}
    if family == "harmonic":
        h = np.arange(1, int(rng.integers(3, 13)) + 1)
        amps = h ** -rng.uniform(0.4, 1.8)
        if rng.random() < 0.3:
            amps[1::2] *= 0.05  # nearly odd harmonics only (a hollow, clarinet-like tone)
        extra = dict(
            harmonic_amps=tuple(float(a) for a in amps),
            vibrato=float(rng.uniform(0.005, 0.03)) if rng.random() < 0.5 else 0.0,
        )
    elif family == "sweep":
        h = np.arange(1, int(rng.integers(1, 4)) + 1)
        direction = 1.0 if step % 2 == 0 else -1.0
        extra = dict(
            harmonic_amps=tuple(float(a) for a in h**-1.5),
            sweep_oct=direction * float(rng.uniform(0.4, 1.6)),
        )
    elif family == "noise":
        extra = dict(bandwidth_oct=float(rng.uniform(0.2, 1.0)))
    elif family == "metallic":
        n_partials = int(rng.integers(2, 5))
        ratios = np.sort(rng.uniform(1.3, 5.5, n_partials))
        decays = np.sort(rng.uniform(0.08, 1.2, n_partials + 1))[::-1]  # higher decays faster
        extra = dict(
            partial_ratios=(1.0, *(float(r) for r in ratios)),
            partial_decay_s=tuple(float(d) for d in decays),
        )
    elif family == "impulsive":
        extra = dict(
            click_rate_hz=float(rng.uniform(3.0, 20.0)),
            click_decay_s=float(rng.uniform(0.002, 0.025)),
        )
    else:  # pragma: no cover - FAMILIES and this chain are edited together
        raise AssertionError(family)
    return EventSpec(
        target=target,
        family=family,
        base_hz=float(base_hz),
        n_bursts=n_bursts,
        burst_s=burst_s,
        gap_s=gap_s,
        envelope=envelope,
        am_hz=am_hz,
        am_depth=am_depth,
        **extra,
    )


def _wavetable(amps: np.ndarray, phase_cycles: np.ndarray) -> np.ndarray:
    """A periodic waveform with harmonic amplitudes `amps`, read at `phase_cycles` (cycles).

    One table lookup per sample, however many harmonics: cheaper than a sum of sines.
    """
    size = 4096
    x = np.arange(size + 1) / size
    h = np.arange(1, len(amps) + 1)[:, None]
    table = (amps[:, None] * np.sin(2 * np.pi * h * x)).sum(axis=0).astype(np.float32)
    pos = (phase_cycles % 1.0) * size
    i0 = pos.astype(np.int32)
    frac = (pos - i0).astype(np.float32)
    return table[i0] + frac * (table[i0 + 1] - table[i0])


def _band_limited(amps: tuple[float, ...], max_hz: float) -> np.ndarray:
    """The harmonic amplitudes whose partials stay below 0.4 x the sample rate (no aliasing)."""
    n = max(1, min(len(amps), int(0.4 * SAMPLE_RATE_HZ // max_hz)))
    return np.asarray(amps[:n])


def _render_event(
    spec: EventSpec, rng: np.random.Generator, pitch_st: float, max_s: float = _MAX_EVENT_S
) -> np.ndarray:
    """One occurrence of an event class: mono float32, peak 1, as long as its bursts (<= max_s).

    Varies per call: burst count (+-1 sometimes), burst and gap lengths, phases, harmonic
    balance, band width, the AM rate, the click timing; `pitch_st` shifts every frequency.
    """
    sr = SAMPLE_RATE_HZ
    f0 = spec.base_hz * 2.0 ** (pitch_st / 12.0)
    n_bursts = spec.n_bursts
    if n_bursts > 1:
        n_bursts = max(1, n_bursts + int(rng.choice([-1, 0, 0, 0, 1])))
    burst_s = spec.burst_s * rng.uniform(0.85, 1.15)
    gap_s = spec.gap_s * rng.uniform(0.75, 1.25)
    total_s = n_bursts * burst_s + (n_bursts - 1) * gap_s
    if total_s > max_s:
        burst_s, gap_s = burst_s * max_s / total_s, gap_s * max_s / total_s
    burst = max(64, int(burst_s * sr))
    period = burst + int(gap_s * sr)
    starts = np.arange(n_bursts) * period
    span = int(starts[-1]) + burst

    u1 = np.arange(burst, dtype=np.float32) / np.float32(burst)  # fraction of a burst elapsed

    def tile(one_burst: np.ndarray, gap_value: float = 0.0) -> np.ndarray:
        """(span,) float32: `one_burst` in every burst, `gap_value` between them."""
        out = np.full(span, gap_value, dtype=np.float32)
        for s in starts:
            out[s : s + burst] = one_burst
        return out

    if spec.family == "harmonic":
        t = np.arange(span, dtype=np.float32) / np.float32(sr)
        vib = 1.0 + spec.vibrato * np.sin(np.float32(2 * np.pi * 5.5) * t + rng.uniform(0, 6.28))
        phase = np.cumsum(vib, dtype=np.float64) * (f0 / sr) + rng.uniform()
        amps = _band_limited(spec.harmonic_amps, f0 * (1 + spec.vibrato))
        x = _wavetable(amps * rng.uniform(0.8, 1.25, len(amps)), phase)
    elif spec.family == "sweep":
        inst = tile(np.exp2(np.float32(spec.sweep_oct) * u1), 1.0)  # relative to f0
        phase = np.cumsum(inst, dtype=np.float64) * (f0 / sr) + rng.uniform()
        top_hz = f0 * 2.0 ** max(0.0, spec.sweep_oct)
        x = _wavetable(_band_limited(spec.harmonic_amps, top_hz), phase)
    elif spec.family == "noise":
        n_fft = scipy.fft.next_fast_len(span, real=True)
        freqs = np.fft.rfftfreq(n_fft, 1 / sr).astype(np.float32)
        width = np.float32(spec.bandwidth_oct * rng.uniform(0.85, 1.15))
        octs = np.log2(np.maximum(freqs, np.float32(1.0)) / np.float32(f0)) / width
        mag = np.exp(np.float32(-0.5) * octs**2)
        x = np.fft.irfft(mag * _noise_spectrum(rng, freqs.shape), n_fft)[:span]
    elif spec.family == "metallic":
        since = np.arange(burst, dtype=np.float32) / np.float32(sr)  # time since the strike
        cycles = np.arange(span) * (f0 / sr)  # float64: phases stay exact over seconds
        x = np.zeros(span, dtype=np.float32)
        sine = np.ones(1)
        for r, d in zip(spec.partial_ratios, spec.partial_decay_s):
            if f0 * r < 0.45 * sr:
                decay = tile(np.exp(-since / np.float32(d * rng.uniform(0.8, 1.25))))
                x += _wavetable(sine, cycles * r + rng.uniform()) * decay
    elif spec.family == "impulsive":
        x = np.zeros(span, dtype=np.float32)
        decay = spec.click_decay_s
        k_t = np.arange(int(5 * decay * sr)) / sr
        kernel = np.exp(-k_t / decay) * np.sin(2 * np.pi * min(f0, 0.45 * sr) * k_t)
        kernel += 0.3 * rng.standard_normal(len(k_t)) * np.exp(-k_t / 0.001)  # the click itself
        step = sr / spec.click_rate_hz
        for s in starts:
            clicks = s + np.arange(0.0, burst, step) + rng.uniform(-0.2, 0.2) * step
            for c, a in zip(clicks.astype(np.int64), rng.uniform(0.5, 1.0, len(clicks))):
                if s <= c < span:
                    n = min(len(kernel), span - c)
                    x[c : c + n] += a * kernel[:n]
    else:  # pragma: no cover - FAMILIES and this chain are edited together
        raise AssertionError(spec.family)

    fade = np.float32(0.01 * sr / burst)  # 10 ms fades, as a fraction of the burst
    if spec.envelope == "percussive":
        env1 = (1.0 - np.exp(-u1 / (0.5 * fade))) * np.exp(np.float32(-4.0) * u1)
    elif spec.envelope == "swell":
        env1 = np.sin(np.float32(np.pi) * u1) ** 2
    else:
        env1 = np.minimum(1.0, np.minimum(u1, 1.0 - u1) / fade)
    env = tile(env1)
    if spec.am_hz > 0:
        t = np.arange(span, dtype=np.float32) / np.float32(sr)
        w = np.float32(2 * np.pi * spec.am_hz * rng.uniform(0.9, 1.1))
        am = np.sin(w * t + np.float32(rng.uniform(0, 2 * np.pi)))
        env *= 1.0 - np.float32(spec.am_depth) * (0.5 + 0.5 * am)
    x = (x * env).astype(np.float32)
    peak = np.max(np.abs(x))
    return x / peak if peak > 0 else x


# ---------------------------------------------------------------------------------------------
# Scenes: a coloured, modulated binaural background plus typical events
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneSpec:
    """The background and the typical events of one acoustic scene."""

    level_dbfs: float  # background RMS
    tilt_db_per_oct: float  # spectral slope around 1 kHz
    bumps: tuple[tuple[float, float, float], ...]  # resonances: (centre Hz, width oct, gain dB)
    mod_hz: float  # slow amplitude modulation of the background (waves, traffic, rail joints)
    mod_depth: float
    ild_db: float  # left level minus right level
    itd_ms: float  # right channel delayed by this much (negative: the left one)
    coherence: float  # inter-channel correlation of the background, 0 (diffuse) to 1
    events: tuple[str, ...]  # typical ESC-50 categories
    events_per_segment: tuple[int, int]  # inclusive range
    event_snr_db: tuple[float, float]  # event peak over background RMS


SCENE_SPECS: dict[str, SceneSpec] = {
    "beach": SceneSpec(
        -26, -2.0, ((400, 2.0, 8),), 0.12, 0.6, 0.0, 0.0, 0.1,
        ("sea_waves", "wind", "crow", "laughing", "footsteps"), (1, 3), (4, 14),
    ),
    "bus": SceneSpec(
        -24, -6.0, ((90, 1.0, 15), (700, 1.5, 4)), 0.3, 0.2, 1.5, 0.2, 0.6,
        ("engine", "coughing", "sneezing", "car_horn", "laughing", "door_wood_knock"), (1, 4),
        (6, 16),
    ),
    "cafe/restaurant": SceneSpec(
        -28, -4.0, ((300, 1.5, 6), (1500, 1.0, 8)), 4.0, 0.3, 0.0, 0.1, 0.3,
        ("laughing", "drinking_sipping", "pouring_water", "can_opening", "glass_breaking",
         "coughing", "clapping"), (2, 5), (6, 18),
    ),
    "car": SceneSpec(
        -22, -9.0, ((60, 1.0, 20),), 0.05, 0.1, 0.5, 0.0, 0.85,
        ("engine", "car_horn", "siren", "rain", "breathing"), (1, 3), (4, 14),
    ),
    "city_center": SceneSpec(
        -27, -4.0, ((150, 1.5, 8), (1000, 2.0, 5)), 0.2, 0.3, -1.0, -0.3, 0.25,
        ("car_horn", "siren", "footsteps", "church_bells", "engine", "laughing", "helicopter"),
        (2, 5), (6, 18),
    ),
    "forest_path": SceneSpec(
        -36, -1.0, ((3500, 1.5, 10),), 0.15, 0.4, 0.0, 0.0, 0.05,
        ("chirping_birds", "crow", "insects", "wind", "footsteps", "frog", "crickets"), (2, 5),
        (8, 20),
    ),
    "grocery_store": SceneSpec(
        -31, -3.0, ((250, 2.0, 6), (2500, 1.0, 5)), 0.5, 0.2, 1.0, 0.3, 0.4,
        ("footsteps", "clock_alarm", "coughing", "can_opening", "crying_baby", "pouring_water"),
        (1, 4), (6, 16),
    ),
    "home": SceneSpec(
        -41, -7.0, ((120, 1.0, 6), (2000, 1.5, -4)), 0.0, 0.0, 2.5, 0.4, 0.7,
        ("door_wood_knock", "door_wood_creaks", "clock_tick", "vacuum_cleaner",
         "washing_machine", "toilet_flush", "dog", "cat"), (1, 3), (10, 24),
    ),
    "library": SceneSpec(
        -43, -5.0, ((200, 1.0, 3),), 0.0, 0.0, -2.0, -0.4, 0.5,
        ("footsteps", "keyboard_typing", "mouse_click", "coughing", "sneezing", "breathing"),
        (0, 2), (8, 20),
    ),
    "metro_station": SceneSpec(
        -28, -3.0, ((180, 1.0, 10), (5000, 1.0, 6)), 0.08, 0.5, 0.0, 0.5, 0.2,
        ("train", "footsteps", "clock_alarm", "coughing", "laughing", "siren"), (1, 4), (4, 14),
    ),
    "office": SceneSpec(
        -40, -6.0, ((100, 0.7, 8), (1200, 1.0, 3)), 0.0, 0.0, 1.0, -0.2, 0.55,
        ("keyboard_typing", "mouse_click", "coughing", "door_wood_knock", "clock_tick",
         "laughing"), (1, 4), (8, 20),
    ),
    "park": SceneSpec(
        -33, -2.0, ((2800, 1.5, 7), (300, 1.5, 3)), 0.1, 0.3, -0.5, 0.1, 0.1,
        ("chirping_birds", "dog", "crying_baby", "laughing", "footsteps", "crow"), (1, 4),
        (6, 18),
    ),
    "residential_area": SceneSpec(
        -33, -3.0, ((120, 1.5, 6), (3000, 1.5, 4)), 0.07, 0.4, 0.5, 0.2, 0.15,
        ("dog", "car_horn", "engine", "chirping_birds", "rooster", "hen", "footsteps"), (1, 4),
        (6, 18),
    ),
    "train": SceneSpec(
        -24, -5.0, ((70, 1.0, 14), (400, 1.0, 6)), 1.2, 0.3, -1.5, -0.3, 0.7,
        ("train", "coughing", "footsteps", "laughing", "snoring"), (1, 3), (4, 14),
    ),
    "tram": SceneSpec(
        -25, -4.0, ((110, 1.0, 10), (900, 1.2, 7)), 0.4, 0.3, 2.0, 0.5, 0.5,
        ("train", "church_bells", "footsteps", "coughing", "car_horn"), (1, 4), (4, 14),
    ),
}  # fmt: skip

# Typical event targets per scene, in TUT2017_SCENES order (a misspelt category fails here).
_SCENE_EVENTS: tuple[tuple[int, ...], ...] = tuple(
    tuple(ESC50_CLASSES.index(name) for name in SCENE_SPECS[scene].events)
    for scene in TUT2017_SCENES
)


@dataclass(frozen=True)
class _Conditions:
    """One source recording's conditions (microphone placement, gain, room): shared by its
    segments, so segments of one recording resemble each other more than other recordings."""

    level_db: float
    tilt_db_per_oct: float
    bump_shift_oct: tuple[float, ...]
    bump_gain_db: tuple[float, ...]
    ild_db: float
    itd_ms: float
    coherence: float


def _recording_conditions(spec: SceneSpec, rng: np.random.Generator) -> _Conditions:
    n = len(spec.bumps)
    return _Conditions(
        level_db=spec.level_dbfs + rng.uniform(-4.0, 4.0),
        tilt_db_per_oct=spec.tilt_db_per_oct + rng.uniform(-0.8, 0.8),
        bump_shift_oct=tuple(rng.uniform(-0.2, 0.2, n)),
        bump_gain_db=tuple(g + rng.uniform(-2.5, 2.5) for _, _, g in spec.bumps),
        ild_db=spec.ild_db + rng.uniform(-0.7, 0.7),
        itd_ms=spec.itd_ms + rng.uniform(-0.1, 0.1),
        coherence=float(np.clip(spec.coherence + rng.uniform(-0.1, 0.1), 0.0, 0.95)),
    )


def _noise_spectrum(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """White noise as a complex64 spectrum. Uniform real and imaginary parts are 3x cheaper to
    draw than Gaussian ones, and the inverse FFT sums so many of them that its output is
    Gaussian all the same."""
    parts = rng.random((2, *shape), dtype=np.float32) - np.float32(0.5)
    return parts[0] + 1j * parts[1]


@functools.lru_cache(maxsize=4)
def _bin_octaves(n: int) -> np.ndarray:
    """Octaves from 1 kHz of the rfft bins of an n-sample signal (bins under 20 Hz: NaN)."""
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE_HZ)
    octs = np.log2(np.maximum(freqs, 1.0) / 1000.0).astype(np.float32)
    octs[freqs < 20.0] = np.nan
    octs.flags.writeable = False
    return octs


def _shaped(
    rng: np.random.Generator, n: int, channels: int, grid: np.ndarray, db: np.ndarray
) -> np.ndarray:
    """`channels` independent noises, (channels, n) float32, whose spectral envelope is `db`
    (given at octaves-from-1-kHz `grid`, nothing under 20 Hz)."""
    octs = _bin_octaves(n)
    mag = np.interp(octs, grid, 10.0 ** (db / 20.0)).astype(np.float32)  # smooth: interp is fine
    mag[np.isnan(octs)] = 0.0
    return np.fft.irfft(_noise_spectrum(rng, (channels, len(octs))) * mag, n, axis=-1)


def _slow(values: np.ndarray, n: int, hop: int = 441) -> np.ndarray:
    """A control signal given every `hop` samples, linearly interpolated to n samples."""
    v = np.asarray(values, dtype=np.float32)
    ramp = np.arange(hop, dtype=np.float32) / np.float32(hop)
    blocks = v[:-1, None] + (v[1:] - v[:-1])[:, None] * ramp  # (len(v) - 1, hop)
    return blocks.reshape(-1)[:n]


_OCTAVE_GRID = np.arange(np.log2(20 / 1000), np.log2(SAMPLE_RATE_HZ / 2 / 1000) + 0.1, 1 / 24)


def _scene_background(
    spec: SceneSpec, cond: _Conditions, rng: np.random.Generator, n: int
) -> np.ndarray:
    """Binaural coloured noise, (2, n) float32, shaped in the frequency domain, RMS at the level."""
    sr = SAMPLE_RATE_HZ
    grid = _OCTAVE_GRID
    db = (cond.tilt_db_per_oct + rng.uniform(-0.3, 0.3)) * grid
    for (hz, width, _), shift, gain in zip(spec.bumps, cond.bump_shift_oct, cond.bump_gain_db):
        centre = np.log2(hz / 1000.0) + shift
        db += (gain + rng.uniform(-1.0, 1.0)) * np.exp(-0.5 * ((grid - centre) / width) ** 2)
    x, y = _shaped(rng, n, 2, grid, db)

    # Two independent noises mixed to the wanted inter-channel coherence c:
    # L = aX + bY, R = aX - bY with a^2 - b^2 = c and a^2 + b^2 = 1; then the level difference,
    # then the delay as a whole-sample shift (circular: the inverse FFT's output is periodic).
    a, b = math.sqrt((1 + cond.coherence) / 2), math.sqrt((1 - cond.coherence) / 2)
    g = 10.0 ** (cond.ild_db / 40.0)
    ax, by = np.float32(a) * x, np.float32(b) * y
    out = np.stack([np.float32(g) * (ax + by), np.roll(ax - by, round(cond.itd_ms * sr / 1000))])
    out[1] *= np.float32(1 / g)

    if spec.mod_depth > 0:
        hop = 441  # 100 Hz control rate
        t = np.arange(n // hop + 2) * (hop / sr)
        mod = np.sin(2 * np.pi * spec.mod_hz * rng.uniform(0.8, 1.25) * t + rng.uniform(0, 6.28))
        out *= _slow(1.0 - spec.mod_depth * (0.5 + 0.5 * mod), n, hop)
    level_db = cond.level_db + rng.uniform(-1.0, 1.0)
    return out * np.float32(10.0 ** (level_db / 20.0) / np.sqrt(np.mean(np.square(out))))


def _limit(x: np.ndarray) -> np.ndarray:
    """Scale down (never clip) so that the peak stays at or below -1 dBFS."""
    peak = np.max(np.abs(x))
    return x * (_PEAK_LIMIT / peak) if peak > _PEAK_LIMIT else x


def _esc_clip(clip: PlannedClip, seed: int, index: int) -> np.ndarray:
    """A 5 s mono clip of class `clip.target`: one event occurrence over faint pink noise."""
    pitch_st = _rng(seed, _STREAM_SOURCE, _DATASET_CODE[ESC50], clip.src_file).uniform(
        -_PITCH_JITTER_ST, _PITCH_JITTER_ST
    )
    rng = _rng(seed, _STREAM_FILE, _DATASET_CODE[ESC50], index)
    event = _render_event(event_spec(clip.target), rng, pitch_st + rng.uniform(-0.3, 0.3))
    out = np.zeros(ESC_FRAMES, dtype=np.float32)
    onset = int(rng.integers(0, ESC_FRAMES - len(event) + 1))
    out[onset : onset + len(event)] = event * np.float32(10.0 ** (rng.uniform(-15.0, -3.0) / 20.0))

    # Faint, roughly pink background noise (slope varies per clip).
    slope_db_per_oct = -3.0 * rng.uniform(0.6, 1.4)
    noise = _shaped(rng, ESC_FRAMES, 1, _OCTAVE_GRID, slope_db_per_oct * _OCTAVE_GRID)[0]
    noise *= np.float32(10.0 ** (rng.uniform(-60.0, -54.0) / 20.0) / np.sqrt(np.mean(noise**2)))
    return _limit(out + noise)


def _tut_segment(seg: PlannedSegment, dataset: str, seed: int, index: int) -> np.ndarray:
    """A 10 s binaural segment of scene `seg.scene`: background plus typical events, (n, 2)."""
    spec = SCENE_SPECS[seg.scene]
    code = _DATASET_CODE[dataset]
    cond = _recording_conditions(spec, _rng(seed, _STREAM_SOURCE, code, seg.recording_number))
    rng = _rng(seed, _STREAM_FILE, code, index)
    out = _scene_background(spec, cond, rng, TUT_FRAMES)  # (2, n)
    bg_rms = float(np.sqrt(np.mean(np.square(out))))

    lo, hi = spec.events_per_segment
    for _ in range(int(rng.integers(lo, hi + 1))):
        target = int(rng.choice(_SCENE_EVENTS[seg.scene_index]))
        event = _render_event(
            event_spec(target), rng, rng.uniform(-_PITCH_JITTER_ST, _PITCH_JITTER_ST), max_s=4.0
        )
        event *= np.float32(bg_rms * 10.0 ** (rng.uniform(*spec.event_snr_db) / 20.0))
        # A stereo position p in [-1, 1] (left to right): level difference up to 8 dB and the far
        # ear's delay up to 0.6 ms.
        p = rng.uniform(-1.0, 1.0)
        gains = (np.float32(10.0 ** (-4.0 * p / 20.0)), np.float32(10.0 ** (4.0 * p / 20.0)))
        lag = int(round(abs(p) * 0.0006 * SAMPLE_RATE_HZ))
        lags = (lag, 0) if p > 0 else (0, lag)
        onset = int(rng.integers(0, TUT_FRAMES - len(event) - lag + 1))
        for ch in (0, 1):
            start = onset + lags[ch]
            out[ch, start : start + len(event)] += gains[ch] * event
    return _limit(out).T


def render(the_plan: SynthPlan, dataset: str, index: int) -> np.ndarray:
    """The audio of file `index` of `dataset` in `the_plan`, float32 within [-0.89, 0.89].

    ESC-50 clips are (220500,), TUT segments (441000, 2). Depends only on the plan's seed, the
    dataset and the index, never on which files were made before.
    """
    record = the_plan.files(dataset)[index]
    if dataset == ESC50:
        return _esc_clip(record, the_plan.seed, index)
    return _tut_segment(record, dataset, the_plan.seed, index)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


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


def _partial_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def _to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float in [-1, 1) to int16 at full scale 32768 (how soundfile and librosa read PCM16
    back), rounded to nearest. 3x cheaper than libsndfile's own float conversion."""
    scaled = np.rint(np.asarray(audio, dtype=np.float32) * np.float32(32768.0))
    return np.clip(scaled, -32768, 32767).astype(np.int16, order="C")


def _write_wav_atomic(path: Path, audio: np.ndarray) -> None:
    tmp = _partial_name(path)
    sf.write(tmp, _to_pcm16(audio), SAMPLE_RATE_HZ, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def _write_text_atomic(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial_name(path)
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


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
        files[f"{setup}_train.txt"] = [
            f"{s.filename}\t{s.scene}" for s in the_plan.tut_dev if s.fold != fold
        ]
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


def generate(
    out: str | Path, size: str = "tiny", seed: int = 0, *, overwrite: bool = False
) -> SynthSummary:
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
            if path.is_file() and (stale_wav or path.name.endswith(".partial")):
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
