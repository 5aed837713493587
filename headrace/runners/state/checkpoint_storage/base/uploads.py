"""Turning a task's local snapshot files into a :class:`TaskStateHandle` on storage.

Shared files (immutable, such as RocksDB's SST files) are uploaded once: a file
whose local name and size match one in the task's previous handle is referenced,
not uploaded again. Private files (small mutable files such as MANIFEST or
CURRENT, or a memory backend's blobs) are uploaded for every checkpoint; those
under the pack threshold go together into one object, because object stores
pay per request, not per byte.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, Union

from headrace.runners.state.checkpoint_storage.base import layout
from headrace.runners.state.checkpoint_storage.base.metadata import FileRef, TaskStateHandle

if TYPE_CHECKING:
    from headrace.runners.state.checkpoint_storage.base.storage import CheckpointStorage

LocalFile = Union[str, "os.PathLike[str]", bytes]
_CHUNK = 1 << 20


def sha256_of_file(path: Union[str, "os.PathLike[str]"]) -> Tuple[str, int]:
    """The hex SHA-256 and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def check_name(name: str, operator_id: str) -> None:
    """Local names are relative paths below the directory a restore writes into."""
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or ".." in parts:
        raise ValueError(f"operator {operator_id!r}: state file name {name!r} must be a "
                         f"relative path without '..'")


def upload_task_files(storage: "CheckpointStorage", files_pool: Executor, checkpoint_id: int,
                      operator_id: str, subtask_index: int, *,
                      shared_files: Mapping[str, LocalFile], private_files: Mapping[str, LocalFile],
                      previous: Optional[TaskStateHandle], position: Any,
                      info: Mapping[str, Any], self_contained: bool) -> TaskStateHandle:
    """Upload what is new and return the task's handle (runs on a storage thread)."""
    for name in list(shared_files) + list(private_files):
        check_name(name, operator_id)
    overlap = set(shared_files) & set(private_files)
    if overlap:
        raise ValueError(f"operator {operator_id!r}: {sorted(overlap)} given both as shared "
                         f"and as private files")
    refs: Dict[str, FileRef] = {}
    pending: List[Tuple[str, "Future[FileRef]"]] = []
    old = dict(previous.files) if previous is not None and not self_contained else {}
    for name, local in shared_files.items():
        if isinstance(local, bytes):
            raise TypeError(f"operator {operator_id!r}: shared file {name!r} must be a path "
                            f"(immutable files are uploaded from disk)")
        prior = old.get(name)
        if prior is not None and prior.shared and prior.size == os.path.getsize(local):
            refs[name] = prior
            continue
        key = (layout.private_key(checkpoint_id, operator_id, subtask_index, name)
               if self_contained else layout.shared_key(checkpoint_id, name))
        pending.append((name, files_pool.submit(_upload_path, storage, key, local, checkpoint_id)))
    packed: Dict[str, bytes] = {}
    for name, local in private_files.items():
        size = len(local) if isinstance(local, bytes) else os.path.getsize(local)
        if size <= storage.pack_threshold:
            packed[name] = local if isinstance(local, bytes) else Path(local).read_bytes()
            continue
        key = layout.private_key(checkpoint_id, operator_id, subtask_index, name)
        pending.append((name, files_pool.submit(_upload_any, storage, key, local, checkpoint_id)))
    if packed:
        refs.update(_upload_pack(storage, checkpoint_id, operator_id, subtask_index, packed))
    for name, future in pending:
        refs[name] = future.result()
    return TaskStateHandle(operator_id, subtask_index, files=refs, position=position,
                           info=dict(info))


def _upload_path(storage: "CheckpointStorage", key: str, path: Union[str, "os.PathLike[str]"],
                 checkpoint_id: int) -> FileRef:
    sha256, size = sha256_of_file(path)
    storage._write_file(key, Path(path))
    return FileRef(key=key, size=size, sha256=sha256, checkpoint_id=checkpoint_id)


def _upload_any(storage: "CheckpointStorage", key: str, local: LocalFile,
                checkpoint_id: int) -> FileRef:
    if not isinstance(local, bytes):
        return _upload_path(storage, key, local, checkpoint_id)
    storage._write_bytes(key, local)
    return FileRef(key=key, size=len(local), sha256=hashlib.sha256(local).hexdigest(),
                   checkpoint_id=checkpoint_id)


def _upload_pack(storage: "CheckpointStorage", checkpoint_id: int, operator_id: str,
                 subtask_index: int, packed: Mapping[str, bytes]) -> Dict[str, FileRef]:
    """One object holding the small files back to back; each ref is a slice of it."""
    key = layout.pack_key(checkpoint_id, operator_id, subtask_index)
    refs: Dict[str, FileRef] = {}
    offset = 0
    for name in sorted(packed):
        data = packed[name]
        refs[name] = FileRef(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                             checkpoint_id=checkpoint_id, offset=offset)
        offset += len(data)
    storage._write_bytes(key, b"".join(packed[name] for name in sorted(packed)))
    return refs
