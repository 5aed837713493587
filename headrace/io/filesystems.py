"""A small filesystem layer: matching, opening, renaming and deleting files by path.

This module is the API that sources and sinks call, and the registry of filesystems by path
scheme. Paths without a scheme (and ``file://`` paths) go to :class:`LocalFileSystem`
(:mod:`headrace.io.local_filesystem`), ``s3://`` paths to :class:`S3FileSystem`
(:mod:`headrace.io.s3_filesystem`, boto3); other schemes plug in with
:func:`register_filesystem`, implementing :class:`FileSystem`
(:mod:`headrace.io.filesystem_interface`). Compression is applied here, on top of any
filesystem, and chosen by file extension unless a :class:`CompressionTypes` value says
otherwise (:mod:`headrace.io.compression`). Patterns use Beam's glob syntax
(:mod:`headrace.io.globs`).

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> with open_write(os.path.join(d, "a.txt.gz")) as f:
...     _ = f.write(b"hello")
>>> [os.path.basename(p) for p in match(os.path.join(d, "*.gz"))]
['a.txt.gz']
>>> with open_read(os.path.join(d, "a.txt.gz")) as f:
...     f.read()
b'hello'
"""
from __future__ import annotations

import posixpath
import re
from typing import IO, Dict, List, Tuple

from headrace.io.compression import CompressionTypes, compress, compressed_stream
from headrace.io.filesystem_interface import FileSystem
from headrace.io.globs import escape_glob, glob_to_regex, has_glob
from headrace.io.local_filesystem import LocalFileSystem
from headrace.io.s3_filesystem import S3FileSystem

__all__ = [
    "CompressionTypes",
    "FileSystem",
    "LocalFileSystem",
    "S3FileSystem",
    "compress",
    "delete",
    "escape_glob",
    "exists",
    "get_filesystem",
    "glob_to_regex",
    "has_glob",
    "join",
    "match",
    "open_read",
    "open_write",
    "register_filesystem",
    "rename",
    "size",
    "split",
    "sync",
]

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

_LOCAL = LocalFileSystem()
_FILESYSTEMS: Dict[str, FileSystem] = {"": _LOCAL, "file": _LOCAL, "s3": S3FileSystem()}


def register_filesystem(scheme: str, filesystem: FileSystem) -> None:
    """Serve paths of the form ``scheme://...`` with ``filesystem``.

    >>> register_filesystem("file", LocalFileSystem())
    """
    if not isinstance(filesystem, FileSystem):
        raise TypeError(
            f"register_filesystem({scheme!r}, ...) needs a FileSystem, "
            f"not {type(filesystem).__name__}")
    _FILESYSTEMS[scheme.lower()] = filesystem


def get_filesystem(path: str) -> FileSystem:
    """The filesystem serving ``path``, chosen by its scheme.

    >>> type(get_filesystem("/tmp/x")).__name__
    'LocalFileSystem'
    """
    found = _SCHEME_RE.match(path)
    scheme = found.group(1).lower() if found else ""
    try:
        return _FILESYSTEMS[scheme]
    except KeyError:
        known = ", ".join(sorted(s + "://" for s in _FILESYSTEMS if s))
        raise ValueError(
            f"No filesystem is registered for scheme {scheme + '://'!r} of path {path!r} "
            f"(known: {known}, and plain local paths)") from None


def match(pattern: str) -> List[str]:
    """The files matching ``pattern`` (a path or glob), sorted; empty if none.

    >>> match("/nonexistent-dir/*.txt")
    []
    """
    return get_filesystem(pattern).match(pattern)


def open_read(path: str, compression_type: str = CompressionTypes.AUTO) -> IO[bytes]:
    """Open ``path`` for reading its decompressed bytes.

    Uncompressed streams are seekable; compressed ones seek forward by decompressing.

    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x.txt")
    >>> with open_write(p) as f:
    ...     _ = f.write(b"abc")
    >>> with open_read(p) as f:
    ...     f.read()
    b'abc'
    """
    resolved = CompressionTypes.resolve(path, compression_type)
    return compressed_stream(get_filesystem(path).open_read(path), resolved, "rb")


def open_write(path: str, compression_type: str = CompressionTypes.AUTO) -> IO[bytes]:
    """Create or replace ``path``, compressing what is written as its extension says.

    >>> import gzip, os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "sub", "x.gz")
    >>> with open_write(p) as f:
    ...     _ = f.write(b"abc")
    >>> gzip.decompress(open(p, "rb").read())
    b'abc'
    """
    resolved = CompressionTypes.resolve(path, compression_type)
    return compressed_stream(get_filesystem(path).open_write(path), resolved, "wb")


def rename(source: str, destination: str) -> None:
    """Move ``source`` to ``destination`` (same filesystem), replacing it if present.

    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> open(os.path.join(d, "a"), "w").close()
    >>> rename(os.path.join(d, "a"), os.path.join(d, "b"))
    >>> sorted(os.listdir(d))
    ['b']
    """
    source_fs, destination_fs = get_filesystem(source), get_filesystem(destination)
    if source_fs is not destination_fs:
        raise ValueError(f"Cannot rename {source!r} to {destination!r}: different filesystems")
    source_fs.rename(source, destination)


def delete(path: str) -> None:
    """Delete a file, or a directory with everything under it.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> delete(d)
    >>> exists(d)
    False
    """
    get_filesystem(path).delete(path)


def sync(path: str) -> None:
    """Make a written file, or a directory's entries (after renames), durable.

    Local files and directories are fsync'ed; object stores are durable once a write
    or copy returned.

    >>> import tempfile
    >>> sync(tempfile.gettempdir())
    """
    get_filesystem(path).sync(path)


def exists(path: str) -> bool:
    """Whether ``path`` exists.

    >>> exists("/nonexistent/file")
    False
    """
    return get_filesystem(path).exists(path)


def size(path: str) -> int:
    """The size of the file at ``path`` in bytes, as stored.

    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x")
    >>> with open(p, "wb") as f:
    ...     _ = f.write(b"1234")
    >>> size(p)
    4
    """
    return get_filesystem(path).size(path)


def join(base: str, *parts: str) -> str:
    """Join path components with ``/`` (for every scheme).

    >>> join("s3://bucket/dir", "file.txt")
    's3://bucket/dir/file.txt'
    """
    return posixpath.join(base, *parts)


def split(path: str) -> Tuple[str, str]:
    """Split ``path`` into its directory and its last component.

    >>> split("s3://bucket/dir/file.txt")
    ('s3://bucket/dir', 'file.txt')
    """
    return posixpath.split(path)
