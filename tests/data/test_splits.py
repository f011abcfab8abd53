"""The four divisions: sizes the real datasets give, disjointness, and the vectorised mask."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from raymtl.data.splits import DIVISIONS, SPLITS, esc_validation_fold, split_mask, split_of
from raymtl.errors import ConfigError

# The real datasets' shapes: ESC-50 has 400 clips in each of 5 folds; TUT 2017 development has
# 4680 segments in 4 folds (sizes come from the fold files; 1170 each here) and the evaluation
# set 1620.
ESC = [("esc50", "dev", fold) for fold in range(1, 6) for _ in range(400)]
TUT_FOLD_SIZES = {1: 1170, 2: 1170, 3: 1170, 4: 1170}
TUT = [("tut2017", "dev", k) for k, n in TUT_FOLD_SIZES.items() for _ in range(n)]
TUT += [("tut2017", "eval", None)] * 1620


@pytest.mark.parametrize("division", DIVISIONS)
def test_division_sizes_match_the_paper(division):
    esc = Counter(split_of(d, s, f, division) for d, s, f in ESC)
    assert esc == {"train": 1200, "validation": 400, "test": 400}
    tut = Counter(split_of(d, s, f, division) for d, s, f in TUT)
    assert tut == {"train": 3510, "validation": 1170, "test": 1620}


def test_esc_folds_per_division():
    # test = fold k, validation = fold k+1 (fold 1 after fold 4... only 4 divisions are used)
    assert [esc_validation_fold(k) for k in DIVISIONS] == [2, 3, 4, 5]
    for k in DIVISIONS:
        by_fold = {f: split_of("esc50", "dev", f, k) for f in range(1, 6)}
        assert by_fold[k] == "test" and by_fold[k % 5 + 1] == "validation"
        assert sorted(f for f, s in by_fold.items() if s == "train") == sorted(
            set(range(1, 6)) - {k, k % 5 + 1}
        )


def test_every_test_esc_clip_is_tested_in_exactly_one_division():
    for fold in range(1, 5):
        assert [split_of("esc50", "dev", fold, k) for k in DIVISIONS].count("test") == 1
    assert all(split_of("esc50", "dev", 5, k) != "test" for k in DIVISIONS)


@pytest.mark.parametrize("division", DIVISIONS)
def test_split_mask_agrees_with_split_of_and_partitions(division):
    rows = ESC[::50] + TUT[::50]
    batch = {
        "dataset": np.array([r[0] for r in rows]),
        "subset": np.array([r[1] for r in rows]),
        "fold": np.array([np.nan if r[2] is None else r[2] for r in rows]),
    }
    for dataset in ("esc50", "tut2017"):
        masks = {s: split_mask(batch, dataset, s, division) for s in SPLITS}
        total = sum(m.astype(int) for m in masks.values())
        assert (total == (batch["dataset"] == dataset)).all()  # disjoint and complete
        for s, m in masks.items():
            expected = [r[0] == dataset and split_of(*r, division) == s for r in rows]
            assert m.tolist() == expected


def test_bad_division_and_split_raise():
    with pytest.raises(ConfigError, match="division"):
        split_of("esc50", "dev", 1, 5)
    with pytest.raises(ConfigError, match="split"):
        split_mask({"dataset": [], "subset": [], "fold": []}, "esc50", "dev", 1)
