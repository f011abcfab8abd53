"""FEATURES version 2 storage (raymtl.data.stored): the int16 error bound, exact round trips,
the precomputed mixup keys, and patches cut in the stream equal to windows of the images."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from raymtl.config import FeatureConfig
from raymtl.data import stored
from raymtl.data.features import LogMel, channel_images, patches
from raymtl.data.mixup import key_hash

CFG = FeatureConfig()


@pytest.fixture(scope="module")
def binaural_images():
    """Real-looking channel images: noise bursts and a tone, through the paper's log-mel."""
    rng = np.random.default_rng(3)
    t = np.arange(10 * 44100) / 44100
    left = 0.3 * np.sin(2 * np.pi * 440 * t) * (t % 2 < 1) + 0.05 * rng.standard_normal(len(t))
    right = 0.1 * rng.standard_normal(len(t)) * (t > 3)  # silent (digital zero) for 3 s: -100 dB
    return channel_images(np.stack([left, right], axis=1).astype(np.float32), LogMel(CFG))


def _stored(images, names=("left", "right")):
    return {n: stored.quantize(images[n])[0][None] for n in names}  # (1, 128, 431) int16


def test_quantized_images_are_within_1_256_db_and_sum_diff_within_1_128_db(binaural_images):
    """The error bound that allows int16 storage: far below 0.05 dB, on every image."""
    q = _stored(binaural_images)
    n = CFG.n_patches(431)
    index = stored.PatchIndex(
        np.zeros(4 * n, int), np.repeat(np.arange(4), n), np.tile(np.arange(n), 4), np.zeros(4 * n, np.uint64)
    )
    got = stored.cut(q, ("left", "right", "sum", "diff"), index, CFG).reshape(4, n, 128, 128)
    assert binaural_images["right"].min() == pytest.approx(-100.0)  # the silent part: the dB floor
    for i, name in enumerate(("left", "right", "sum", "diff")):
        error = np.abs(got[i] - patches(binaural_images[name], CFG)).max()
        bound = 2.0**-8 if name in ("left", "right") else 2.0**-7
        assert error <= bound + 1e-5, name
        assert error <= 0.05
    # Stored images dequantize exactly to their int16 steps; none was clipped.
    assert stored.quantize(binaural_images["left"])[1] == 0
    assert np.array_equal(stored.dequantize(q["left"]) * 128, q["left"].astype(np.float32))


def test_values_beyond_the_int16_range_are_clipped_and_counted():
    q, clipped = stored.quantize(np.array([[-300.0, 0.0, 255.99, 400.0]]))
    assert clipped == 2 and q.tolist() == [[-32768, 0, 32767, 32767]]


def test_encode_decode_round_trips_zero_copy_through_arrow_slices():
    rng = np.random.default_rng(0)
    images = rng.integers(-12800, 6400, (5, 128, 216), dtype=np.int16)
    column = pa.array([stored.encode(im) for im in images], pa.binary())
    assert np.array_equal(stored.decode(column, 128, 216), images)
    assert np.array_equal(stored.decode(column.slice(2, 3), 128, 216), images[2:])  # a sliced block
    chunked = pa.chunked_array([column.slice(0, 2), column.slice(2, 3)])
    assert np.array_equal(stored.decode(chunked, 128, 216), images)
    with pytest.raises(ValueError, match="unequal size"):
        stored.decode(pa.array([stored.encode(images[0]), b"\x00\x00"], pa.binary()), 128, 216)
    with pytest.raises(ValueError, match="missing"):
        stored.decode(pa.array([stored.encode(images[0]), None], pa.binary()), 128, 216)


def test_precomputed_keys_are_the_key_hash_of_each_patch():
    keys = stored.patch_keys("audio/a001_0_10.wav", stored.KEYED_IMAGES["tut2017"], 10)
    assert keys.shape == (40,) and keys.dtype == np.uint64
    assert keys[3] == key_hash(["audio/a001_0_10.wav"], ["left"], [3])[0] == 12232981756052737961
    assert keys[2 * 10 + 7] == key_hash(["audio/a001_0_10.wav"], ["sum"], [7])[0]
    # The index picks the right key for a variant's images (quadruple's diff: slot 3).
    matrix = np.stack([keys, stored.patch_keys("audio/b.wav", stored.KEYED_IMAGES["tut2017"], 10)])
    index = stored.PatchIndex.of(matrix, "tut2017", ("left", "right", "sum", "diff"), 10)
    assert len(index) == 80
    assert (
        index.key.tolist()
        == key_hash(
            ["audio/a001_0_10.wav"] * 40 + ["audio/b.wav"] * 40,
            np.tile(np.repeat(["left", "right", "sum", "diff"], 10), 2),
            np.tile(np.arange(10), 8),
        ).tolist()
    )
    triple = stored.PatchIndex.of(matrix, "tut2017", ("left", "right", "sum"), 10)
    assert len(triple) == 60 and set(triple.image.tolist()) == {0, 1, 2}


def test_partition_names():
    assert stored.partition_name("esc50", "dev", 3) == "esc50-fold-3"
    assert stored.partition_name("tut2017", "dev", 1) == "tut2017-dev-fold-1"
    assert stored.partition_name("tut2017", "eval", None) == "tut2017-eval"
