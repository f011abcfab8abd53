"""The paper's ordering claims, checked on a run: each a paired comparison.

A claim says one experiment beats another on a task (paper §III-C to §III-F). Its evidence in a
run is the difference of test accuracies over the (division, repeat, variant) coordinates where
both trials finished (the Table I variant's, as `raymtl results --variant` chooses), so that a
division's or a repeat's luck cancels out. The ensemble claim compares the fused ensemble with
each of its members (RUN/ensemble/summary.json against each `finetune-<task>` trial).

Per claim and run: the pairs, how many agree with the paper (difference > 0), the mean
difference and its 95 % interval (a one-sample t-test on the differences, scipy's), and a
verdict a reader can act on:

    holds in this run           the interval lies above 0
    contradicted by this run    the interval lies below 0
    not supported by this run   the interval includes 0 (or too few pairs to tell)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

from raymtl.results.store import ResultsStore

ENSEMBLE = "ensemble"  # the claim's "experiment" for the fused ensemble of a task's members
HOLDS, CONTRADICTED, UNSUPPORTED = (
    "holds in this run",
    "contradicted by this run",
    "not supported by this run",
)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Claim:
    task: str
    better: str  # experiment (or ENSEMBLE)
    worse: str
    source: str  # where the paper says it

    @property
    def text(self) -> str:
        return f"{self.better} > {self.worse}"


CLAIMS = (
    Claim("asc", "mtl", "baseline-asc", "§III-C: MTL beats the single-task baseline"),
    Claim("aec", "mtl", "baseline-aec", "§III-C: MTL beats the single-task baseline"),
    Claim("asc", "mtl-ic", "mtl", "§III-C: inter-connections help"),
    Claim("aec", "mtl-ic", "mtl", "§III-C: inter-connections help"),
    Claim("asc", "finetune-asc", "mtl-ic", "§III-D: cross-task fusion beats MTL-IC"),
    Claim("aec", "finetune-aec", "mtl-ic", "§III-D: cross-task fusion beats MTL-IC"),
    Claim("asc", "finetune-asc", "direct-asc", "§III-E: fine-tuned beats the fusion net trained directly"),
    Claim("aec", "finetune-aec", "direct-aec", "§III-E: fine-tuned beats the fusion net trained directly"),
    Claim("asc", "direct-asc", "transfer-asc", "§III-E: direct training beats transfer from ESC-50"),
    Claim("aec", "direct-aec", "transfer-aec", "§III-E: direct training beats transfer from TUT"),
    Claim("asc", ENSEMBLE, "finetune-asc", "§III-F: the ensemble beats its members"),
    Claim("aec", ENSEMBLE, "finetune-aec", "§III-F: the ensemble beats its members"),
)


@dataclass(frozen=True)
class Paired:
    """A paired comparison's figures (accuracy differences as fractions)."""

    n: int  # pairs
    agree: int  # pairs whose difference is > 0
    mean: float | None
    low: float | None  # the 95 % interval of the mean difference (None below 2 pairs)
    high: float | None
    verdict: str

    def words(self) -> str:
        if self.n == 0:
            return "no pairs in this run"
        if self.low is None:
            return f"{self.verdict}: one pair only ({100 * self.mean:+.2f} points)"
        return (
            f"{self.verdict}: {100 * self.mean:+.2f} points, 95 % interval [{100 * self.low:+.2f}, "
            f"{100 * self.high:+.2f}], {self.agree} of {self.n} pairs agree"
        )


def paired(differences: Sequence[float]) -> Paired:
    """The comparison of `differences` (better minus worse, one per pair) with 0."""
    d = np.asarray(differences, dtype=np.float64)
    n, agree = len(d), int((d > 0).sum())
    if n == 0:
        return Paired(0, 0, None, None, None, UNSUPPORTED)
    mean = float(d.mean())
    if n < 2:
        return Paired(n, agree, mean, None, None, UNSUPPORTED)
    if np.allclose(d, d[0], rtol=0.0, atol=1e-12):  # no spread: the interval is the value (scipy: nan)
        low = high = mean
    else:
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(CONFIDENCE)
        low, high = float(ci.low), float(ci.high)
    verdict = HOLDS if low > 0 else CONTRADICTED if high < 0 else UNSUPPORTED
    return Paired(n, agree, mean, low, high, verdict)


def claims(store: ResultsStore, variant: str = "triple") -> dict[str, Any]:
    """Every claim for every run, as plain data for `raymtl results` and the dashboard."""
    variants = ("triple", "quadruple") if variant == "all" else (variant,)
    rows = store.rows(
        "select run, experiment, task, division, repeat, variant, test_accuracy from results "
        "where test_accuracy is not null"
    )
    fused = {(r["run"], r["task"]): r["ensemble_accuracy"] for r in store.rows("select * from ensemble")}
    acc = {
        (r["run"], r["experiment"], r["task"], r["division"], r["repeat"], r["variant"]): r["test_accuracy"]
        for r in rows
    }
    out = []
    for c in CLAIMS:
        by_run = {}
        for run in store.run_names():
            if c.better == ENSEMBLE:
                e = fused.get((run, c.task))
                members = [a for (r, x, t, *_), a in acc.items() if (r, x, t) == (run, c.worse, c.task)]
                diffs = [e - a for a in members] if e is not None else []
            else:
                diffs = [
                    a - acc[(run, c.worse, c.task, *coords)]
                    for (r, x, t, *coords), a in acc.items()
                    if (r, x, t) == (run, c.better, c.task)
                    and coords[2] in variants
                    and (run, c.worse, c.task, *coords) in acc
                ]
            p = paired(diffs)
            by_run[run] = {**asdict(p), "words": p.words()}
        out.append(
            {
                "task": c.task,
                "claim": c.text,
                "better": c.better,
                "worse": c.worse,
                "source": c.source,
                "runs": by_run,
            }
        )
    return {"variant": variant, "confidence": CONFIDENCE, "claims": out}
