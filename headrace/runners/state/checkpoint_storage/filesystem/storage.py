"""Checkpoint storage in a local (or mounted shared) directory.

Every object is written to a temporary name in its directory, fsynced and
renamed into place, so readers never see a partial file. The commit's
write-if-absent is a hard link from the temporary file: ``link`` fails if the
name exists, so of two writers of the same ``_metadata`` exactly one wins.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as root:
...     storage = FilesystemCheckpointStorage(root)
...     first = storage._write_if_absent("chk-1/_metadata", b"a")
...     first, storage._write_if_absent("chk-1/_metadata", b"b")
(True, False)
"""
from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator, List, Tuple

from headrace.runners.state.checkpoint_storage.base import CheckpointStorage, layout
from headrace.runners.state.checkpoint_storage.base.errors import CheckpointStorageConfigError

_TMP = ".tmp-"


class FilesystemCheckpointStorage(CheckpointStorage):
    """Checkpoints under a local directory (created if missing; must be writable)."""

    def __init__(self, path: "str | os.PathLike[str]", **kwargs: Any) -> None:
        root = Path(os.path.expanduser(os.fspath(path))).absolute()
        super().__init__(str(root), **kwargs)
        self.root = root
        self._check_writable()

    def _check_writable(self) -> None:
        where = f"--checkpoint_dir {self.root}"
        if self.root.exists() and not self.root.is_dir():
            raise CheckpointStorageConfigError(f"{where}: exists and is not a directory")
        if self.read_only:
            if not self.root.is_dir():
                raise CheckpointStorageConfigError(f"{where}: no such directory")
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f"{_TMP}probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            linked = probe.with_name(probe.name + "-link")
            os.link(probe, linked)
            os.unlink(linked)
            os.unlink(probe)
        except OSError as exc:
            raise CheckpointStorageConfigError(
                f"{where}: not a writable directory that supports hard links "
                f"(needed for atomic commits): {exc.strerror or exc}") from None

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _temp_for(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.with_name(f"{_TMP}{uuid.uuid4().hex}-{path.name}")

    def _write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._temp_for(path)
        _write_synced(tmp, data)
        os.replace(tmp, path)

    def _write_file(self, key: str, path: Path) -> None:
        final = self._path(key)
        tmp = self._temp_for(final)
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, final)

    def _write_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        tmp = self._temp_for(path)
        _write_synced(tmp, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        _fsync_dir(path.parent)
        return True

    def _read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def _read_to_file(self, key: str, path: Path) -> None:
        shutil.copyfile(self._path(key), path)

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _list(self, prefix: str) -> Iterator[Tuple[str, int]]:
        head, _, rest = prefix.rpartition("/")
        directory = self._path(head) if head else self.root
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return
        base = f"{head}/" if head else ""
        for entry in sorted(entries, key=lambda e: e.name):
            if not entry.name.startswith(rest) or entry.name.startswith(_TMP):
                continue
            key = base + entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._list(key + "/")
            else:
                try:
                    yield key, entry.stat().st_size
                except FileNotFoundError:
                    continue

    def _delete(self, keys: List[str]) -> None:
        parents = set()
        for key in keys:
            path = self._path(key)
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            parents.add(path.parent)
        for parent in sorted(parents, reverse=True):
            # shared/ stays: uploads in flight may be writing into it.
            if parent.parent == self.root and parent.name.startswith(layout.CHECKPOINT_PREFIX):
                _remove_if_empty(parent)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_if_empty(directory: Path) -> None:
    """Remove a checkpoint directory once empty, with any temporary files a crash left."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    if all(name.startswith(_TMP) for name in names):
        for name in names:
            try:
                os.unlink(directory / name)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(directory)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
                raise
