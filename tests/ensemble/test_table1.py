"""Paper Table I's statistic (raymtl.ensemble.table1) on hand-made accuracies."""

from __future__ import annotations

import pytest

from raymtl.ensemble.table1 import ALL, table1


def test_mean_over_repeats_of_the_mean_over_divisions_per_variant_and_all():
    acc = [
        # (repeat, variant, accuracy): two divisions each
        (1, "triple", 0.5),
        (1, "triple", 0.7),  # repeat 1 triple: 0.6
        (2, "triple", 0.8),
        (2, "triple", 0.8),  # repeat 2 triple: 0.8
        (1, "quadruple", 0.4),
        (1, "quadruple", 0.6),  # repeat 1 quadruple: 0.5
        (2, "quadruple", 0.9),
        (2, "quadruple", None),  # a missing trial is left out
    ]
    cells = table1(acc, ["triple", "quadruple"])
    assert list(cells) == ["triple", "quadruple", ALL]
    triple = cells["triple"]
    assert triple.per_repeat == pytest.approx({1: 0.6, 2: 0.8})
    assert triple.mean == pytest.approx(0.7) and triple.std == pytest.approx(0.1)  # population std
    assert (triple.n_repeats, triple.n_trials) == (2, 4)
    assert cells["quadruple"].per_repeat == pytest.approx({1: 0.5, 2: 0.9})
    both = cells[ALL]  # repeat 1: (0.5+0.7+0.4+0.6)/4 = 0.55; repeat 2: (0.8+0.8+0.9)/3
    assert both.per_repeat == pytest.approx({1: 0.55, 2: 2.5 / 3})
    assert both.mean == pytest.approx((0.55 + 2.5 / 3) / 2) and both.n_trials == 7


def test_a_variant_without_trials_has_no_figure():
    cells = table1([(1, "triple", 0.5)], ["triple", "quadruple"])
    assert cells["quadruple"].mean is None and cells["quadruple"].n_repeats == 0
    assert cells[ALL].mean == 0.5 and cells[ALL].std == 0.0
