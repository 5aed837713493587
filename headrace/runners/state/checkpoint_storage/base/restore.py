"""Reading a task's files back, each checked against the size and SHA-256 in its reference,
so that a truncated, corrupted or missing file is reported (naming it) instead of restored."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Dict

from headrace.runners.state.checkpoint_storage.base.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
)
from headrace.runners.state.checkpoint_storage.base.metadata import FileRef, TaskStateHandle
from headrace.runners.state.checkpoint_storage.base.uploads import sha256_of_file

if TYPE_CHECKING:
    from headrace.runners.state.checkpoint_storage.base.storage import CheckpointStorage


def download_task_state(storage: "CheckpointStorage", task: TaskStateHandle,
                        target: Path) -> Dict[str, Path]:
    """Write the task's files under ``target``; whole files in parallel, packs once each."""
    packs: Dict[str, bytes] = {}
    paths: Dict[str, Path] = {}
    _, files = storage._executors()
    pending = []
    for name, ref in sorted(task.files.items()):
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        paths[name] = path
        if ref.offset is not None:
            path.write_bytes(read_slice(storage, ref, packs))
        else:
            pending.append(files.submit(download_checked, storage, ref, path))
    for future in pending:
        future.result()
    return paths


def read_task_file(storage: "CheckpointStorage", task: TaskStateHandle, name: str) -> bytes:
    try:
        ref = task.files[name]
    except KeyError:
        raise CheckpointNotFoundError(
            f"{storage.url}: operator {task.operator_id!r} subtask {task.subtask_index} "
            f"stored no file {name!r}") from None
    if ref.offset is not None:
        return read_slice(storage, ref, {})
    data = _read(storage, ref)
    _verify(storage, ref, data)
    return data


def read_slice(storage: "CheckpointStorage", ref: FileRef, packs: Dict[str, bytes]) -> bytes:
    """A packed file's bytes (``packs`` caches whole packs by key)."""
    if ref.key not in packs:
        packs[ref.key] = _read(storage, ref)
    start = ref.offset or 0
    data = packs[ref.key][start:start + ref.size]
    _verify(storage, ref, data)
    return data


def download_checked(storage: "CheckpointStorage", ref: FileRef, path: Path) -> None:
    """Copy a whole-file reference to ``path`` and check it."""
    try:
        storage._read_to_file(ref.key, path)
    except FileNotFoundError:
        raise CorruptCheckpointError(
            f"{storage.url}: checkpoint file {ref.key} is missing") from None
    sha256, size = sha256_of_file(path)
    if (sha256, size) != (ref.sha256, ref.size):
        raise CorruptCheckpointError(
            f"{storage.url}: checkpoint file {ref.key} is corrupt ({size} bytes, expected "
            f"{ref.size}; checksum {'ok' if sha256 == ref.sha256 else 'mismatch'})")


def _read(storage: "CheckpointStorage", ref: FileRef) -> bytes:
    try:
        return storage._read_bytes(ref.key)
    except FileNotFoundError:
        raise CorruptCheckpointError(
            f"{storage.url}: checkpoint file {ref.key} is missing") from None


def _verify(storage: "CheckpointStorage", ref: FileRef, data: bytes) -> None:
    if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
        where = ref.key if ref.offset is None else f"{ref.key} at offset {ref.offset}"
        raise CorruptCheckpointError(
            f"{storage.url}: checkpoint file {where} is corrupt ({len(data)} bytes, expected "
            f"{ref.size}, or checksum mismatch)")
