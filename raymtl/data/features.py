"""Log-mel images, channel images and patches (paper §II-A, docs/method.md §1).

One `LogMel` per worker process: it builds the mel filter bank once (librosa's, the reference).
The STFT and the dB conversion are numpy: librosa's own (`librosa.stft`, `power_to_db`) import
its spectrum module, which compiles numba kernels on a fresh install, 25-31 s in every process
that calls it first (twice in a fresh clone's demo). They equal librosa's to 1e-4 dB
(tests/data/test_features.py).
"""

from __future__ import annotations

import librosa
import numpy as np
import scipy.signal

from raymtl.config import FeatureConfig

# Channel images. ESC-50 is mono; a TUT clip gives left, right, their sum and difference,
# taken on the two log-mel images as the paper words it.
IMAGES = ("mono", "left", "right", "sum", "diff")
VARIANT_IMAGES = {
    "triple": ("left", "right", "sum"),
    "quadruple": ("left", "right", "sum", "diff"),
}
ESC_IMAGES = ("mono",)


FRAMES_PER_BLOCK = 512  # LogMel's STFT works on this many frames at a time (~8 MB in float64)


class LogMel:
    """Waveform -> log-mel image (n_mels, frames) in dB, float32."""

    def __init__(self, cfg: FeatureConfig = FeatureConfig()):
        self.cfg = cfg
        # Slaney mel scale and area normalisation: librosa's defaults.
        self.mel_basis = librosa.filters.mel(sr=cfg.sample_rate_hz, n_fft=cfg.n_fft, n_mels=cfg.n_mels)
        # The periodic Hann window librosa.stft takes (scipy's get_window, fftbins=True).
        self.window = scipy.signal.get_window("hann", cfg.n_fft, fftbins=True)  # float64: see below

    def __call__(self, y: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        # librosa.stft(center=True, pad_mode="constant"): frames centred on t * hop_length, the
        # signal padded with n_fft/2 zeros on both sides; 1 + len(y) // hop_length frames.
        y = np.pad(np.ascontiguousarray(y, dtype=np.float32), cfg.n_fft // 2)
        frames = np.lib.stride_tricks.sliding_window_view(y, cfg.n_fft)[:: cfg.hop_length]
        mel = np.empty((cfg.n_mels, len(frames)))
        # In blocks of frames, so a long recording (`raymtl predict`) needs no more memory than a
        # clip; in float64: a float32 FFT differs from librosa's by up to 1.7e-3 dB in quiet bins.
        for s in range(0, len(frames), FRAMES_PER_BLOCK):
            block = frames[s : s + FRAMES_PER_BLOCK] * self.window
            power = np.abs(np.fft.rfft(block, axis=1)) ** 2  # (frames, 1 + n_fft/2)
            mel[:, s : s + FRAMES_PER_BLOCK] = self.mel_basis @ power.T  # (n_mels, frames)
        # power_to_db with a fixed reference and top_db=None: no clipping relative to the clip's
        # own maximum.
        db = 10.0 * np.log10(np.maximum(cfg.db_amin, mel)) - 10.0 * np.log10(max(cfg.db_amin, cfg.db_ref))
        return db.astype(np.float32)


def channel_images(samples: np.ndarray, logmel: LogMel) -> dict[str, np.ndarray]:
    """(n, 1) mono -> {"mono"}; (n, 2) binaural -> {"left", "right", "sum", "diff"}."""
    if samples.ndim != 2 or samples.shape[1] not in (1, 2):
        raise ValueError(f"expected (n_samples, 1 or 2) audio, got shape {samples.shape}")
    if samples.shape[1] == 1:
        return {"mono": logmel(samples[:, 0])}
    left, right = logmel(samples[:, 0]), logmel(samples[:, 1])
    return {"left": left, "right": right, "sum": left + right, "diff": left - right}


def patches(image: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """(n_mels, frames) -> (n_patches, n_mels, patch_frames): 128 wide at a hop of 32."""
    n = cfg.n_patches(image.shape[1])
    if n == 0:
        return np.zeros((0, image.shape[0], cfg.patch_frames), dtype=np.float32)
    starts = np.arange(n) * cfg.patch_hop_frames
    return np.stack([image[:, s : s + cfg.patch_frames] for s in starts]).astype(np.float32, copy=False)
