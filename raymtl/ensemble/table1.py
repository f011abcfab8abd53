"""Paper Table I's statistic, defined once: for one experiment and task, the mean ± std over
repeats of the mean over divisions, per variant and for both variants together ("all": then the
per-repeat mean runs over divisions and variants). The std is the population std (ddof 0) over
repeats, as `raymtl reduce` has always written it.

`raymtl reduce` uses it for the ensemble members (summary.json) and the results store for every
experiment of every run (the `table1` table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

ALL = "all"


@dataclass(frozen=True)
class Table1Cell:
    """One variant's figure (or "all")."""

    mean: float | None
    std: float | None
    n_repeats: int
    n_trials: int
    per_repeat: dict[int, float]  # repeat -> mean over its divisions (and variants, for "all")


def table1(accuracies: Iterable[tuple[int, str, float]], variants: Sequence[str]) -> dict[str, Table1Cell]:
    """`accuracies`: (repeat, variant, test accuracy) of one experiment and task, one per
    trial; `variants`: those to report (each, then "all" over them together)."""
    rows = [(int(r), str(v), float(a)) for r, v, a in accuracies if a is not None]
    out = {}
    for name, chosen in [*((v, (v,)) for v in variants), (ALL, tuple(variants))]:
        by_repeat: dict[int, list[float]] = {}
        for r, v, a in rows:
            if v in chosen:
                by_repeat.setdefault(r, []).append(a)
        per_repeat = {r: float(np.mean(accs)) for r, accs in sorted(by_repeat.items())}
        values = np.array(list(per_repeat.values()), dtype=np.float64)
        out[name] = Table1Cell(
            mean=float(values.mean()) if len(values) else None,
            std=float(values.std(ddof=0)) if len(values) else None,
            n_repeats=len(values),
            n_trials=sum(len(accs) for accs in by_repeat.values()),
            per_repeat=per_repeat,
        )
    return out
