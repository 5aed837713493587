"""The errors checkpoint storage raises, all subclasses of :class:`CheckpointStorageError`."""
from __future__ import annotations


class CheckpointStorageError(RuntimeError):
    """Checkpoint storage cannot be opened or used; the message names the location at fault."""


class CheckpointStorageConfigError(CheckpointStorageError, ValueError):
    """``--checkpoint_dir`` (or a path given to the CLI) is malformed, unwritable or missing."""


class CheckpointAlreadyExistsError(CheckpointStorageError):
    """A checkpoint with this id is already committed (another writer, or a repeated commit)."""


class CheckpointNotFoundError(CheckpointStorageError, LookupError):
    """No complete checkpoint with this id exists."""


class CorruptCheckpointError(CheckpointStorageError):
    """A checkpoint's metadata or one of its files is missing, truncated or fails its checksum."""
