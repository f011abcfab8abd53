"""Reading audio files for featurization, with the checks that turn bad files into rejects.

soundfile (libsndfile) reads WAV, FLAC and Ogg. libsndfile silently shortens a truncated WAV to
the bytes present, so a WAV's declared length is read from its RIFF `data` chunk and compared.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from raymtl.errors import AudioError


@dataclass
class LoadedAudio:
    samples: np.ndarray  # (n_samples, n_channels) float32 in [-1, 1]
    sample_rate_hz: int
    notes: list[str] = field(default_factory=list)  # what was changed (resampled, padded, cut)


def _wav_declared_frames(path: Path, block_align: int) -> int | None:
    """Frames the RIFF header promises (size of the `data` chunk), or None if not a plain RIFF."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                # 0 and 0xFFFFFFFF mark a stream written without a final length.
                return None if size in (0, 0xFFFFFFFF) else size // block_align
            f.seek(size + (size & 1), os.SEEK_CUR)


def read_audio(path: str | Path, display_name: str | None = None) -> tuple[np.ndarray, int]:
    """(samples (n, channels) float32, sample rate); `AudioError` with the reason otherwise."""
    path = Path(path)
    name = display_name or str(path)
    if not path.is_file():
        raise AudioError(name, "missing audio file")
    if path.stat().st_size == 0:
        raise AudioError(name, "empty file (0 bytes)")
    try:
        info = sf.info(str(path))
        samples, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioError(name, f"corrupt or unreadable audio ({e})") from None
    if samples.shape[0] == 0:
        raise AudioError(name, "no audio frames")
    declared = info.frames
    if info.format == "WAV":
        bytes_per_sample = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8, "PCM_U8": 1}.get(
            info.subtype
        )
        if bytes_per_sample:
            declared = _wav_declared_frames(path, bytes_per_sample * info.channels) or declared
    if samples.shape[0] < declared:
        raise AudioError(
            name,
            f"truncated: the header says {declared} frames ({declared / sr:.2f} s), "
            f"the data ends after {samples.shape[0]} ({samples.shape[0] / sr:.2f} s)",
        )
    if not np.isfinite(samples).all():
        raise AudioError(name, "corrupt audio (non-finite samples)")
    return samples, int(sr)


def resample(samples: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """(n, channels) float32 at `sr` -> the same at `target_sr` (librosa's default resampler).
    Shared by featurization and `raymtl predict`, so both resample alike."""

    resampled = librosa.resample(samples.T, orig_sr=sr, target_sr=target_sr).T
    return np.ascontiguousarray(resampled, dtype=np.float32)


def load_clip(
    path: str | Path,
    *,
    channels: int,
    sample_rate_hz: int,
    duration_s: float,
    exact_duration: bool,
    tolerance_s: float = 0.05,
    display_name: str | None = None,
) -> LoadedAudio:
    """Read, check the channel count, resample if needed and fix the length.

    `exact_duration=True` (TUT): a clip whose length differs from `duration_s` by more than
    `tolerance_s` is rejected. `False` (ESC-50): it is zero-padded or cut, and noted.
    """
    name = display_name or str(path)
    samples, sr = read_audio(path, name)
    notes: list[str] = []
    if samples.shape[1] != channels:
        want = "mono" if channels == 1 else f"{channels} channels"
        raise AudioError(name, f"wrong channel count: {samples.shape[1]}, expected {want}")
    if sr != sample_rate_hz:
        samples = resample(samples, sr, sample_rate_hz)
        notes.append(f"resampled from {sr} Hz")
    target = int(round(duration_s * sample_rate_hz))
    n = samples.shape[0]
    length_s = n / sample_rate_hz
    if exact_duration and abs(length_s - duration_s) > tolerance_s:
        raise AudioError(name, f"duration {length_s:.2f} s, expected {duration_s:g} s")
    if n < target:
        samples = np.pad(samples, ((0, target - n), (0, 0)))
        if not exact_duration:
            notes.append(f"zero-padded from {length_s:.2f} s")
    elif n > target:
        samples = samples[:target]
        if not exact_duration:
            notes.append(f"cut from {length_s:.2f} s")
    return LoadedAudio(np.ascontiguousarray(samples), sample_rate_hz, notes)
