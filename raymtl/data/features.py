"""Log-mel images, channel images and patches (paper §II-A, docs/method.md §1).

One `LogMel` per worker process: it builds the mel filter bank once, and the first librosa
STFT in a process pays seconds of lazy imports.
"""

from __future__ import annotations

import librosa
import numpy as np

from raymtl.config import FeatureConfig

# Channel images. ESC-50 is mono; a TUT clip gives left, right, their sum and difference,
# taken on the two log-mel images as the paper words it.
IMAGES = ("mono", "left", "right", "sum", "diff")
VARIANT_IMAGES = {
    "triple": ("left", "right", "sum"),
    "quadruple": ("left", "right", "sum", "diff"),
}
ESC_IMAGES = ("mono",)


class LogMel:
    """Waveform -> log-mel image (n_mels, frames) in dB, float32."""

    def __init__(self, cfg: FeatureConfig = FeatureConfig()):
        self.cfg = cfg
        self._librosa = librosa
        # Slaney mel scale and area normalisation: librosa's defaults.
        self.mel_basis = librosa.filters.mel(sr=cfg.sample_rate_hz, n_fft=cfg.n_fft, n_mels=cfg.n_mels)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        stft = self._librosa.stft(
            np.ascontiguousarray(y, dtype=np.float32),
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            window="hann",
            center=True,
            pad_mode="constant",
        )
        power = np.abs(stft) ** 2  # (1 + n_fft/2, frames)
        mel = self.mel_basis @ power  # (n_mels, frames)
        # top_db=None: no clipping relative to the clip's own maximum.
        db = self._librosa.power_to_db(mel, ref=cfg.db_ref, amin=cfg.db_amin, top_db=None)
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
