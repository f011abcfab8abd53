"""What the featurizer hands the models and what they hand back: the patches of one segment
(`PatchSet`) and their scores (`Scores`). Its own module so that the predictor
(raymtl.serving.predict) and the models (raymtl.serving.models) share them without importing
each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raymtl.data.features import ESC_IMAGES

EVENT_IMAGE = ESC_IMAGES[0]  # "mono": the event models were trained on mono ESC-50 images


@dataclass
class PatchSet:
    """The patches of one segment, in the order the models score them.

    scene        (n, 128, 128) float32: the scene images' patches, image after image
    scene_image  (n,) str: the channel image of each scene patch
    events       (m, 128, 128) float32: the mono image's patches
    padded       whether the segment was zero-padded to one patch
    """

    scene: np.ndarray
    scene_image: np.ndarray
    events: np.ndarray
    padded: bool = False


@dataclass
class Scores:
    """What the models made of one PatchSet: summed softmax per patch and how many models
    scored each patch (1 for the multitask model; for the ensemble, the members whose variant
    has the patch's image)."""

    scene: np.ndarray  # (n, P_asc) float64
    scene_weight: np.ndarray  # (n,) int
    events: np.ndarray  # (m, P_aec) float64
    events_weight: np.ndarray  # (m,) int
