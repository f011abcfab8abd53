"""Which trials train together: chains of experiments that one Ray Train run trains in order.

An experiment that fine-tunes starts from the network of another (`Experiment.init_from`), so
that one must be recorded first. A chain starts at an experiment that trains from scratch and
holds, in the paper's order, every selected experiment that starts from it. All ten give

    [baseline-asc]  [baseline-aec]  [mtl]  [mtl-ic, finetune-asc, finetune-aec]
    [direct-asc, transfer-aec]  [direct-aec, transfer-asc]

One Train run per chain pays Ray Train's start-up once for the chain, and chains share nothing,
so they run in parallel (on a fixed machine where they would only queue, the grid packs a
coordinate's chains into one Train run: raymtl.ensemble.grid.pack_by_coordinates).
Selecting an experiment selects what it starts from (its prerequisite):
`transfer-aec` alone is the chain [direct-asc, transfer-aec].
"""

from __future__ import annotations

from typing import Iterable

from raymtl.errors import ConfigError
from raymtl.train.experiments import EXPERIMENTS, get_experiment


def root(experiment: str) -> str:
    """The from-scratch experiment `experiment` (indirectly) starts from; itself if it has none."""
    seen = [experiment]
    while (parent := get_experiment(seen[-1]).init_from) is not None:
        if parent in seen:  # a guard for EXPERIMENTS' edits, not for user input
            raise ConfigError(f"experiments start from each other in a cycle: {' -> '.join(seen)}")
        seen.append(parent)
    return seen[-1]


def with_prerequisites(experiments: Iterable[str]) -> tuple[str, ...]:
    """`experiments` and every experiment they start from, in the paper's order (EXPERIMENTS)."""
    selected = set()
    for name in experiments:
        while name is not None and name not in selected:
            selected.add(name)
            name = get_experiment(name).init_from
    return tuple(e for e in EXPERIMENTS if e in selected)


def chains(experiments: Iterable[str]) -> list[tuple[str, ...]]:
    """The chains that train `experiments` (prerequisites added), each in dependency order:
    the from-scratch experiment first, then what starts from it, in the paper's order."""
    selected = with_prerequisites(experiments)
    roots = [e for e in selected if get_experiment(e).init_from is None]
    by_depth = sorted(selected, key=_depth)  # parents before children, stable in the paper's order
    return [(r, *(e for e in by_depth if e != r and root(e) == r)) for r in roots]


def _depth(experiment: str) -> int:
    depth, name = 0, experiment
    while (name := get_experiment(name).init_from) is not None:
        depth += 1
    return depth
