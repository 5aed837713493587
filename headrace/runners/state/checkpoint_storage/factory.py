"""Opening checkpoint storage from ``--checkpoint_dir``: a local path or ``s3://bucket/prefix``.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as root:
...     open_checkpoint_storage(root, retained=2).retained
2
>>> try:
...     open_checkpoint_storage("gs://bucket/x")
... except CheckpointStorageConfigError as exc:
...     print(exc)
--checkpoint_dir gs://bucket/x: unsupported scheme 'gs' (use a local path or s3://bucket/prefix)
"""
from __future__ import annotations

import os
import re
from typing import Any, Optional

from headrace.runners.state.checkpoint_storage.base import (
    DEFAULT_RETAINED,
    CheckpointStorage,
    CheckpointStorageConfigError,
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_checkpoint_storage(checkpoint_dir: "str | os.PathLike[str]", *,
                            retained: int = DEFAULT_RETAINED, **kwargs: Any) -> CheckpointStorage:
    """The storage for ``checkpoint_dir``: S3 for ``s3://``, a directory for a path or
    ``file://``. Raises :class:`CheckpointStorageConfigError` naming ``--checkpoint_dir``
    when the location is malformed, unwritable or missing. Keyword arguments go to the
    storage's constructor (e.g. ``multipart_threshold`` for S3)."""
    location = os.fspath(checkpoint_dir)
    if not location:
        raise CheckpointStorageConfigError("--checkpoint_dir is empty")
    match = _SCHEME.match(location)
    scheme = match.group(1).lower() if match else None
    if scheme in ("s3", "s3a"):
        from headrace.runners.state.checkpoint_storage.s3 import S3CheckpointStorage

        return S3CheckpointStorage("s3://" + location[match.end():], retained=retained, **kwargs)
    if scheme == "file":
        location = location[match.end():]
    elif scheme is not None:
        raise CheckpointStorageConfigError(
            f"--checkpoint_dir {location}: unsupported scheme {scheme!r} (use a local path "
            f"or s3://bucket/prefix)")
    from headrace.runners.state.checkpoint_storage.filesystem import FilesystemCheckpointStorage

    return FilesystemCheckpointStorage(location, retained=retained, **kwargs)


def storage_from_options(options: Any) -> Optional[CheckpointStorage]:
    """The storage ``--checkpoint_dir`` names (with ``--checkpoints_retained``), or None
    when checkpoints have no directory."""
    from headrace.sdk.options import CheckpointingOptions

    view = options.view_as(CheckpointingOptions)
    if not view.checkpoint_dir:
        return None
    return open_checkpoint_storage(view.checkpoint_dir, retained=view.checkpoints_retained)
