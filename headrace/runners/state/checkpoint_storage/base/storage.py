"""The checkpoint storage interface: the protocol over a few object-store primitives.

Subclasses (``filesystem/``, ``s3/``) implement the primitives (write an object,
write one only if absent, read, list, delete); everything else (incremental
uploads, the atomic commit, retention, restore) is written once here, so both
storages behave the same.

The runtime's use, per checkpoint N:

1. each task, after its synchronous snapshot, calls :meth:`~CheckpointStorage.upload_task_state`
   (asynchronous: a future) with its previous handle, and acknowledges with the handle;
2. the coordinator builds a :class:`CheckpointMetadata` from all handles and calls
   :meth:`~CheckpointStorage.commit`: N is complete exactly when its ``_metadata`` exists;
   the commit then deletes what retention no longer needs;
3. a checkpoint that fails before its commit is dropped with :meth:`~CheckpointStorage.discard`;
4. on restore, :meth:`~CheckpointStorage.latest` and :meth:`~CheckpointStorage.download_task_state`.

Commits and cleanups come from one coordinator at a time; uploads from any process.
"""
from __future__ import annotations

import abc
import os
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

from headrace.runners.state.checkpoint_storage.base import layout, restore
from headrace.runners.state.checkpoint_storage.base.errors import (
    CheckpointAlreadyExistsError,
    CheckpointNotFoundError,
    CheckpointStorageConfigError,
    CheckpointStorageError,
    CorruptCheckpointError,
)
from headrace.runners.state.checkpoint_storage.base.metadata import (
    CHECKPOINT,
    SAVEPOINT,
    CheckpointMetadata,
    TaskStateHandle,
)
from headrace.runners.state.checkpoint_storage.base.retention import (
    CleanupReport,
    Scan,
    plan_cleanup,
)
from headrace.runners.state.checkpoint_storage.base.uploads import LocalFile, upload_task_files

DEFAULT_RETAINED = 3
DEFAULT_PACK_THRESHOLD = 1 << 20


class CheckpointStorage(abc.ABC):
    """Checkpoints of one job under one root (``--checkpoint_dir``).

    ``retained`` complete checkpoints are kept (``--checkpoints_retained``);
    private files up to ``pack_threshold`` bytes are packed per task;
    ``upload_threads`` files are uploaded at once. ``read_only`` opens existing storage
    for inspection (nothing is created).
    """

    def __init__(self, url: str, *, retained: int = DEFAULT_RETAINED,
                 pack_threshold: int = DEFAULT_PACK_THRESHOLD, upload_threads: int = 4,
                 read_only: bool = False) -> None:
        if retained < 1:
            raise CheckpointStorageConfigError(
                f"--checkpoints_retained must be at least 1, got {retained}")
        self.url = url
        self.retained = retained
        self.pack_threshold = pack_threshold
        self.upload_threads = upload_threads
        self.read_only = read_only
        self._metadata_cache: Dict[int, Tuple[int, CheckpointMetadata]] = {}
        self._init_transient()

    def _init_transient(self) -> None:
        self._lock = threading.Lock()
        self._pools: Optional[Tuple[int, ThreadPoolExecutor, ThreadPoolExecutor]] = None

    # Storage objects travel to worker processes (pickled or forked): thread pools and
    # clients are made again, lazily, in each process.
    _TRANSIENT = ("_lock", "_pools")

    def __getstate__(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_transient()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, retained={self.retained})"

    # -- primitives -------------------------------------------------------------------------
    @abc.abstractmethod
    def _write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` (readers never see a partial object)."""

    @abc.abstractmethod
    def _write_file(self, key: str, path: Path) -> None:
        """Store a local file at ``key`` (large files in parts where the store has them)."""

    @abc.abstractmethod
    def _write_if_absent(self, key: str, data: bytes) -> bool:
        """Atomically create ``key``; False (and nothing written) if it exists."""

    @abc.abstractmethod
    def _read_bytes(self, key: str) -> bytes:
        """The object's bytes; :class:`FileNotFoundError` if it does not exist."""

    @abc.abstractmethod
    def _read_to_file(self, key: str, path: Path) -> None:
        """Copy the object to a local file; :class:`FileNotFoundError` if it does not exist."""

    @abc.abstractmethod
    def _exists(self, key: str) -> bool:
        """Whether the object exists."""

    @abc.abstractmethod
    def _list(self, prefix: str) -> Iterator[Tuple[str, int]]:
        """``(key, size)`` of every object whose key starts with ``prefix``."""

    @abc.abstractmethod
    def _delete(self, keys: List[str]) -> None:
        """Delete objects; missing ones are not an error."""

    # -- threads ----------------------------------------------------------------------------
    def _executors(self) -> Tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
        """(task pool, file pool): a task's upload waits on its files, so they are apart."""
        with self._lock:
            if self._pools is None or self._pools[0] != os.getpid():
                self._pools = (os.getpid(),
                               ThreadPoolExecutor(2, thread_name_prefix="checkpoint-task"),
                               ThreadPoolExecutor(self.upload_threads,
                                                  thread_name_prefix="checkpoint-upload"))
            return self._pools[1], self._pools[2]

    def close(self) -> None:
        """Wait for running uploads and stop the upload threads."""
        with self._lock:
            pools, self._pools = self._pools, None
        if pools is not None and pools[0] == os.getpid():
            pools[1].shutdown(wait=True)
            pools[2].shutdown(wait=True)

    def __enter__(self) -> "CheckpointStorage":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- writing a checkpoint ---------------------------------------------------------------
    def upload_task_state(self, checkpoint_id: int, operator_id: str, subtask_index: int, *,
                          shared_files: Optional[Mapping[str, LocalFile]] = None,
                          private_files: Optional[Mapping[str, LocalFile]] = None,
                          previous: Optional[TaskStateHandle] = None, position: Any = None,
                          info: Optional[Mapping[str, Any]] = None,
                          self_contained: bool = False) -> "Future[TaskStateHandle]":
        """Upload one task's snapshot for checkpoint ``checkpoint_id``, in the background.

        ``shared_files`` are immutable local files by name: one with the same name and
        size in ``previous`` (the task's handle from its last *complete* checkpoint) is
        referenced instead of uploaded. ``private_files`` (paths or bytes) are uploaded
        every time, the small ones packed into one object. The local files must stay
        until the future is done. ``self_contained`` puts every file in the checkpoint's
        own directory and reuses nothing (savepoints).
        """
        tasks, files = self._executors()
        return tasks.submit(upload_task_files, self, files, checkpoint_id, operator_id,
                            subtask_index, shared_files=dict(shared_files or {}),
                            private_files=dict(private_files or {}), previous=previous,
                            position=position, info=dict(info or {}),
                            self_contained=self_contained)

    def commit(self, metadata: CheckpointMetadata, *, cleanup: bool = True) -> None:
        """Make checkpoint ``metadata.checkpoint_id`` complete by writing its ``_metadata``
        atomically, then (``cleanup``) apply retention.

        Raises :class:`CheckpointAlreadyExistsError` if that id is already committed,
        and :class:`CheckpointStorageError` if a newer checkpoint is complete or a file
        the metadata references from an earlier checkpoint is gone.
        """
        n = metadata.checkpoint_id
        if n < 1:
            raise CheckpointStorageError(f"{self.url}: checkpoint ids start at 1, got {n}")
        scan = self._scan()
        if n in scan.complete:
            raise CheckpointAlreadyExistsError(f"{self.url}: checkpoint {n} is already committed")
        if metadata.kind == CHECKPOINT and scan.latest > n:
            raise CheckpointStorageError(
                f"{self.url}: checkpoint {n} is older than complete checkpoint {scan.latest}; "
                f"it is declined (continue numbering from next_checkpoint_id())")
        self._check_references(metadata, scan)
        token = uuid.uuid4().hex
        key = layout.metadata_key(n)
        data = metadata.to_json(token).encode()
        if not self._write_if_absent(key, data):
            # A retried request may have landed before its retry was refused: only our
            # own token makes this our commit.
            try:
                existing = self._read_bytes(key)
            except FileNotFoundError:
                existing = b""
            if CheckpointMetadata.commit_token_of(existing.decode("utf-8", "replace")) != token:
                raise CheckpointAlreadyExistsError(
                    f"{self.url}: checkpoint {n} was committed by another writer")
        self._metadata_cache[n] = (len(data), metadata)
        if cleanup:
            self.cleanup()

    def _check_references(self, metadata: CheckpointMetadata, scan: Scan) -> None:
        n = metadata.checkpoint_id
        live = set()
        for i in scan.complete:
            meta = self._cached_metadata(i, scan)
            if meta is not None:
                live |= meta.keys()
        for ref in metadata.file_refs():
            if ref.checkpoint_id > n:
                raise CheckpointStorageError(
                    f"{self.url}: checkpoint {n} references {ref.key}, uploaded for a later "
                    f"checkpoint {ref.checkpoint_id}")
            if metadata.kind == SAVEPOINT and not ref.key.startswith(layout.checkpoint_prefix(n)):
                raise CheckpointStorageError(
                    f"{self.url}: savepoint {n} references {ref.key} outside its own directory "
                    f"(savepoints are self-contained: upload with self_contained=True)")
            if ref.checkpoint_id < n and ref.key not in live and not self._exists(ref.key):
                raise CheckpointStorageError(
                    f"{self.url}: checkpoint {n} references {ref.key} (uploaded by checkpoint "
                    f"{ref.checkpoint_id}), which no longer exists: its task reused a file "
                    f"from a checkpoint that retention has deleted")

    def discard(self, checkpoint_id: int) -> None:
        """Delete the files of checkpoint ``checkpoint_id``, which failed before its commit.

        Its shared uploads go too: no complete checkpoint can reference a file uploaded
        for a later checkpoint.
        """
        scan = self._scan()
        if checkpoint_id in scan.complete:
            raise CheckpointStorageError(
                f"{self.url}: checkpoint {checkpoint_id} is complete; use delete_checkpoint")
        keys = list(scan.keys_by_id.get(checkpoint_id, []))
        keys += [key for key, _ in self._list(f"{layout.SHARED_PREFIX}{checkpoint_id}-")]
        self._delete(keys)

    def cleanup(self) -> CleanupReport:
        """One retention pass (see :mod:`.retention`); safe to run again after a crash."""
        scan = self._scan()
        metadata = {i: self._cached_metadata(i, scan) for i in scan.complete}
        shared = [key for key, _ in self._list(layout.SHARED_PREFIX)]
        plan = plan_cleanup(scan, metadata, self.retained, shared)
        # Metadata first: a crash after this point leaves only orphans, never a complete
        # checkpoint with missing files.
        self._delete([layout.metadata_key(i) for i in plan.expired])
        for i in plan.expired:
            self._metadata_cache.pop(i, None)
        self._delete(plan.orphan_keys)
        self._delete(plan.shared_keys)
        return CleanupReport(plan.expired, len(plan.expired) + len(plan.orphan_keys)
                             + len(plan.shared_keys), plan.unreadable)

    def delete_checkpoint(self, checkpoint_id: int) -> CleanupReport:
        """Delete a complete checkpoint (or savepoint) and the files only it referenced."""
        if checkpoint_id not in self._scan().complete:
            raise CheckpointNotFoundError(f"{self.url}: no complete checkpoint {checkpoint_id}")
        self._delete([layout.metadata_key(checkpoint_id)])
        self._metadata_cache.pop(checkpoint_id, None)
        return self.cleanup()

    # -- reading ----------------------------------------------------------------------------
    def _scan(self) -> Scan:
        scan = Scan()
        for key, size in self._list(layout.CHECKPOINT_PREFIX):
            n = layout.checkpoint_id_of(key)
            if n is None:
                continue
            scan.keys_by_id.setdefault(n, []).append(key)
            if key == layout.metadata_key(n):
                scan.complete[n] = size
        return scan

    def _cached_metadata(self, checkpoint_id: int, scan: Scan) -> Optional[CheckpointMetadata]:
        """Metadata of a complete checkpoint, None if unreadable (it is immutable, so cached)."""
        cached = self._metadata_cache.get(checkpoint_id)
        if cached is not None and cached[0] == scan.complete.get(checkpoint_id):
            return cached[1]
        try:
            return self.read_metadata(checkpoint_id)
        except CheckpointStorageError:
            return None

    def checkpoint_ids(self) -> List[int]:
        """The ids of the complete checkpoints and savepoints, oldest first."""
        return sorted(self._scan().complete)

    def read_metadata(self, checkpoint_id: int) -> CheckpointMetadata:
        """The metadata of complete checkpoint ``checkpoint_id``."""
        key = layout.metadata_key(checkpoint_id)
        try:
            data = self._read_bytes(key)
        except FileNotFoundError:
            raise CheckpointNotFoundError(
                f"{self.url}: no complete checkpoint {checkpoint_id}") from None
        meta = CheckpointMetadata.from_json(data.decode("utf-8", "replace"),
                                            where=f"{self.url}: {key}")
        if meta.checkpoint_id != checkpoint_id:
            raise CorruptCheckpointError(
                f"{self.url}: {key} describes checkpoint {meta.checkpoint_id}")
        self._metadata_cache[checkpoint_id] = (len(data), meta)
        return meta

    def list_checkpoints(self) -> List[CheckpointMetadata]:
        """The metadata of every complete checkpoint and savepoint, oldest first."""
        scan = self._scan()
        out = []
        for i in sorted(scan.complete):
            meta = self._cached_metadata(i, scan)
            if meta is None:
                meta = self.read_metadata(i)  # raises, naming what is corrupt
            out.append(meta)
        return out

    def latest(self) -> Optional[CheckpointMetadata]:
        """The newest complete checkpoint or savepoint, or None."""
        ids = self.checkpoint_ids()
        return self.read_metadata(ids[-1]) if ids else None

    def next_checkpoint_id(self) -> int:
        """An id above every checkpoint stored, complete or not (ids never repeat)."""
        return self._scan().highest + 1

    # -- restoring --------------------------------------------------------------------------
    def download_task_state(self, task: TaskStateHandle,
                            target_dir: Union[str, "os.PathLike[str]"]) -> Dict[str, Path]:
        """Write every file of ``task`` under ``target_dir`` (by its local name), each checked
        against its size and SHA-256 (:class:`CorruptCheckpointError` otherwise); returns the
        paths by name."""
        return restore.download_task_state(self, task, Path(target_dir))

    def read_task_file(self, task: TaskStateHandle, name: str) -> bytes:
        """One file of ``task`` as bytes, checked (for small state such as memory blobs)."""
        return restore.read_task_file(self, task, name)

    # -- savepoints -------------------------------------------------------------------------
    def export_self_contained(self, checkpoint_id: int,
                              target: "CheckpointStorage") -> CheckpointMetadata:
        """Copy complete checkpoint ``checkpoint_id`` into ``target`` as a savepoint that owns
        every file it references (in its own ``chk-N/``), so retention never touches it."""
        from headrace.runners.state.checkpoint_storage.base.copy import copy_self_contained

        return copy_self_contained(self, self.read_metadata(checkpoint_id), target)
