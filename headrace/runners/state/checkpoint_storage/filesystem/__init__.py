"""Checkpoint storage in a local or mounted directory."""
from headrace.runners.state.checkpoint_storage.filesystem.storage import (
    FilesystemCheckpointStorage,
)

__all__ = ["FilesystemCheckpointStorage"]
