"""Acoustic scenes: a coloured, modulated binaural background plus events typical of the scene
(`SCENE_SPECS`), and the TUT 2017 segments made of them (`tut_segment`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from raymtl.data.classes import ESC50_CLASSES, TUT2017_SCENES
from raymtl.data.synth.events import (
    OCTAVE_GRID,
    PITCH_JITTER_ST,
    event_spec,
    limit,
    render_event,
    shaped_noise,
)
from raymtl.data.synth.planning import (
    DATASET_CODE,
    SAMPLE_RATE_HZ,
    STREAM_FILE,
    STREAM_SOURCE,
    TUT_FRAMES,
    PlannedSegment,
    seeded_rng,
)


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
        level_dbfs=-26,
        tilt_db_per_oct=-2.0,
        bumps=((400, 2.0, 8),),
        mod_hz=0.12,
        mod_depth=0.6,
        ild_db=0.0,
        itd_ms=0.0,
        coherence=0.1,
        events=("sea_waves", "wind", "crow", "laughing", "footsteps"),
        events_per_segment=(1, 3),
        event_snr_db=(4, 14),
    ),
    "bus": SceneSpec(
        level_dbfs=-24,
        tilt_db_per_oct=-6.0,
        bumps=((90, 1.0, 15), (700, 1.5, 4)),
        mod_hz=0.3,
        mod_depth=0.2,
        ild_db=1.5,
        itd_ms=0.2,
        coherence=0.6,
        events=("engine", "coughing", "sneezing", "car_horn", "laughing", "door_wood_knock"),
        events_per_segment=(1, 4),
        event_snr_db=(6, 16),
    ),
    "cafe/restaurant": SceneSpec(
        level_dbfs=-28,
        tilt_db_per_oct=-4.0,
        bumps=((300, 1.5, 6), (1500, 1.0, 8)),
        mod_hz=4.0,
        mod_depth=0.3,
        ild_db=0.0,
        itd_ms=0.1,
        coherence=0.3,
        events=(
            "laughing",
            "drinking_sipping",
            "pouring_water",
            "can_opening",
            "glass_breaking",
            "coughing",
            "clapping",
        ),
        events_per_segment=(2, 5),
        event_snr_db=(6, 18),
    ),
    "car": SceneSpec(
        level_dbfs=-22,
        tilt_db_per_oct=-9.0,
        bumps=((60, 1.0, 20),),
        mod_hz=0.05,
        mod_depth=0.1,
        ild_db=0.5,
        itd_ms=0.0,
        coherence=0.85,
        events=("engine", "car_horn", "siren", "rain", "breathing"),
        events_per_segment=(1, 3),
        event_snr_db=(4, 14),
    ),
    "city_center": SceneSpec(
        level_dbfs=-27,
        tilt_db_per_oct=-4.0,
        bumps=((150, 1.5, 8), (1000, 2.0, 5)),
        mod_hz=0.2,
        mod_depth=0.3,
        ild_db=-1.0,
        itd_ms=-0.3,
        coherence=0.25,
        events=("car_horn", "siren", "footsteps", "church_bells", "engine", "laughing", "helicopter"),
        events_per_segment=(2, 5),
        event_snr_db=(6, 18),
    ),
    "forest_path": SceneSpec(
        level_dbfs=-36,
        tilt_db_per_oct=-1.0,
        bumps=((3500, 1.5, 10),),
        mod_hz=0.15,
        mod_depth=0.4,
        ild_db=0.0,
        itd_ms=0.0,
        coherence=0.05,
        events=("chirping_birds", "crow", "insects", "wind", "footsteps", "frog", "crickets"),
        events_per_segment=(2, 5),
        event_snr_db=(8, 20),
    ),
    "grocery_store": SceneSpec(
        level_dbfs=-31,
        tilt_db_per_oct=-3.0,
        bumps=((250, 2.0, 6), (2500, 1.0, 5)),
        mod_hz=0.5,
        mod_depth=0.2,
        ild_db=1.0,
        itd_ms=0.3,
        coherence=0.4,
        events=("footsteps", "clock_alarm", "coughing", "can_opening", "crying_baby", "pouring_water"),
        events_per_segment=(1, 4),
        event_snr_db=(6, 16),
    ),
    "home": SceneSpec(
        level_dbfs=-41,
        tilt_db_per_oct=-7.0,
        bumps=((120, 1.0, 6), (2000, 1.5, -4)),
        mod_hz=0.0,
        mod_depth=0.0,
        ild_db=2.5,
        itd_ms=0.4,
        coherence=0.7,
        events=(
            "door_wood_knock",
            "door_wood_creaks",
            "clock_tick",
            "vacuum_cleaner",
            "washing_machine",
            "toilet_flush",
            "dog",
            "cat",
        ),
        events_per_segment=(1, 3),
        event_snr_db=(10, 24),
    ),
    "library": SceneSpec(
        level_dbfs=-43,
        tilt_db_per_oct=-5.0,
        bumps=((200, 1.0, 3),),
        mod_hz=0.0,
        mod_depth=0.0,
        ild_db=-2.0,
        itd_ms=-0.4,
        coherence=0.5,
        events=("footsteps", "keyboard_typing", "mouse_click", "coughing", "sneezing", "breathing"),
        events_per_segment=(0, 2),
        event_snr_db=(8, 20),
    ),
    "metro_station": SceneSpec(
        level_dbfs=-28,
        tilt_db_per_oct=-3.0,
        bumps=((180, 1.0, 10), (5000, 1.0, 6)),
        mod_hz=0.08,
        mod_depth=0.5,
        ild_db=0.0,
        itd_ms=0.5,
        coherence=0.2,
        events=("train", "footsteps", "clock_alarm", "coughing", "laughing", "siren"),
        events_per_segment=(1, 4),
        event_snr_db=(4, 14),
    ),
    "office": SceneSpec(
        level_dbfs=-40,
        tilt_db_per_oct=-6.0,
        bumps=((100, 0.7, 8), (1200, 1.0, 3)),
        mod_hz=0.0,
        mod_depth=0.0,
        ild_db=1.0,
        itd_ms=-0.2,
        coherence=0.55,
        events=("keyboard_typing", "mouse_click", "coughing", "door_wood_knock", "clock_tick", "laughing"),
        events_per_segment=(1, 4),
        event_snr_db=(8, 20),
    ),
    "park": SceneSpec(
        level_dbfs=-33,
        tilt_db_per_oct=-2.0,
        bumps=((2800, 1.5, 7), (300, 1.5, 3)),
        mod_hz=0.1,
        mod_depth=0.3,
        ild_db=-0.5,
        itd_ms=0.1,
        coherence=0.1,
        events=("chirping_birds", "dog", "crying_baby", "laughing", "footsteps", "crow"),
        events_per_segment=(1, 4),
        event_snr_db=(6, 18),
    ),
    "residential_area": SceneSpec(
        level_dbfs=-33,
        tilt_db_per_oct=-3.0,
        bumps=((120, 1.5, 6), (3000, 1.5, 4)),
        mod_hz=0.07,
        mod_depth=0.4,
        ild_db=0.5,
        itd_ms=0.2,
        coherence=0.15,
        events=("dog", "car_horn", "engine", "chirping_birds", "rooster", "hen", "footsteps"),
        events_per_segment=(1, 4),
        event_snr_db=(6, 18),
    ),
    "train": SceneSpec(
        level_dbfs=-24,
        tilt_db_per_oct=-5.0,
        bumps=((70, 1.0, 14), (400, 1.0, 6)),
        mod_hz=1.2,
        mod_depth=0.3,
        ild_db=-1.5,
        itd_ms=-0.3,
        coherence=0.7,
        events=("train", "coughing", "footsteps", "laughing", "snoring"),
        events_per_segment=(1, 3),
        event_snr_db=(4, 14),
    ),
    "tram": SceneSpec(
        level_dbfs=-25,
        tilt_db_per_oct=-4.0,
        bumps=((110, 1.0, 10), (900, 1.2, 7)),
        mod_hz=0.4,
        mod_depth=0.3,
        ild_db=2.0,
        itd_ms=0.5,
        coherence=0.5,
        events=("train", "church_bells", "footsteps", "coughing", "car_horn"),
        events_per_segment=(1, 4),
        event_snr_db=(4, 14),
    ),
}

# Typical event targets per scene, in TUT2017_SCENES order (a misspelt category fails here).
_SCENE_EVENTS: tuple[tuple[int, ...], ...] = tuple(
    tuple(ESC50_CLASSES.index(name) for name in SCENE_SPECS[scene].events) for scene in TUT2017_SCENES
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


def _slow(values: np.ndarray, n: int, hop: int = 441) -> np.ndarray:
    """A control signal given every `hop` samples, linearly interpolated to n samples."""
    v = np.asarray(values, dtype=np.float32)
    ramp = np.arange(hop, dtype=np.float32) / np.float32(hop)
    blocks = v[:-1, None] + (v[1:] - v[:-1])[:, None] * ramp  # (len(v) - 1, hop)
    return blocks.reshape(-1)[:n]


def _scene_background(spec: SceneSpec, cond: _Conditions, rng: np.random.Generator, n: int) -> np.ndarray:
    """Binaural coloured noise, (2, n) float32, shaped in the frequency domain, RMS at the level."""
    sr = SAMPLE_RATE_HZ
    grid = OCTAVE_GRID
    db = (cond.tilt_db_per_oct + rng.uniform(-0.3, 0.3)) * grid
    for (hz, width, _), shift, gain in zip(spec.bumps, cond.bump_shift_oct, cond.bump_gain_db):
        centre = np.log2(hz / 1000.0) + shift
        db += (gain + rng.uniform(-1.0, 1.0)) * np.exp(-0.5 * ((grid - centre) / width) ** 2)
    x, y = shaped_noise(rng, n, 2, grid, db)

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


def tut_segment(seg: PlannedSegment, dataset: str, seed: int, index: int) -> np.ndarray:
    """A 10 s binaural segment of scene `seg.scene`: background plus typical events, (n, 2)."""
    spec = SCENE_SPECS[seg.scene]
    code = DATASET_CODE[dataset]
    cond = _recording_conditions(spec, seeded_rng(seed, STREAM_SOURCE, code, seg.recording_number))
    rng = seeded_rng(seed, STREAM_FILE, code, index)
    out = _scene_background(spec, cond, rng, TUT_FRAMES)  # (2, n)
    bg_rms = float(np.sqrt(np.mean(np.square(out))))

    lo, hi = spec.events_per_segment
    for _ in range(int(rng.integers(lo, hi + 1))):
        target = int(rng.choice(_SCENE_EVENTS[seg.scene_index]))
        event = render_event(
            event_spec(target), rng, rng.uniform(-PITCH_JITTER_ST, PITCH_JITTER_ST), max_s=4.0
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
    return limit(out).T
