"""Self-contained copies of a checkpoint: what a savepoint is made of.

Every file the checkpoint references (shared or its own) is copied into the
target's ``chk-N/`` and checked on the way; the copy's metadata is committed
as a savepoint, which retention never deletes.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List

from headrace.runners.state.checkpoint_storage.base import layout
from headrace.runners.state.checkpoint_storage.base.metadata import (
    SAVEPOINT,
    CheckpointMetadata,
    FileRef,
    TaskStateHandle,
)
from headrace.runners.state.checkpoint_storage.base.restore import download_checked, read_slice

if TYPE_CHECKING:
    from headrace.runners.state.checkpoint_storage.base.storage import CheckpointStorage


def copy_self_contained(source: "CheckpointStorage", meta: CheckpointMetadata,
                        target: "CheckpointStorage") -> CheckpointMetadata:
    """Copy ``meta``'s files from ``source`` into ``target`` and commit them as a savepoint."""
    n = meta.checkpoint_id
    new_keys: Dict[str, str] = {}
    refs_by_key: Dict[str, List[FileRef]] = {}
    for ref in meta.file_refs():
        new_keys.setdefault(ref.key, layout.checkpoint_prefix(n) + ref.key.split("/", 1)[1])
        refs_by_key.setdefault(ref.key, []).append(ref)
    _, files = source._executors()
    with tempfile.TemporaryDirectory(prefix="headrace-savepoint-") as tmp:
        futures = [files.submit(_copy_one, source, target, refs, new_keys[key], Path(tmp))
                   for key, refs in refs_by_key.items()]
        for future in futures:
            future.result()
    tasks = [TaskStateHandle(task.operator_id, task.subtask_index,
                             files={name: FileRef(new_keys[ref.key], ref.size, ref.sha256, n,
                                                  ref.offset)
                                    for name, ref in task.files.items()},
                             position=task.position, info=task.info)
             for task in meta.tasks]
    copy = CheckpointMetadata(n, tasks, job_id=meta.job_id, timestamp=meta.timestamp,
                              kind=SAVEPOINT, properties=meta.properties)
    target.commit(copy, cleanup=False)
    return copy


def _copy_one(source: "CheckpointStorage", target: "CheckpointStorage", refs: List[FileRef],
              new_key: str, tmp: Path) -> None:
    if refs[0].offset is not None:
        packs: Dict[str, bytes] = {}
        for ref in refs:
            read_slice(source, ref, packs)
        target._write_bytes(new_key, packs[refs[0].key])
        return
    path = tmp / new_key.replace("/", "_")
    download_checked(source, refs[0], path)
    target._write_file(new_key, path)
    path.unlink()
