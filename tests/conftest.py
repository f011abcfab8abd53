"""Fixtures shared by the whole test run: one local Ray instance, tiny synthetic data and its
features (made once per run, reused by every test that needs them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL = SHARED / "data" / "real"
REFERENCE_META = SHARED / "data" / "reference-meta"


def pytest_configure(config):
    # Tests must not pick up a user's cluster; keep Ray's own chatter out of the logs.
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole run (num_cpus=2, no dashboard), prepared as raymtl
    prepares the local instance it starts."""
    import ray

    from raymtl.ray_session import prepare_local_instance

    if not ray.is_initialized():
        prepare_local_instance(num_cpus=2)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """`raymtl synth --size tiny --seed 0`: DIR/esc50, DIR/tut2017-dev, DIR/tut2017-eval."""
    from raymtl.data.synth import generate

    out = tmp_path_factory.mktemp("synth-tiny")
    generate(out, size="tiny", seed=0, overwrite=True)
    return out


@pytest.fixture(scope="session")
def tiny_features(tiny_data, ray_session, tmp_path_factory) -> Path:
    """The tiny synthetic data featurized once for the whole run."""
    from raymtl.data.featurize import featurize

    out = tmp_path_factory.mktemp("features") / "tiny"
    featurize(
        str(tiny_data / "esc50"), str(tiny_data / "tut2017-dev"), str(tiny_data / "tut2017-eval"), str(out)
    )
    return out


def add_span(spans: dict, key, result: dict) -> None:
    """Widen `spans[key]` (epoch seconds) to cover the trial whose result.json is `result`, from
    its first placement's start to its finish: a member's span covers its trials."""
    from datetime import datetime

    start = result["placements"][0]["started"]
    end = datetime.strptime(result["finished"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    lo, hi = spans.get(key, (start, end))
    spans[key] = (min(lo, start), max(hi, end))


def require_shared(path: Path) -> Path:
    """The shared data ships beside the repo; without it these tests cannot run at all."""
    if not path.exists():
        pytest.fail(f"missing shared test data {path} (expected ../shared beside the checkout)")
    return path


MEMBER_EXPERIMENTS = ("baseline-asc", "baseline-aec", "mtl-ic", "finetune-asc", "finetune-aec")
MEMBER_ARGS = ["--division", "1", "--repeat", "1", "--variant", "triple", "--preset", "tiny"]
# The marker of every test that trains networks on Ray Train, directly or through these
# session fixtures (`pytest -m "not training"` is the quick tier).
TRAINING_FIXTURES = {"tiny_run", "tiny_study", "tiny_ensemble"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.training)


@pytest.fixture(scope="session")
def tiny_run(tiny_features, tmp_path_factory):
    """A RUN holding one member (division 1, repeat 1, triple) and both baselines, trained on the
    tiny preset by one `raymtl train --experiment baseline-asc,...,finetune-aec`: one Ray Train
    run for the five trials, so Train's start-up and the data preparation are paid once.
    Returns (run folder, exit code per experiment): every experiment got the code of the one
    command that trained it."""
    from raymtl.cli import main

    run = tmp_path_factory.mktemp("run") / "RUN"
    code = main(
        [
            "train",
            "--experiment",
            ",".join(MEMBER_EXPERIMENTS),
            *MEMBER_ARGS,
            "--features",
            str(tiny_features),
            "--out",
            str(run),
        ]
    )
    return run, {experiment: code for experiment in MEMBER_EXPERIMENTS}


ENSEMBLE_ARGS = ["--divisions", "1,2", "--repeats", "1", "--variants", "triple,quadruple"]


def grid_preset():
    """The ensemble tests' preset: tiny's network and fine-tune epochs, two stage-1 epochs on a
    128-patch subset. The results, dashboard and predict tests read the ensemble's files, not
    how well it learnt (tiny_run checks that), so its members train in seconds."""
    import dataclasses

    from raymtl.config import PRESETS

    tiny = PRESETS["tiny"]
    train = dataclasses.replace(tiny.train, epochs_train_asc=2, epochs_train_aec=2, max_train_patches=128)
    return dataclasses.replace(tiny, name="tiny-grid", train=train)


STUDY_ARGS = ["--divisions", "1,2", "--repeats", "1"]


@pytest.fixture(scope="session")
def tiny_study(tiny_features, tmp_path_factory):
    """`raymtl study --divisions 1,2 --repeats 1` (every experiment of Table I, triple variant)
    on the `grid_preset`, in the RUN the ensemble then shares (`tiny_ensemble`). Returns (run
    folder, exit code, its stdout, wall seconds, preset file).

    For working on the results tests only: RAYMTL_TEST_ENSEMBLE=/path/to/a/finished/RUN skips the
    training (CI never sets it)."""
    import contextlib
    import io
    import json
    import time

    from raymtl.cli import main

    given = os.environ.get("RAYMTL_TEST_ENSEMBLE")
    if given:
        return Path(given), 0, "(given by RAYMTL_TEST_ENSEMBLE)", 0.0, None
    root = tmp_path_factory.mktemp("ensemble")
    preset = root / "tiny-grid.json"
    preset.write_text(json.dumps(grid_preset().to_dict()))
    run = root / "RUN"
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "study",
                "--features",
                str(tiny_features),
                "--out",
                str(run),
                "--preset",
                str(preset),
                *STUDY_ARGS,
            ]
        )
    return run, code, out.getvalue(), time.perf_counter() - t0, preset


@pytest.fixture(scope="session")
def tiny_ensemble(tiny_study, tiny_features):
    """The issue's must-show ensemble (divisions 1,2 x triple,quadruple, repeat 1, both tasks) on
    the `grid_preset`, then `raymtl reduce`, in the study's RUN (`tiny_study`): the study trained
    the triple members, so the ensemble finds two members done and trains the two quadruple ones
    (and Table I has every experiment's row). Returns (run folder, ensemble exit code, its stdout,
    reduce exit code, mtime of member d1-r1-triple's mtl-ic result.json before the ensemble).
    Results, dashboard and predict tests read this finished RUN."""
    import contextlib
    import io

    from raymtl.cli import main

    run, study_code, study_out, _, preset = tiny_study
    if preset is None:  # RAYMTL_TEST_ENSEMBLE
        return run, 0, study_out, 0, None
    if study_code != 0:
        pytest.fail(f"the study that trains the ensemble's first members failed:\n{study_out}")
    before = (run / "trials" / "mtl-ic-d1-r1-triple" / "result.json").stat().st_mtime_ns
    common = ["--features", str(tiny_features), "--out", str(run), "--preset", str(preset)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["ensemble", *common, *ENSEMBLE_ARGS, "--tasks", "asc,aec"])
        reduce_code = main(["reduce", str(run)]) if code == 0 else None
    return run, code, out.getvalue(), reduce_code, before
