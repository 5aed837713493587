"""Checkpoint storage: where checkpoints' state files and metadata live.

``base/`` holds the interface and everything the storages share (metadata, the
incremental upload, the atomic commit, retention); ``filesystem/`` and ``s3/``
implement it for a directory and for S3. :func:`open_checkpoint_storage` picks
one from ``--checkpoint_dir``.

A task uploads its snapshot (in the background), the coordinator commits; the
next checkpoint references the unchanged immutable file instead of uploading it:

>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> sst = root / "000007.sst"
>>> _ = sst.write_bytes(b"x" * 100)
>>> with open_checkpoint_storage(root / "checkpoints", retained=2) as storage:
...     first = storage.upload_task_state(1, "counts", 0, shared_files={sst.name: sst},
...                                       private_files={"CURRENT": b"MANIFEST-1"}).result()
...     storage.commit(CheckpointMetadata(1, [first], job_id="wordcount"))
...     second = storage.upload_task_state(2, "counts", 0, shared_files={sst.name: sst},
...                                        private_files={"CURRENT": b"MANIFEST-2"},
...                                        previous=first).result()
...     storage.commit(CheckpointMetadata(2, [second], job_id="wordcount"))
...     latest = storage.latest()
>>> latest.checkpoint_id, latest.total_size, latest.incremental_size
(2, 110, 10)
>>> import shutil; shutil.rmtree(root)
"""
from headrace.runners.state.checkpoint_storage.base import (
    CHECKPOINT,
    DEFAULT_RETAINED,
    SAVEPOINT,
    CheckpointAlreadyExistsError,
    CheckpointMetadata,
    CheckpointNotFoundError,
    CheckpointStorage,
    CheckpointStorageConfigError,
    CheckpointStorageError,
    CleanupReport,
    CorruptCheckpointError,
    FileRef,
    TaskStateHandle,
)
from headrace.runners.state.checkpoint_storage.factory import (
    open_checkpoint_storage,
    storage_from_options,
)

__all__ = ["CHECKPOINT", "DEFAULT_RETAINED", "SAVEPOINT", "CheckpointAlreadyExistsError",
           "CheckpointMetadata", "CheckpointNotFoundError", "CheckpointStorage",
           "CheckpointStorageConfigError", "CheckpointStorageError", "CleanupReport",
           "CorruptCheckpointError", "FileRef", "TaskStateHandle", "open_checkpoint_storage",
           "storage_from_options"]
