"""Per-recording majority vote with the summed-score tie break."""

from __future__ import annotations

import numpy as np
import pytest

from raymtl.train.evaluate import recording_accuracy, vote


def test_majority_vote_over_patches_and_images():
    clips = np.array(["a", "a", "a", "b", "b", "b"])
    scores = np.array(
        [
            [0.6, 0.4, 0.0],  # a: votes 0, 0, 2 -> 0 even though class 2's summed score is larger
            [0.5, 0.2, 0.3],
            [0.0, 0.0, 1.0],
            [0.1, 0.8, 0.1],  # b: votes 1, 1, 0 -> 1
            [0.2, 0.7, 0.1],
            [0.9, 0.05, 0.05],
        ]
    )
    v = vote(clips, scores, np.array([0, 0, 0, 1, 1, 1]))
    assert v.clips.tolist() == ["a", "b"]
    assert v.predictions.tolist() == [0, 1]
    assert v.votes.tolist() == [[2, 0, 1], [1, 2, 0]]
    np.testing.assert_allclose(v.summed_scores[0], [1.1, 0.6, 1.3])
    assert v.accuracy == 1.0


def test_ties_go_to_the_larger_summed_score():
    clips = np.array(["r"] * 4)
    scores = np.array([[0.9, 0.1, 0], [0.51, 0.49, 0], [0.2, 0.8, 0], [0.3, 0.7, 0]])  # 2 votes each
    assert vote(clips, scores).predictions.tolist() == [1]  # summed 1.91 vs 2.09
    scores[0] = [0.99, 0.01, 0]
    scores[2] = [0.45, 0.55, 0]
    assert vote(clips, scores).predictions.tolist() == [0]  # summed 2.25 vs 1.75


def test_recording_accuracy_counts_recordings_not_patches():
    # Recording x has 9 patches right, y has 1 patch wrong: 1 of 2 recordings right.
    clips = np.array(["x"] * 9 + ["y"])
    labels = np.array([0] * 9 + [1])
    scores = np.tile([1.0, 0.0], (10, 1))
    assert recording_accuracy(clips, labels, scores) == 0.5


def test_inconsistent_labels_and_bad_shapes_raise():
    with pytest.raises(ValueError, match="different labels"):
        vote(np.array(["a", "a"]), np.eye(2), np.array([0, 1]))
    with pytest.raises(ValueError, match="scores must be"):
        vote(np.array(["a"]), np.zeros(3))
