"""The checkpoint storage interface and the metadata it stores."""
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
    FileRef,
    TaskStateHandle,
)
from headrace.runners.state.checkpoint_storage.base.retention import CleanupReport
from headrace.runners.state.checkpoint_storage.base.storage import (
    DEFAULT_RETAINED,
    CheckpointStorage,
)

__all__ = ["CHECKPOINT", "DEFAULT_RETAINED", "SAVEPOINT", "CheckpointAlreadyExistsError",
           "CheckpointMetadata", "CheckpointNotFoundError", "CheckpointStorage",
           "CheckpointStorageConfigError", "CheckpointStorageError", "CleanupReport",
           "CorruptCheckpointError", "FileRef", "TaskStateHandle"]
