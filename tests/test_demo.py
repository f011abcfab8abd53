"""The demo's closing words: its figures against chance and its members, said from the summary."""

from __future__ import annotations

from raymtl.demo import closing_note
from raymtl.run.records import EnsembleSummary, MemberAccuracy, TaskSummary


def _task(ensemble: float, member: float, n_classes: int) -> TaskSummary:
    return TaskSummary(
        n_planned=4,
        n_members=4,
        members=(),
        missing=(),
        missing_reasons={},
        ensemble_accuracy=ensemble,
        n_recordings=30,
        n_patches=300,
        n_classes=n_classes,
        member_accuracy=MemberAccuracy(member, 0.1, 4, {}),
        table1={},
        eight_member={},
        by_size=(),
    )


def test_the_closing_note_says_what_the_figures_show():
    summary = EnsembleSummary(
        {}, False, "", "", 0, {"asc": _task(0.7333, 0.4583, 15), "aec": _task(0.5, 0.6, 50)}
    )
    lines = closing_note(summary).splitlines()
    assert (
        lines[1] == "  ASC: the 4-member ensemble 73.3 %, its single members 45.8 % on average, chance 6.7 %."
    )
    assert (
        lines[2] == "  AEC: the 4-member ensemble 50.0 %, its single members 60.0 % on average, chance 2.0 %."
    )
    assert lines[3] == "  Fusing the members beats them on ASC, as the paper reports (§III-F)."
    assert lines[4] == "  On AEC the ensemble did not beat its members' mean this time."
    assert "docs/reproduce.md" in lines[-2] and lines[-1].strip().startswith("raymtl featurize")
