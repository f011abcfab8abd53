"""Event classes, one spectro-temporal pattern per ESC-50 target, and the ESC-50 clips made of
them (`esc_clip`); with the coloured noise and level helpers the scenes use too."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.fft

from raymtl.data.classes import ESC50_CLASSES
from raymtl.data.synth.planning import (
    DATASET_CODE,
    ESC50,
    ESC_FRAMES,
    SAMPLE_RATE_HZ,
    STREAM_FILE,
    STREAM_SOURCE,
    PlannedClip,
    seeded_rng,
)
from raymtl.errors import ConfigError

_PEAK_LIMIT = 0.89  # -1 dBFS: headroom for the PCM16 conversion


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
MAX_EVENT_S = 4.5
PITCH_JITTER_ST = 2.0  # per-source pitch variation, +- semitones


@dataclass(frozen=True)
class EventSpec:
    """The fixed pattern of one event class; each clip varies it (see `render_event`)."""

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


def render_event(
    spec: EventSpec, rng: np.random.Generator, pitch_st: float, max_s: float = MAX_EVENT_S
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
        x = np.fft.irfft(mag * noise_spectrum(rng, freqs.shape), n_fft)[:span]
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
# Coloured noise and levels (ESC backgrounds and scenes)
# ---------------------------------------------------------------------------------------------


def noise_spectrum(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
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


def shaped_noise(
    rng: np.random.Generator, n: int, channels: int, grid: np.ndarray, db: np.ndarray
) -> np.ndarray:
    """`channels` independent noises, (channels, n) float32, whose spectral envelope is `db`
    (given at octaves-from-1-kHz `grid`, nothing under 20 Hz)."""
    octs = _bin_octaves(n)
    mag = np.interp(octs, grid, 10.0 ** (db / 20.0)).astype(np.float32)  # smooth: interp is fine
    mag[np.isnan(octs)] = 0.0
    return np.fft.irfft(noise_spectrum(rng, (channels, len(octs))) * mag, n, axis=-1)


OCTAVE_GRID = np.arange(np.log2(20 / 1000), np.log2(SAMPLE_RATE_HZ / 2 / 1000) + 0.1, 1 / 24)


def limit(x: np.ndarray) -> np.ndarray:
    """Scale down (never clip) so that the peak stays at or below -1 dBFS."""
    peak = np.max(np.abs(x))
    return x * (_PEAK_LIMIT / peak) if peak > _PEAK_LIMIT else x


# ---------------------------------------------------------------------------------------------
# ESC-50 clips
# ---------------------------------------------------------------------------------------------


def esc_clip(clip: PlannedClip, seed: int, index: int) -> np.ndarray:
    """A 5 s mono clip of class `clip.target`: one event occurrence over faint pink noise."""
    pitch_st = seeded_rng(seed, STREAM_SOURCE, DATASET_CODE[ESC50], clip.src_file).uniform(
        -PITCH_JITTER_ST, PITCH_JITTER_ST
    )
    rng = seeded_rng(seed, STREAM_FILE, DATASET_CODE[ESC50], index)
    event = render_event(event_spec(clip.target), rng, pitch_st + rng.uniform(-0.3, 0.3))
    out = np.zeros(ESC_FRAMES, dtype=np.float32)
    onset = int(rng.integers(0, ESC_FRAMES - len(event) + 1))
    out[onset : onset + len(event)] = event * np.float32(10.0 ** (rng.uniform(-15.0, -3.0) / 20.0))

    # Faint, roughly pink background noise (slope varies per clip).
    slope_db_per_oct = -3.0 * rng.uniform(0.6, 1.4)
    noise = shaped_noise(rng, ESC_FRAMES, 1, OCTAVE_GRID, slope_db_per_oct * OCTAVE_GRID)[0]
    noise *= np.float32(10.0 ** (rng.uniform(-60.0, -54.0) / 20.0) / np.sqrt(np.mean(noise**2)))
    return limit(out + noise)
