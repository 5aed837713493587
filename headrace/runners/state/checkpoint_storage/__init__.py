"""Checkpoint storage: where checkpoints' state files and metadata live.

``base/`` holds the interface and everything the storages share (metadata, the
incremental upload, the atomic commit, retention); ``filesystem/`` and ``s3/``
implement it for a directory and for S3. :func:`open_checkpoint_storage` picks
one from ``--checkpoint_dir``.
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
