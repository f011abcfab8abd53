"""ESC-50 and TUT 2017 layout parsing, including the real published metadata formats."""

from __future__ import annotations

import os
import shutil
from collections import Counter

import pytest

from raymtl.data.classes import ESC10_TARGETS, ESC50_CLASSES
from raymtl.data.esc50 import parse_esc50
from raymtl.data.tut2017 import parse_tut2017
from raymtl.errors import ConfigError, LayoutError
from tests.conftest import REAL, REFERENCE_META, require_shared
from tests.data.layout_builders import ESC_HEADER, make_esc, make_tut


def _real_esc10(tmp_path):
    """The real ESC-10 clips (Ogg) with their real `meta/esc50.csv` rows, in the ESC-50 layout."""
    src = require_shared(REAL / "esc10")
    root = tmp_path / "esc10"
    (root / "meta").mkdir(parents=True)
    shutil.copy(src / "esc50_format_meta.csv", root / "meta" / "esc50.csv")
    os.symlink(src / "ogg", root / "audio")
    return root


def test_parse_esc50_reads_real_metadata_and_ogg_audio(tmp_path):
    layout = parse_esc50(_real_esc10(tmp_path))
    assert len(layout.clips) == 400 and not layout.rejects
    assert Counter(c.fold for c in layout.clips) == {1: 80, 2: 80, 3: 80, 4: 80, 5: 80}
    # The class list comes from the metadata: the 10 ESC-10 classes in target order.
    assert layout.classes == tuple(ESC50_CLASSES[t] for t in sorted(ESC10_TARGETS))
    assert Counter(c.label for c in layout.clips) == {i: 40 for i in range(10)}
    dog = next(c for c in layout.clips if c.clip == "1-100032-A-0.wav")
    assert (dog.fold, dog.class_name, dog.label, dog.source) == (1, "dog", 0, "100032")
    assert dog.path.endswith("1-100032-A-0.ogg")  # listed as .wav, found as .ogg


def test_parse_esc50_reads_the_old_header(tmp_path):
    """The excerpt from the older revision names the integer target `category`."""
    src = require_shared(REFERENCE_META / "esc50" / "esc50_csv_excerpt_karolpiczak_7a6760a.csv")
    lines = src.read_text().splitlines()
    assert lines[0].startswith("filename,fold,category,category_name")
    root = tmp_path / "esc"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    for line in lines[1:]:
        name = line.split(",")[0]
        (root / "audio").mkdir(exist_ok=True)
        shutil.copy(REAL / "esc10" / "wav_fold5" / "5-151085-A-20.wav", root / "audio" / name)
    layout = parse_esc50(root)
    assert len(layout.clips) == len(lines) - 1 and not layout.rejects
    assert layout.clips[0].class_name == "dog" and layout.clips[0].label == 0


def test_parse_esc50_esc10_subset_keeps_ten_classes(tmp_path):
    root = make_esc(tmp_path / "esc", targets=(0, 2, 10), folds=(1,))
    # target 2 (pig) is not in ESC-10: its row says esc10=True in make_esc, so mark it False.
    meta = root / "meta" / "esc50.csv"
    meta.write_text(meta.read_text().replace("2,pig,True", "2,pig,False"))
    full, sub = parse_esc50(root), parse_esc50(root, subset="esc10")
    assert full.classes == ("dog", "pig", "rain")
    assert sub.classes == ("dog", "rain")
    assert [c.label for c in sub.clips] == [0, 1]


def test_parse_esc50_rejects_bad_rows_with_reasons(tmp_path):
    root = make_esc(
        tmp_path / "esc",
        targets=(0,),
        folds=(1, 2),
        extra_rows=[
            "1-1000-A-0.wav,1,0,dog,True,1000,A",  # duplicate of the first row
            "1-2000-A-7.wav,1,7,unicorn,False,2000,A",  # unknown class
            "9-3000-A-0.wav,9,0,dog,True,3000,A",  # fold out of range
            "2-4000-A-0.wav,2,0,dog,True,4000,A",  # no audio file
        ],
    )
    layout = parse_esc50(root)
    reasons = {os.path.basename(r.file): r.reason for r in layout.rejects}
    assert len(layout.clips) == 2
    assert reasons["1-1000-A-0.wav"].startswith("duplicate file (first listed on line 2)")
    assert reasons["1-2000-A-7.wav"].startswith("unknown class")
    assert "fold '9' out of range 1..5" in reasons["9-3000-A-0.wav"]
    assert reasons["2-4000-A-0.wav"].startswith("missing audio file")


def test_parse_esc50_bad_folder_and_header_raise(tmp_path):
    with pytest.raises(LayoutError, match="esc50.csv"):
        parse_esc50(tmp_path)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text("name,label\n")
    with pytest.raises(LayoutError, match="unexpected header"):
        parse_esc50(tmp_path)
    with pytest.raises(ConfigError, match="esc10"):
        parse_esc50(tmp_path, subset="esc20")


def test_parse_tut2017_folds_sources_and_labels(tmp_path):
    dev, evl = make_tut(tmp_path / "dev", tmp_path / "eval", scenes=(0, 2), per_fold=2, n_eval=2)
    layout = parse_tut2017(dev, evl)
    assert layout.classes == ("beach", "cafe/restaurant")  # from the metadata, published order
    devs = [c for c in layout.clips if c.subset == "dev"]
    evals = [c for c in layout.clips if c.subset == "eval"]
    assert len(devs) == 16 and len(evals) == 4
    assert Counter(c.fold for c in devs) == {1: 4, 2: 4, 3: 4, 4: 4}
    assert all(c.fold is None for c in evals)
    c = next(c for c in devs if c.clip == "audio/a1020_0_10.wav")
    assert (c.source, c.class_name, c.label, c.fold) == ("a1020", "cafe/restaurant", 1, 1)
    assert {c.source for c in evals} == {"1", "2", "21", "22"}  # 2-column eval meta: the stem


def test_parse_tut2017_rejects_bad_rows(tmp_path):
    dev, evl = make_tut(tmp_path / "dev", tmp_path / "eval", scenes=(0,))
    meta = dev / "meta.txt"
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join(lines + [lines[0], "audio/x_0_10.wav\tspaceship\tx"]) + "\n")
    (evl / "meta.txt").write_text((evl / "meta.txt").read_text() + "audio/99.wav\tbeach\n")
    layout = parse_tut2017(dev, evl)
    reasons = sorted(r.reason.split(" (")[0].split(" '")[0] for r in layout.rejects)
    assert reasons == ["duplicate file", "missing audio file audio/99.wav", "unknown class"]


def test_parse_tut2017_checks_fold_files_against_each_other(tmp_path):
    dev, evl = make_tut(tmp_path / "dev", tmp_path / "eval", scenes=(0, 1))
    train = dev / "evaluation_setup" / "fold2_train.txt"
    train.write_text("".join(train.read_text().splitlines(keepends=True)[1:]))  # drop one clip
    with pytest.raises(LayoutError, match="fold2_train.txt.*1 missing"):
        parse_tut2017(dev, evl)
    (dev / "evaluation_setup" / "fold3_evaluate.txt").unlink()
    with pytest.raises(LayoutError, match="fold3_evaluate.txt"):
        parse_tut2017(dev, evl)


def test_parse_tut2017_reads_crlf_and_the_reference_fold_format(tmp_path):
    """Fold files with CRLF line ends (as the DCASE fixtures ship) parse the same."""
    ref = require_shared(
        REFERENCE_META / "tau2019-format-soundata-fixture" / "evaluation_setup" / "fold1_train.csv"
    )
    assert b"\r\n" in ref.read_bytes()
    dev, evl = make_tut(tmp_path / "dev", tmp_path / "eval", scenes=(0, 1))
    for f in (dev / "evaluation_setup").iterdir():
        f.write_bytes(f.read_bytes().replace(b"\n", b"\r\n"))
    (dev / "meta.txt").write_bytes((dev / "meta.txt").read_bytes().replace(b"\n", b"\r\n"))
    layout = parse_tut2017(dev, evl)
    assert len([c for c in layout.clips if c.subset == "dev"]) == 8 and not layout.rejects


def test_esc_header_constant_matches_the_real_file():
    real = require_shared(REAL / "esc10" / "esc50_format_meta.csv").read_text().splitlines()[0]
    assert real == ESC_HEADER
