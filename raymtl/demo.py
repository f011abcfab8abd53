"""`raymtl demo`: the whole pipeline on the embedded default (synthetic data, local Ray).

Each step reuses what an earlier demo run in the same folder finished, so a second run is quick
and an interrupted one resumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoResult:
    data: Path
    features: Path
    summary: str


def run_demo(out: str | Path = "demo-out", size: str = "demo", seed: int = 0) -> DemoResult:
    from raymtl.data.featurize import featurize, is_finished
    from raymtl.data.synth import generate

    out = Path(out)
    data, features = out / "data", out / "features"
    if (data / "esc50" / "meta" / "esc50.csv").exists() and (data / "tut2017-eval" / "meta.txt").exists():
        log.info("step 1/2: reusing the synthetic data in %s", data)
    else:
        log.info("step 1/2: writing %s synthetic data to %s", size, data)
        generate(data, size=size, seed=seed, overwrite=True)
    if is_finished(str(features)):
        log.info("step 2/2: reusing the features in %s", features)
        summary = f"features already in {features}"
    else:
        log.info("step 2/2: featurizing into %s", features)
        report = featurize(
            str(data / "esc50"), str(data / "tut2017-dev"), str(data / "tut2017-eval"), str(features), overwrite=True
        )
        summary = report.summary()
    return DemoResult(data=data, features=features, summary=summary)
