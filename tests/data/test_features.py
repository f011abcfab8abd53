"""Log-mel against librosa, patch counts and shapes, channel images, and audio checks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from raymtl.config import FeatureConfig
from raymtl.data.audio import load_clip, read_audio
from raymtl.data.features import VARIANT_IMAGES, LogMel, channel_images, patches
from raymtl.errors import AudioError
from tests.conftest import REAL, require_shared
from tests.data.layout_builders import write_wav

CFG = FeatureConfig()


@pytest.fixture(scope="module")
def logmel():
    return LogMel(CFG)


def test_logmel_equals_librosa_with_the_papers_settings(logmel):
    import librosa

    y, sr = sf.read(str(require_shared(REAL / "esc10" / "wav_fold5" / "5-151085-A-20.wav")), dtype="float32")
    ours = logmel(y)
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=2048, hop_length=1024, win_length=2048, window="hann", n_mels=128, power=2.0
    )
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    assert ours.shape == (128, 216) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)


# 30 s: 2,584 frames, several of LogMel's blocks.
@pytest.mark.parametrize("n", [44100 * 5, 44100 * 10, 44100 * 10 + 37, 1023, 1024, 44100 * 30])
def test_logmels_stft_frames_the_signal_as_librosa_does(logmel, n):
    import librosa

    y = (0.1 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    mel = librosa.feature.melspectrogram(
        y=y, sr=44100, n_fft=2048, hop_length=1024, window="hann", n_mels=128
    )
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    ours = logmel(y)
    assert ours.shape == ref.shape == (128, 1 + n // 1024)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)


def test_logmel_needs_no_numba_compiled_librosa_module():
    # librosa's spectrum module compiles numba kernels on a fresh install (25-31 s per process):
    # featurizing must not import it.
    code = (
        "import sys, numpy as np; from raymtl.data.features import LogMel; "
        "LogMel()(np.zeros(44100, np.float32)); print('librosa.core.spectrum' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_logmel_uses_a_fixed_reference_not_the_clip_maximum(logmel):
    rng = np.random.default_rng(0)
    y = (0.05 * rng.standard_normal(44100)).astype(np.float32)
    loud = np.concatenate([y, 0.9 * np.ones(44100, np.float32)])
    quiet = np.concatenate([y, np.zeros(44100, np.float32)])
    # The first second is identical, so its frames (away from the boundary) must be too.
    np.testing.assert_allclose(logmel(loud)[:, :40], logmel(quiet)[:, :40], atol=1e-4)
    assert logmel(quiet).min() < -80  # no top_db clipping at max - 80 dB


@pytest.mark.parametrize("seconds,frames,n_patches", [(10.0, 431, 10), (5.0, 216, 3)])
def test_frame_and_patch_counts(logmel, seconds, frames, n_patches):
    img = logmel(np.zeros(int(seconds * 44100), np.float32))
    assert img.shape == (128, frames) == (128, CFG.n_frames(seconds))
    p = patches(img, CFG)
    assert p.shape == (n_patches, 128, 128) and CFG.n_patches(frames) == n_patches


def test_patches_are_windows_at_hop_32(logmel):
    img = np.arange(128 * 216, dtype=np.float32).reshape(128, 216)
    p = patches(img, CFG)
    for i in range(3):
        np.testing.assert_array_equal(p[i], img[:, 32 * i : 32 * i + 128])
    assert patches(img[:, :100], CFG).shape == (0, 128, 128)


def test_channel_images_and_their_arithmetic(logmel):
    rng = np.random.default_rng(1)
    stereo = (0.1 * rng.standard_normal((44100, 2))).astype(np.float32)
    stereo[:, 1] *= 0.3
    imgs = channel_images(stereo, logmel)
    assert set(imgs) == {"left", "right", "sum", "diff"}
    np.testing.assert_allclose(imgs["left"], logmel(stereo[:, 0]))
    np.testing.assert_allclose(imgs["sum"], imgs["left"] + imgs["right"])
    np.testing.assert_allclose(imgs["diff"], imgs["left"] - imgs["right"])
    assert imgs["diff"].mean() > 5  # left is ~10 dB louder
    assert set(channel_images(stereo[:, :1], logmel)) == {"mono"}
    assert VARIANT_IMAGES["triple"] == ("left", "right", "sum")
    assert VARIANT_IMAGES["quadruple"] == ("left", "right", "sum", "diff")


def _reason(path, **kw) -> str:
    with pytest.raises(AudioError) as e:
        load_clip(path, **kw)
    assert e.value.file == str(path)
    return e.value.reason


ESC = dict(channels=1, sample_rate_hz=44100, duration_s=5.0, exact_duration=False)
TUT = dict(channels=2, sample_rate_hz=44100, duration_s=10.0, exact_duration=True)


def test_bad_audio_files_each_give_their_reason(tmp_path):
    assert _reason(tmp_path / "nope.wav", **ESC) == "missing audio file"
    (tmp_path / "empty.wav").write_bytes(b"")
    assert _reason(tmp_path / "empty.wav", **ESC).startswith("empty file")
    (tmp_path / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    assert _reason(tmp_path / "garbage.wav", **ESC).startswith("corrupt or unreadable audio")
    full = write_wav(tmp_path / "full.wav", 10.0, 2)
    (tmp_path / "trunc.wav").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert _reason(tmp_path / "trunc.wav", **TUT).startswith("truncated: the header says 441000 frames")
    write_wav(tmp_path / "stereo.wav", 5.0, 2)
    assert _reason(tmp_path / "stereo.wav", **ESC) == "wrong channel count: 2, expected mono"
    write_wav(tmp_path / "mono10.wav", 10.0, 1)
    assert _reason(tmp_path / "mono10.wav", **TUT) == "wrong channel count: 1, expected 2 channels"
    write_wav(tmp_path / "short.wav", 7.0, 2)
    assert _reason(tmp_path / "short.wav", **TUT) == "duration 7.00 s, expected 10 s"


def test_truncated_flac_is_rejected(tmp_path):
    y = (0.1 * np.random.default_rng(0).standard_normal((441000, 2))).astype(np.float32)
    sf.write(str(tmp_path / "a.flac"), y, 44100)
    data = (tmp_path / "a.flac").read_bytes()
    (tmp_path / "t.flac").write_bytes(data[: len(data) // 2])
    reason = _reason(tmp_path / "t.flac", **TUT)
    assert reason.startswith("truncated") or reason.startswith("corrupt")


def test_wrong_rate_is_resampled_and_noted(tmp_path):
    clip = load_clip(write_wav(tmp_path / "a.wav", 10.0, 2, sr=48000, subtype="PCM_24"), **TUT)
    assert clip.samples.shape == (441000, 2) and clip.notes == ["resampled from 48000 Hz"]


def test_esc_clips_are_padded_or_cut_to_5s_and_noted(tmp_path):
    short = load_clip(write_wav(tmp_path / "s.wav", 3.5, 1), **ESC)
    assert short.samples.shape == (220500, 1) and short.notes == ["zero-padded from 3.50 s"]
    assert not short.samples[int(3.5 * 44100) :].any()
    long = load_clip(write_wav(tmp_path / "l.wav", 7.24, 1), **ESC)
    assert long.samples.shape == (220500, 1) and long.notes == ["cut from 7.24 s"]
    exact = load_clip(write_wav(tmp_path / "e.wav", 5.0, 1), **ESC)
    assert exact.notes == []


def test_real_48k_24bit_scene_clip_reads_as_44k(tmp_path):
    path = require_shared(REAL / "tau-urban-2018-samples" / "audio" / "park.wav")
    samples, sr = read_audio(path)
    assert (sr, samples.shape) == (48000, (480000, 2))
    clip = load_clip(path, **TUT)
    assert clip.samples.shape == (441000, 2) and clip.notes == ["resampled from 48000 Hz"]
