"""Row keys and their hashing, shared by featurize (the keys it stores), the mixup pairing and
the streams' subsample: `key_hash`, the stable 64-bit key of a patch (clip, image,
patch_index), and `splitmix64`, which mixes keys with seeds (raymtl.data.mixup explains how
partners are drawn from them).
"""

from __future__ import annotations

import hashlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, vectorised over uint64 (wraps modulo 2**64)."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def key_hash(clips, images, patch_indices) -> np.ndarray:
    """(B,) uint64: a stable hash of each row key (clip, image, patch_index).

    BLAKE2b of the key text, so it is the same in every process and Python version."""
    out = np.empty(len(clips), dtype=np.uint64)
    for i, (c, m, p) in enumerate(zip(clips, images, patch_indices)):
        digest = hashlib.blake2b(f"{c}\x1f{m}\x1f{int(p)}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little")
    return out
