"""Synthetic stand-ins for ESC-50 and TUT Acoustic Scenes 2017, in their published layouts.

The real datasets are not available offline, yet every stage of raymtl (featurize, the
divisions, mixup, training, the ensemble) must run end to end in tests and in the laptop demo.
`generate` writes three folders that the dataset loaders read exactly as they read the real
ones, same file names, metadata formats and audio formats:

``<out>/esc50`` (ESC-50)
    ``meta/esc50.csv`` with the header ``filename,fold,target,category,esc10,src_file,take``
    and rows such as ``1-100032-A-0.wav,1,0,dog,True,100032,A``; ``audio/<filename>``: mono,
    5.0 s, 44.1 kHz, PCM16 WAV (220500 frames). 50 classes, folds 1-5; a source file's takes
    (A, B, ...) share one fold, as in the real data.
``<out>/tut2017-dev`` (TUT Acoustic Scenes 2017, development set)
    ``meta.txt``: ``audio/<rec>_<start>_<end>.wav<TAB><scene><TAB><rec>``, no header; each
    source recording (``a001``) is cut into consecutive 10 s segments (``a001_0_10``,
    ``a001_10_20``, ...). ``evaluation_setup/fold{1..4}_{train,evaluate}.txt``
    (``audio/<file>.wav<TAB><scene>``) and ``fold{1..4}_test.txt`` (``audio/<file>.wav``): all
    segments of a recording lie in one fold; fold k's evaluate list is that fold, its train list
    every other development segment. ``audio/``: binaural stereo, 10.0 s, 44.1 kHz, PCM16 WAV
    (441000 frames). 15 scenes.
``<out>/tut2017-eval`` (TUT Acoustic Scenes 2017, evaluation set)
    ``meta.txt`` in the same three-column format, with its own source recordings.

`SIZES` sets the counts: ``tiny`` for tests (every class in every fold, featurizes in
seconds), ``demo`` for the laptop demo, ``full`` with the real datasets' counts (2000 / 4680 /
1620 files; about 12 GB).

What the signals are, and why:

- An *event class* (ESC-50 target k) is a spectro-temporal pattern fixed by k alone, the same
  for every seed: a sound family (harmonic stack, frequency sweep, noise band, inharmonic
  "metallic" partials, train of resonant clicks) at a class-specific frequency, plus a class
  temporal pattern (number, length and spacing of bursts, envelope shape, amplitude modulation).
  Each clip varies the pitch (a few semitones, shared by the takes of one source file), the
  burst timing, the onset and the level, over a little background noise. The classes are
  separable on 128-band log-mel images, but no two clips are alike.
- A *scene* (TUT label) is a background of coloured noise with a scene-specific spectral
  envelope, slow modulation and stereo image (inter-channel level difference, delay and
  coherence), plus a few events drawn from that scene's typical event classes, placed at random
  times, levels and stereo positions. Recording conditions (level, spectral tilt, resonances,
  stereo offsets) vary per source recording and a little per segment, so the folds, which keep
  a recording's segments together, matter as they do in the real data.

Because scenes are made of the same event classes that ESC-50 labels, knowing the events helps
to recognise the scenes: the premise of the paper's multitask learning.

Every file's audio comes from its own random generator, seeded from (seed, dataset, file
index), so output does not depend on generation order: the same seed gives byte-identical
files, another seed other audio. Files are written atomically and the metadata last, so a
dataset whose metadata exists is complete.

The package, one module per job: `planning` (sizes, names, the plan of every file), `events`
(event classes and ESC-50 clips), `scenes` (scene specs and TUT segments), `writing` (audio and
metadata files, `generate`).
"""

from raymtl.data.synth.events import FAMILIES, MAX_EVENT_S, EventSpec, event_spec
from raymtl.data.synth.planning import (
    AUDIO_DIR,
    DATASETS,
    ESC50,
    ESC50_CSV,
    ESC50_CSV_HEADER,
    ESC_FRAMES,
    SAMPLE_RATE_HZ,
    SIZES,
    TUT_DEV,
    TUT_EVAL,
    TUT_FRAMES,
    TUT_META,
    TUT_SEGMENT_S,
    TUT_SETUP_DIR,
    PlannedClip,
    PlannedSegment,
    SynthPlan,
    SynthSize,
    get_size,
    plan,
)
from raymtl.data.synth.scenes import SCENE_SPECS, SceneSpec
from raymtl.data.synth.writing import SynthSummary, generate, render

__all__ = [
    "AUDIO_DIR",
    "DATASETS",
    "ESC50",
    "ESC50_CSV",
    "ESC50_CSV_HEADER",
    "ESC_FRAMES",
    "FAMILIES",
    "MAX_EVENT_S",
    "SAMPLE_RATE_HZ",
    "SCENE_SPECS",
    "SIZES",
    "TUT_DEV",
    "TUT_EVAL",
    "TUT_FRAMES",
    "TUT_META",
    "TUT_SEGMENT_S",
    "TUT_SETUP_DIR",
    "EventSpec",
    "PlannedClip",
    "PlannedSegment",
    "SceneSpec",
    "SynthPlan",
    "SynthSize",
    "SynthSummary",
    "event_spec",
    "generate",
    "get_size",
    "plan",
    "render",
]
