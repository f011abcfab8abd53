"""The paper's own figures (Zheng, Jiang, Zhao; docs/method.md), as fractions, to set beside a run's.

Table I (§III-C, §III-D) gives mean ± std over 3 repeats of the mean over 4 divisions, triple
variant only; the direct and transfer rows are from the text of §III-E. Table II (§III-F) gives
the 24-member ensemble and, for ASC, the mean of the nine 8-member ensembles (84.2 %); the paper
reports no 8-member figure for AEC.
"""

from __future__ import annotations

from dataclasses import dataclass

# experiment -> task -> (mean, std)
TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "baseline-asc": {"asc": (0.7391, 0.0074)},
    "baseline-aec": {"aec": (0.635, 0.0039)},
    "mtl": {"asc": (0.7664, 0.0018), "aec": (0.6663, 0.0102)},
    "mtl-ic": {"asc": (0.7770, 0.0052), "aec": (0.6850, 0.0065)},
    "finetune-asc": {"asc": (0.7944, 0.0038)},
    "finetune-aec": {"aec": (0.7079, 0.0063)},
    "direct-asc": {"asc": (0.7462, 0.0015)},
    "direct-aec": {"aec": (0.6745, 0.0060)},
    "transfer-asc": {"asc": (0.7254, 0.0152)},
    "transfer-aec": {"aec": (0.6117, 0.0101)},
}

# The paper's names for the rows (Table I; §III-E for direct and transfer).
LABELS: dict[str, str] = {
    "baseline-asc": "Baseline model for ASC",
    "baseline-aec": "Baseline model for AEC",
    "mtl": "MTL model",
    "mtl-ic": "MTL model with inter-connections",
    "finetune-asc": "Fine-tuned model for ASC",
    "finetune-aec": "Fine-tuned model for AEC",
    "direct-asc": "Fusion network trained directly on ASC (§III-E)",
    "direct-aec": "Fusion network trained directly on AEC (§III-E)",
    "transfer-asc": "Transfer learning, ESC-50 to ASC (§III-E)",
    "transfer-aec": "Transfer learning, TUT to AEC (§III-E)",
}


@dataclass(frozen=True)
class Table2Figures:
    ensemble: float  # the 24-member late-fusion ensemble
    members: int
    eight_member_mean: float | None  # mean over the nine 8-member ensembles; None: not reported


TABLE2: dict[str, Table2Figures] = {
    "asc": Table2Figures(ensemble=0.845, members=24, eight_member_mean=0.842),
    "aec": Table2Figures(ensemble=0.775, members=24, eight_member_mean=None),
}

# The other systems the paper's Table II lists, per task: (reference, accuracy).
TABLE2_OTHERS: dict[str, list[tuple[str, float]]] = {
    "asc": [
        ("[22] Mun et al., DCASE 2017 winner", 0.833),
        ("[16] Han et al.", 0.804),
        ("[17] Zheng et al.", 0.777),
    ],
    "aec": [("[23] Sailor et al.", 0.865), ("[18] Tak et al.", 0.842), ("[19] Kumar et al.", 0.835)],
}


def table1(experiment: str, task: str) -> tuple[float, float] | None:
    """The paper's (mean, std) for this row and task, or None where the paper has '/'."""
    return TABLE1.get(experiment, {}).get(task)
