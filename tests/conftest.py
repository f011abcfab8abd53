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
    """One local Ray instance for the whole run (num_cpus=2, no dashboard)."""
    import ray

    if not ray.is_initialized():
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
    featurize(str(tiny_data / "esc50"), str(tiny_data / "tut2017-dev"), str(tiny_data / "tut2017-eval"), str(out))
    return out


def require_shared(path: Path) -> Path:
    """The shared data ships beside the repo; without it these tests cannot run at all."""
    if not path.exists():
        pytest.fail(f"missing shared test data {path} (expected ../shared beside the checkout)")
    return path


MEMBER_EXPERIMENTS = ("baseline-asc", "baseline-aec", "mtl-ic", "finetune-asc", "finetune-aec")
MEMBER_ARGS = ["--division", "1", "--repeat", "1", "--variant", "triple", "--preset", "tiny"]


@pytest.fixture(scope="session")
def tiny_run(tiny_features, tmp_path_factory):
    """A RUN holding one member (division 1, repeat 1, triple) trained with `raymtl train` on
    the tiny preset, plus both baselines: (run folder, exit code per experiment). The ensemble
    tests add members to this same RUN."""
    from raymtl.cli import main

    run = tmp_path_factory.mktemp("run") / "RUN"
    codes = {}
    for experiment in MEMBER_EXPERIMENTS:
        codes[experiment] = main(
            ["train", "--experiment", experiment, *MEMBER_ARGS, "--features", str(tiny_features), "--out", str(run)]
        )
    return run, codes


ENSEMBLE_ARGS = ["--preset", "tiny", "--divisions", "1,2", "--repeats", "1", "--variants", "triple,quadruple"]


@pytest.fixture(scope="session")
def tiny_ensemble(request):
    """The issue's must-show ensemble on the tiny RUN (divisions 1,2 x triple,quadruple, repeat
    1, both tasks), then `raymtl reduce`: (run folder, ensemble exit code, its stdout, reduce
    exit code, mtime of the member trial trained before by `raymtl train`). Results, dashboard and predict tests read this finished RUN.

    For working on those tests only: RAYMTL_TEST_ENSEMBLE=/path/to/a/finished/RUN skips the
    training (CI never sets it)."""
    import contextlib
    import io

    from raymtl.cli import main

    given = os.environ.get("RAYMTL_TEST_ENSEMBLE")
    if given:
        return Path(given), 0, "(given by RAYMTL_TEST_ENSEMBLE)", 0, None
    run, _ = request.getfixturevalue("tiny_run")
    tiny_features = request.getfixturevalue("tiny_features")
    before = (run / "trials" / "mtl-ic-d1-r1-triple" / "result.json").stat().st_mtime_ns
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["ensemble", "--features", str(tiny_features), "--out", str(run), *ENSEMBLE_ARGS, "--tasks", "asc,aec"])
        reduce_code = main(["reduce", str(run)]) if code == 0 else None
    return run, code, out.getvalue(), reduce_code, before
