"""Audio file -> log-mel patches -> scores -> the scene and the events of the recording.

The features are made exactly as featurization made them (`raymtl.data.audio.read_audio`,
`resample`, `raymtl.data.features.LogMel`, `channel_images`, `patches`, with the RUN's
`FeatureConfig`), and a recording's answer is the vote of `raymtl.train.evaluate.vote`:

- **Scene** (ASC): the channel images the models were trained on (left, right, left+right and,
  for quadruple members, left-right); a mono file gives the same image for left and right (so
  `sum` is twice it and `diff` is zero, by the same definitions). The answer is the majority
  vote of the scene patches of every image (ties: larger summed score), as in the paper.
- **Events** (AEC): the `mono` image, as ESC-50 clips are mono; a stereo file is averaged to
  mono first. The ranking is the same vote over those patches: most patch votes first, ties by
  summed score; the first event is exactly the vote's answer (a 5 s clip: a vote over its 3
  patches, as in training).
- **Score** of a class: its softmax averaged over the patches that voted (and, for the ensemble,
  over the members that scored each patch), so scores lie in [0, 1] and sum to 1 over classes.
  `votes` is how many patches chose it.

Length: audio up to 10 s (the TUT segment length, plus its 0.05 s tolerance, cut as featurize
cuts TUT segments) is one segment. Longer audio is cut into 10 s segments from the start (a last
piece no longer than the tolerance is dropped); each segment is featurized on its own, exactly
like a 10 s file (so a segment's answer is what that 10 s excerpt would get as a file), and the
whole-file answer is the vote over the patches of every segment. Audio (or a last segment)
shorter than one patch (128 frames, 2.95 s) is zero-padded to one patch and flagged `padded`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import soundfile as sf

from raymtl.config import FeatureConfig
from raymtl.data.audio import read_audio, resample
from raymtl.data.features import LogMel, channel_images, patches
from raymtl.errors import AudioError, UserError
from raymtl.serving.models import load_models
from raymtl.serving.patches import EVENT_IMAGE, PatchSet, Scores
from raymtl.train.evaluate import vote

log = logging.getLogger(__name__)

FORMAT = "raymtl-predict/1"
SCENE, EVENTS = "scene", "events"  # the JSON keys of the two answers (ASC and AEC)
TASK_OF = {SCENE: "asc", EVENTS: "aec"}
DEFAULT_TOP_K = 3
SEGMENT_CHUNK = 6  # segments featurized and scored at once: bounds memory for long files


class TooLongError(AudioError):
    """Audio longer than the limit a caller set (the server's duration limit)."""


class NotMonoOrStereoError(AudioError):
    """Audio with more than two channels."""


@dataclass(frozen=True)
class Segment:
    """One stretch of a recording that is featurized on its own (at most 10 s)."""

    index: int
    start: int  # first sample (at the feature sample rate)
    stop: int  # one past the last sample actually in the file
    sample_rate_hz: int

    @property
    def start_s(self) -> float:
        return self.start / self.sample_rate_hz

    @property
    def end_s(self) -> float:
        return self.stop / self.sample_rate_hz


@dataclass
class Recording:
    """A file read, checked and resampled, and its segment plan (no log-mel yet)."""

    file: str  # as the user named it
    samples: np.ndarray  # (n, 1 or 2) float32 at the feature sample rate
    duration_s: float  # of the file as read
    sample_rate_hz: int  # of the file as read
    channels: int
    segments: list[Segment]
    notes: list[str] = field(default_factory=list)

    @property
    def long(self) -> bool:
        """More than one 10 s segment: the answer carries a timeline."""
        return len(self.segments) > 1


class Featurizer:
    """Files -> PatchSets, with one LogMel for the process (built once: the mel filter bank)."""

    def __init__(self, cfg: FeatureConfig, scene_images: Sequence[str]):
        self.cfg = cfg
        self.scene_images = tuple(scene_images)
        self.logmel = LogMel(cfg)
        self.logmel(np.zeros(cfg.hop_length * 4, np.float32))  # pay the first call's imports now
        self.segment_samples = int(round(cfg.tut_duration_s * cfg.sample_rate_hz))  # 441000
        self.tolerance_samples = int(round(cfg.tut_duration_tolerance_s * cfg.sample_rate_hz))
        # The fewest samples that give one patch: 1 + n // hop centred frames >= patch_frames.
        self.patch_samples = (cfg.patch_frames - 1) * cfg.hop_length

    def load(
        self, path: str | Path, name: str | None = None, max_duration_s: float | None = None
    ) -> Recording:
        """Read, check and resample a file; `AudioError` (with the reason) if it is unusable."""
        name = name or str(path)
        if max_duration_s is not None:
            _check_duration(path, name, max_duration_s)
        samples, sr = read_audio(path, name)  # (n, channels) float32; missing/empty/corrupt/truncated
        n_in, channels = samples.shape
        if channels > 2:
            raise NotMonoOrStereoError(name, f"{channels} channels; predict takes mono or stereo audio")
        duration_s = n_in / sr
        if max_duration_s is not None and duration_s > max_duration_s:
            raise TooLongError(
                name, f"{duration_s:.1f} s of audio, more than the limit of {max_duration_s:g} s"
            )
        notes = []
        if sr != self.cfg.sample_rate_hz:
            samples = resample(samples, sr, self.cfg.sample_rate_hz)
            notes.append(f"resampled from {sr} Hz to {self.cfg.sample_rate_hz} Hz")
        segments = self.plan(len(samples))
        if segments[-1].stop - segments[-1].start < self.patch_samples:
            which = (
                "the audio"
                if len(segments) == 1
                else f"the last segment ({segments[-1].end_s - segments[-1].start_s:.2f} s)"
            )
            patch_s = self.patch_samples / self.cfg.sample_rate_hz
            notes.append(f"{which} is shorter than one patch ({patch_s:.2f} s): zero-padded")
        return Recording(name, samples, duration_s, int(sr), int(channels), segments, notes)

    def plan(self, n: int) -> list[Segment]:
        """10 s segments from the start; up to 10 s + tolerance is one segment (cut to 10 s,
        as featurize cuts TUT segments); a last piece within the tolerance is dropped."""
        seg, tol, sr = self.segment_samples, self.tolerance_samples, self.cfg.sample_rate_hz
        if n <= seg + tol:
            return [Segment(0, 0, min(n, seg), sr)]
        out = []
        for i, start in enumerate(range(0, n, seg)):
            stop = min(start + seg, n)
            if stop - start <= tol:
                break
            out.append(Segment(i, start, stop, sr))
        return out

    def patch_set(self, rec: Recording, segment: Segment) -> PatchSet:
        """The scene and event patches of one segment, featurized as if it were a file."""
        y = rec.samples[segment.start : segment.stop]  # (n, channels)
        padded = len(y) < self.patch_samples
        if padded:
            y = np.pad(y, ((0, self.patch_samples - len(y)), (0, 0)))
        stereo = y if y.shape[1] == 2 else np.repeat(y, 2, axis=1)  # mono: left = right
        images = channel_images(stereo, self.logmel)  # left, right, sum, diff (log-mel dB)
        scene = [patches(images[im], self.cfg) for im in self.scene_images]  # (k, 128, 128) each
        if y.shape[1] == 1:
            mono = images["left"]  # the mono file's own log-mel
        else:
            mono = channel_images(y.mean(axis=1, keepdims=True), self.logmel)[EVENT_IMAGE]
        return PatchSet(
            scene=np.concatenate(scene).astype(np.float32, copy=False),
            scene_image=np.concatenate([np.full(len(p), im) for p, im in zip(scene, self.scene_images)]),
            events=patches(mono, self.cfg),
            padded=padded,
        )

    def patch_sets(self, rec: Recording, segments: Iterable[Segment] | None = None) -> list[PatchSet]:
        return [self.patch_set(rec, s) for s in (rec.segments if segments is None else segments)]


def _check_duration(path, name: str, max_duration_s: float) -> None:
    """Refuse a file that is too long before reading it (the header says so). A file whose
    header cannot be read is left to read_audio, which says why."""

    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - read_audio reports it with the reason
        return
    if info.samplerate > 0 and info.frames / info.samplerate > max_duration_s:
        raise TooLongError(
            name,
            f"{info.frames / info.samplerate:.1f} s of audio, more than the limit of {max_duration_s:g} s",
        )


# ---------------------------------------------------------------- answers


def ranked(
    votes: np.ndarray, summed: np.ndarray, weight: float, class_names: Sequence[str], k: int
) -> list[dict]:
    """The top k classes by (patch votes, summed score): the vote's own order."""
    order = np.lexsort((-summed, -votes))[:k]  # last key first: votes, then summed score
    return [
        {
            "label": class_names[c],
            "index": int(c),
            "score": round(float(summed[c] / weight), 6),
            "votes": int(votes[c]),
        }
        for c in order
    ]


def _answer(
    scores: np.ndarray, weights: np.ndarray, class_names: Sequence[str], k: int
) -> tuple[list[dict], int]:
    """(top-k classes, number of patches) of one vote over `scores` (N, P)."""
    v = vote(np.zeros(len(scores), dtype=np.int64), scores)  # one recording
    top = ranked(v.votes[0], v.summed_scores[0], float(weights.sum()), class_names, k)
    assert top[0]["index"] == int(v.predictions[0])  # the ranking starts with the vote's answer
    return top, len(scores)


def _part(scores: Sequence[Scores], class_names: dict[str, list[str]], top_k: int) -> dict[str, Any]:
    """The scene and events of the patches of `scores` voted together."""
    scene, n_scene = _answer(
        np.concatenate([s.scene for s in scores]),
        np.concatenate([s.scene_weight for s in scores]),
        class_names["asc"],
        1,
    )
    events, n_events = _answer(
        np.concatenate([s.events for s in scores]),
        np.concatenate([s.events_weight for s in scores]),
        class_names["aec"],
        top_k,
    )
    return {SCENE: {**scene[0], "patches": n_scene}, EVENTS: events, "event_patches": n_events}


def answer(
    rec: Recording,
    sets: Sequence[PatchSet],
    scores: Sequence[Scores],
    class_names: dict[str, list[str]],
    top_k: int = DEFAULT_TOP_K,
) -> dict[str, Any]:
    """The JSON record of one file (docs/formats.md: predict JSON)."""
    if len(sets) != len(rec.segments) or len(scores) != len(rec.segments):
        raise ValueError(
            f"{rec.file}: {len(rec.segments)} segments, {len(sets)} patch sets, {len(scores)} scores"
        )
    record = {
        "file": rec.file,
        "ok": True,
        "error": None,
        "duration_s": round(rec.duration_s, 3),
        "sample_rate_hz": rec.sample_rate_hz,
        "channels": rec.channels,
        "notes": list(rec.notes),
        "padded": any(p.padded for p in sets),
        **_part(scores, class_names, top_k),
        "segments": [],
    }
    if rec.long:
        for seg, ps, sc in zip(rec.segments, sets, scores):
            record["segments"].append(
                {
                    "index": seg.index,
                    "start_s": round(seg.start_s, 3),
                    "end_s": round(seg.end_s, 3),
                    "padded": ps.padded,
                    **_part([sc], class_names, top_k),
                }
            )
    return record


def error_record(file: str, reason: str) -> dict[str, Any]:
    """The record of a file that could not be used: the same keys, the answers null."""
    return {
        "file": file,
        "ok": False,
        "error": reason,
        "duration_s": None,
        "sample_rate_hz": None,
        "channels": None,
        "notes": [],
        "padded": None,
        SCENE: None,
        EVENTS: None,
        "event_patches": None,
        "segments": [],
    }


def document(model: dict[str, Any], records: list[dict[str, Any]], top_k: int) -> dict[str, Any]:
    """The whole JSON answer: the model that answered and one record per file."""
    return {"format": FORMAT, "model": model, "top_k": top_k, "files": records}


# ---------------------------------------------------------------- the library entry point


class Predictor:
    """A loaded model set and its featurizer: what `raymtl predict` and the server share."""

    def __init__(self, models):  # raymtl.serving.models.ModelSet
        self.models = models
        self.featurizer = Featurizer(models.features, models.scene_images)

    def predict_file(
        self,
        path: str | Path,
        name: str | None = None,
        top_k: int = DEFAULT_TOP_K,
        max_duration_s: float | None = None,
    ) -> dict[str, Any]:
        """One file's record; a file that cannot be used gives an error record."""
        name = name or str(path)
        try:
            rec = self.featurizer.load(path, name, max_duration_s)
        except AudioError as e:
            log.warning("%s", e)
            return error_record(name, e.reason)
        sets, scores = [], []
        for i in range(0, len(rec.segments), SEGMENT_CHUNK):  # long files: a minute at a time
            chunk = self.featurizer.patch_sets(rec, rec.segments[i : i + SEGMENT_CHUNK])
            scores.extend(self.models.score(chunk))
            sets.extend(_without_patches(chunk))  # keep the flags, not the pixels
        return answer(rec, sets, scores, self.models.class_names, top_k)

    def predict(self, files: Sequence[str], top_k: int = DEFAULT_TOP_K) -> dict[str, Any]:
        records = [self.predict_file(f, top_k=top_k) for f in files]
        return document(self.models.describe(), records, top_k)


def _without_patches(sets: list[PatchSet]) -> list[PatchSet]:
    empty = np.zeros((0, 0, 0), np.float32)
    return [PatchSet(empty, np.zeros(0, str), empty, p.padded) for p in sets]


def predict_files(
    run: str,
    files: Sequence[str],
    *,
    model: str = "mtl",
    top_k: int = DEFAULT_TOP_K,
    mtl_target: str = "asc",
    trial: str | None = None,
) -> dict[str, Any]:
    """`raymtl predict`: the JSON document for `files` (unusable files get error records)."""
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k}")
    if not files:
        raise UserError("no audio files given")
    models = load_models(run, model, mtl_target=mtl_target, trial=trial)
    top_k = min(top_k, len(models.class_names[TASK_OF[EVENTS]]))
    return Predictor(models).predict(files, top_k)


def n_failed(doc: dict[str, Any]) -> int:
    return sum(not r["ok"] for r in doc["files"])
