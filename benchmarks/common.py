"""Shared set-up for the benchmarks: synthetic data and features under bench-out/, reused."""

from __future__ import annotations

import logging
from pathlib import Path

BENCH_OUT = Path("bench-out")


def synth_data(size: str = "tiny", seed: int = 0) -> Path:
    from raymtl.data.synth import generate

    out = BENCH_OUT / f"data-{size}"
    if not (out / "tut2017-eval" / "meta.txt").exists():
        generate(out, size=size, seed=seed, overwrite=True)
    return out


def features(size: str = "tiny") -> Path:
    from raymtl.data.featurize import featurize, is_finished

    data = synth_data(size)
    out = BENCH_OUT / f"features-{size}"
    if not is_finished(str(out)):
        featurize(
            str(data / "esc50"),
            str(data / "tut2017-dev"),
            str(data / "tut2017-eval"),
            str(out),
            overwrite=True,
        )
    return out


def setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
