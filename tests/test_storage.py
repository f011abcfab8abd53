"""raymtl.storage, the one atomic writer: a file is whole or absent, a failed write leaves the old
file and no temporary behind, and finished files are not overwritten unless asked."""

from __future__ import annotations

import os

import pyarrow.fs as pafs
import pytest

from raymtl import storage


def _listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_temporary_name_is_hidden_beside_the_target_and_recognised():
    tmp = storage.temporary_path("/runs/r/trials/t/result.json")
    folder, name = tmp.rsplit("/", 1)
    assert folder == "/runs/r/trials/t"
    assert name.startswith(".result.json") and storage.is_temporary(name)
    assert not storage.is_temporary("result.json") and not storage.is_temporary(".hidden")
    assert storage.temporary_path("bucket/key") != storage.temporary_path("bucket/other")


def test_every_write_gets_its_own_temporary_name():
    # Two threads (or processes) writing the same file must not write into one temporary file.
    assert len({storage.temporary_path("/x/f") for _ in range(100)}) == 100


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    fs, path = storage.resolve(tmp_path / "a" / "b.json")
    storage.write_json(fs, path, {"x": 1})
    storage.write_json(fs, path, {"x": 2})
    assert storage.read_json(fs, path) == {"x": 2}
    assert _listing(tmp_path / "a") == ["b.json"]


def test_overwrite_false_refuses_and_keeps_the_finished_file(tmp_path):
    fs, path = storage.resolve(tmp_path / "result.json")
    storage.write_text(fs, path, "finished\n", overwrite=False)
    with pytest.raises(FileExistsError):
        storage.write_text(fs, path, "again\n", overwrite=False)
    assert storage.read_bytes(fs, path) == b"finished\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    fs, path = pafs.LocalFileSystem(), str(tmp_path / "scores.parquet")
    storage.write_bytes(fs, path, b"old")
    with pytest.raises(TypeError):
        storage.write_bytes(fs, path, object())  # the stream refuses it after the file is opened
    assert storage.read_bytes(fs, path) == b"old"
    assert _listing(tmp_path) == ["scores.parquet"]


def test_atomic_local_file_is_invisible_until_the_block_ends(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with storage.atomic_local_file(target, fsync=True) as tmp:
        assert tmp.parent == tmp_path and storage.is_temporary(tmp.name)
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # a reader meanwhile sees the old file whole
    assert target.read_bytes() == b"new"
    assert _listing(tmp_path) == ["model.pt"]


def test_atomic_local_file_removes_its_temporary_on_error(tmp_path):
    target = tmp_path / "clip.wav"
    with pytest.raises(RuntimeError, match="encoder failed"):
        with storage.atomic_local_file(target) as tmp:
            tmp.write_bytes(b"half a fi")
            raise RuntimeError("encoder failed")
    assert _listing(tmp_path) == []
