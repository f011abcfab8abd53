"""Per-recording evaluation (docs/method.md §6): a recording's prediction is the majority vote of its
patch predictions over all its patches and channel images; ties go to the class with the larger
summed score. Per-recording accuracy is the metric. Shared by training, reduce and predict."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RecordingVotes:
    clips: np.ndarray  # (R,) recording ids, sorted
    labels: np.ndarray  # (R,) true label (-1 where unknown)
    predictions: np.ndarray  # (R,) voted class
    votes: np.ndarray  # (R, P) patch votes per class
    summed_scores: np.ndarray  # (R, P) summed patch scores per class

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).mean()) if len(self.clips) else float("nan")


def vote(clips: np.ndarray, scores: np.ndarray, labels: np.ndarray | None = None) -> RecordingVotes:
    """clips (N,), scores (N, P) per patch (softmax or summed softmax), labels (N,) optional."""
    clips = np.asarray(clips)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or len(scores) != len(clips):
        raise ValueError(
            f"scores must be (N, P) with N = len(clips); got {scores.shape} for {len(clips)} clips"
        )
    uniq, inverse = np.unique(clips, return_inverse=True)
    n_rec, n_cls = len(uniq), scores.shape[1]
    votes = np.zeros((n_rec, n_cls), dtype=np.int64)
    np.add.at(votes, (inverse, scores.argmax(axis=1)), 1)
    summed = np.zeros((n_rec, n_cls), dtype=np.float64)
    np.add.at(summed, inverse, scores)
    # Majority vote; among the classes with the most votes, the larger summed score wins.
    top = votes == votes.max(axis=1, keepdims=True)
    predictions = np.where(top, summed, -np.inf).argmax(axis=1)
    rec_labels = np.full(n_rec, -1, dtype=np.int64)
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        rec_labels[inverse] = labels
        mismatch = labels != rec_labels[inverse]
        if mismatch.any():
            raise ValueError(f"recording {clips[mismatch.argmax()]!r} has patches with different labels")
    return RecordingVotes(uniq, rec_labels, predictions, votes, summed)


def recording_accuracy(clips: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    return vote(clips, scores, labels).accuracy
