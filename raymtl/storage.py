"""File access through pyarrow file systems, so FEATURES and RUN folders can be local, NFS or S3.

The one atomic writer of the project: every file raymtl writes is first written under a
temporary name beside the target (`temporary_path`), then renamed onto it, so a reader sees the
whole file or none, and an interrupted write leaves at most a hidden temporary file. `write_bytes`
(and `write_text`, `write_json`) do it through any pyarrow file system; `atomic_local_file` does it
for the writers that need a local file name of their own (soundfile, torch.save, torch.jit.save,
the ONNX exporter). Nothing here overwrites a finished result unless the caller asks.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

import pyarrow.fs as pafs

TEMPORARY_MARK = ".tmp-"  # in every temporary name: ".<name>.tmp-<pid>-<random>"


def resolve(uri: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(file system, path inside it). Plain paths are local and made absolute."""
    uri = os.fspath(uri)
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def absolute(uri: str | os.PathLike) -> str:
    """A URI as every Ray process can read it: local paths made absolute (Tune trials and Train
    workers run in other working directories), remote URIs (s3://...) unchanged."""
    uri = os.fspath(uri)
    return uri if "://" in uri else os.path.abspath(uri)


def uri_of(base: str, path: str) -> str:
    """`path` (as `resolve(base)` gives paths inside its file system) as a URI a reader can
    resolve again: `s3://bucket/key` for a remote base, the path itself for a local one. A bare
    `bucket/key` would be read as a local relative path."""
    base = os.fspath(base)
    if "://" not in base:
        return path
    scheme = base.split("://", 1)[0] + "://"
    return path if path.startswith(scheme) else scheme + path.lstrip("/")


def join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts if p)


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_file(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type == pafs.FileType.File


def temporary_path(path: str) -> str:
    """The name `path` is written under before its rename: in the same folder (a rename within
    one file system), hidden (a leading dot: pyarrow datasets, Ray Data and the RUN readers skip
    it) and new at every call, so concurrent writers (processes, threads) never share one."""
    parent, sep, name = path.rpartition("/")
    return f"{parent}{sep}.{name}{TEMPORARY_MARK}{os.getpid()}-{secrets.token_hex(4)}"


def is_temporary(name: str) -> bool:
    """Whether a file name is one of `temporary_path`'s: left behind by an interrupted write."""
    return name.startswith(".") and TEMPORARY_MARK in name


def write_bytes(fs: pafs.FileSystem, path: str, data: bytes, *, overwrite: bool = True) -> None:
    """Atomic write; with overwrite=False an existing file raises FileExistsError. A failed write
    removes its temporary file and leaves `path` as it was."""
    if not overwrite and exists(fs, path):
        raise FileExistsError(path)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.create_dir(parent, recursive=True)
    tmp = temporary_path(path)
    try:
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, path)
    except BaseException:
        if is_file(fs, tmp):
            fs.delete_file(tmp)
        raise


@contextlib.contextmanager
def atomic_local_file(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside the local file `path`, for a writer that needs a file name:

        with storage.atomic_local_file(out) as tmp:
            torch.jit.save(module, str(tmp))

    When the block ends without an error the file is renamed onto `path` (os.replace: atomic
    on one file system; an existing `path` is replaced, so callers refuse first where they must);
    otherwise it is removed and `path` is left as it was. `fsync` flushes the data to disk before
    the rename, so a crash cannot leave a renamed but empty file (model checkpoints).
    """
    path = Path(path)
    tmp = Path(temporary_path(str(path)))
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def move_dir(fs: pafs.FileSystem, src: str, dst: str) -> None:
    """Rename a folder. An object store (S3) has no rename of a prefix: there every file is
    copied, then the source deleted (not atomic: readers wait for the files the folder promises)."""
    if isinstance(fs, pafs.LocalFileSystem):
        fs.move(src, dst)
        return
    pafs.copy_files(src, dst, source_filesystem=fs, destination_filesystem=fs)
    fs.delete_dir(src)


def write_text(fs: pafs.FileSystem, path: str, text: str, *, overwrite: bool = True) -> None:
    write_bytes(fs, path, text.encode("utf-8"), overwrite=overwrite)


def write_json(fs: pafs.FileSystem, path: str, obj: Any, *, overwrite: bool = True) -> None:
    write_text(fs, path, json.dumps(obj, indent=2, sort_keys=False) + "\n", overwrite=overwrite)


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()


def read_json(fs: pafs.FileSystem, path: str) -> Any:
    return json.loads(read_bytes(fs, path).decode("utf-8"))


def delete_dir(fs: pafs.FileSystem, path: str) -> None:
    if exists(fs, path):
        fs.delete_dir(path)


def total_bytes(fs: pafs.FileSystem, path: str, suffix: str = "") -> int:
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return sum(i.size or 0 for i in infos if i.type == pafs.FileType.File and i.path.endswith(suffix))
