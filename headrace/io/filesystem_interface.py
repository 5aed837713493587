"""The :class:`FileSystem` interface: what a storage system implements to serve a path scheme.

Implementations are registered per scheme in :mod:`headrace.io.filesystems`, which is what
sources and sinks call; :mod:`headrace.io.local_filesystem` is the one for local disks.
"""
from __future__ import annotations

import abc
from typing import IO, List


class FileSystem(abc.ABC):
    """The operations a storage system provides; paths are full paths including any scheme.

    Implement this and :func:`register_filesystem` it to serve a new scheme.

    >>> from headrace.io.filesystems import get_filesystem
    >>> isinstance(get_filesystem("/tmp"), FileSystem)
    True
    """

    @abc.abstractmethod
    def match(self, pattern: str) -> List[str]:
        """The files matching a glob pattern (or the file itself), sorted."""

    @abc.abstractmethod
    def open_read(self, path: str) -> IO[bytes]:
        """A binary, seekable stream over the file's raw bytes."""

    @abc.abstractmethod
    def open_write(self, path: str) -> IO[bytes]:
        """A binary stream replacing the file, creating parent directories as needed."""

    @abc.abstractmethod
    def rename(self, source: str, destination: str) -> None:
        """Move a file, replacing ``destination`` if it exists."""

    @abc.abstractmethod
    def delete(self, path: str) -> None:
        """Delete a file, or a directory and everything under it."""

    @abc.abstractmethod
    def exists(self, path: str) -> bool:
        """Whether a file or directory exists at ``path``."""

    @abc.abstractmethod
    def size(self, path: str) -> int:
        """The file's size in bytes (compressed size for compressed files)."""

    def sync(self, path: str) -> None:
        """Make a closed file, or the entries of a directory, durable (fsync).

        The default does nothing: right for stores where a completed write is durable.
        """
