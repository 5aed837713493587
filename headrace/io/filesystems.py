"""A small filesystem layer: matching, opening, renaming and deleting files by path.

Paths without a scheme (and ``file://`` paths) go to :class:`LocalFileSystem`;
other schemes (``s3://`` later) plug in with :func:`register_filesystem`.
Compression is applied here, on top of any filesystem, and chosen by file
extension unless a :class:`CompressionTypes` value says otherwise.

Glob patterns follow Beam's: ``*`` and ``?`` stay within one path component,
``**`` crosses directories, ``[abc]`` / ``[!abc]`` are character classes, and a
pattern ending in ``/`` matches every file directly in that directory.

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

import abc
import bz2
import gzip
import lzma
import os
import posixpath
import re
import shutil
from typing import IO, Dict, List, Tuple

__all__ = [
    "CompressionTypes",
    "FileSystem",
    "LocalFileSystem",
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
]

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_GLOB_CHARS_RE = re.compile(r"[*?\[]")
# Level 6 is zlib's default and Beam's; Python's gzip default (9) is much slower.
_GZIP_LEVEL = 6


class CompressionTypes:
    """Compression of a file, named as in Beam's ``CompressionTypes``.

    ``AUTO`` picks the compression from the file extension: ``.gz`` is gzip,
    ``.bz2`` bzip2, ``.xz`` / ``.lzma`` lzma, anything else uncompressed.

    >>> CompressionTypes.detect_compression_type("logs/part-0.gz")
    'gzip'
    >>> CompressionTypes.detect_compression_type("logs/part-0.txt")
    'uncompressed'
    """

    AUTO = "auto"
    UNCOMPRESSED = "uncompressed"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    LZMA = "lzma"
    # Beam names these; they are recognised so that using them fails clearly.
    DEFLATE = "deflate"
    ZSTD = "zstd"

    _SUPPORTED = (AUTO, UNCOMPRESSED, GZIP, BZIP2, LZMA)
    _BY_SUFFIX = (
        (".gz", GZIP), (".bz2", BZIP2), (".xz", LZMA), (".lzma", LZMA),
        (".deflate", DEFLATE), (".zst", ZSTD), (".zstd", ZSTD),
    )

    @classmethod
    def is_valid_compression_type(cls, compression_type: object) -> bool:
        """Whether ``compression_type`` is one headrace can read and write.

        >>> CompressionTypes.is_valid_compression_type("gzip")
        True
        """
        return compression_type in cls._SUPPORTED

    @classmethod
    def detect_compression_type(cls, path: str) -> str:
        """The compression implied by the extension of ``path``.

        >>> CompressionTypes.detect_compression_type("x.BZ2")
        'bzip2'
        """
        lowered = path.lower()
        for suffix, compression_type in cls._BY_SUFFIX:
            if lowered.endswith(suffix):
                return compression_type
        return cls.UNCOMPRESSED

    @classmethod
    def resolve(cls, path: str, compression_type: str) -> str:
        """The concrete compression for ``path``: ``AUTO`` resolved, unsupported types refused.

        >>> CompressionTypes.resolve("a.gz", "auto")
        'gzip'
        >>> CompressionTypes.resolve("a.gz", "uncompressed")
        'uncompressed'
        """
        if compression_type not in cls._SUPPORTED:
            raise ValueError(
                f"compression_type must be one of {', '.join(cls._SUPPORTED)}; "
                f"got {compression_type!r} for {path!r}")
        if compression_type == cls.AUTO:
            compression_type = cls.detect_compression_type(path)
            if compression_type not in cls._SUPPORTED:
                raise ValueError(
                    f"{path!r} looks {compression_type}-compressed (by its extension), which "
                    f"headrace does not support; pass compression_type explicitly to override")
        return compression_type


class FileSystem(abc.ABC):
    """The operations a storage system provides; paths are full paths including any scheme.

    Implement this and :func:`register_filesystem` it to serve a new scheme.

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


class LocalFileSystem(FileSystem):
    """Files on local disks; accepts plain paths and ``file://`` URLs.

    >>> import tempfile
    >>> LocalFileSystem().exists(tempfile.gettempdir())
    True
    """

    @staticmethod
    def _local(path: str) -> str:
        return path[len("file://"):] if path.startswith("file://") else path

    def match(self, pattern: str) -> List[str]:
        # Results keep the pattern's spelling so they compare equal to names built from it.
        scheme = "file://" if pattern.startswith("file://") else ""
        return [scheme + path for path in self._match_local(self._local(pattern))]

    @staticmethod
    def _match_local(pattern: str) -> List[str]:
        if pattern.endswith("/"):
            pattern += "*"
        if not has_glob(pattern):
            return [pattern] if os.path.isfile(pattern) else []
        literal_prefix = pattern[:_GLOB_CHARS_RE.search(pattern).start()]
        root = posixpath.dirname(literal_prefix)
        regex = re.compile(glob_to_regex(pattern))
        # Without "**" a match sits at a fixed depth below root, so deeper
        # directories need not be walked.
        rest = pattern[len(root):].lstrip("/") if root else pattern
        max_dir_depth = None if "**" in pattern else rest.count("/")
        walk_root = root or os.curdir
        found = []
        for dirpath, dirnames, filenames in os.walk(walk_root):
            rel = os.path.relpath(dirpath, walk_root)
            depth = 0 if rel == os.curdir else rel.count(os.sep) + 1
            if max_dir_depth is not None and depth >= max_dir_depth:
                dirnames[:] = []
            for name in filenames:
                path = os.path.join(dirpath, name)
                if not root:
                    path = os.path.relpath(path, os.curdir)
                if regex.fullmatch(path):
                    found.append(path)
        return sorted(found)

    def open_read(self, path: str) -> IO[bytes]:
        return open(self._local(path), "rb")

    def open_write(self, path: str) -> IO[bytes]:
        path = self._local(path)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        return open(path, "wb")

    def rename(self, source: str, destination: str) -> None:
        destination = self._local(destination)
        parent = os.path.dirname(destination)
        if parent:
            os.makedirs(parent, exist_ok=True)
        os.replace(self._local(source), destination)

    def delete(self, path: str) -> None:
        path = self._local(path)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(self._local(path))

    def size(self, path: str) -> int:
        return os.path.getsize(self._local(path))


_LOCAL = LocalFileSystem()
_FILESYSTEMS: Dict[str, FileSystem] = {"": _LOCAL, "file": _LOCAL}


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


def has_glob(pattern: str) -> bool:
    """Whether ``pattern`` contains glob characters (``*``, ``?``, ``[``).

    >>> has_glob("/data/*.txt"), has_glob("/data/a.txt")
    (True, False)
    """
    return _GLOB_CHARS_RE.search(pattern) is not None


def escape_glob(text: str) -> str:
    """Quote ``text`` so that it matches only itself inside a glob pattern.

    >>> escape_glob("out[1]*")
    'out[[]1][*]'
    """
    return re.sub(r"([*?\[])", r"[\1]", text)


def glob_to_regex(pattern: str) -> str:
    """Translate a glob pattern to a regular expression for ``re.fullmatch`` on full paths.

    >>> bool(re.fullmatch(glob_to_regex("/d/*.txt"), "/d/sub/a.txt"))
    False
    >>> bool(re.fullmatch(glob_to_regex("/d/**.txt"), "/d/sub/a.txt"))
    True
    """
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if i < n and pattern[i] == "*":
                out.append(".*")
                i += 1
            else:
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1 if i < n and pattern[i] == "!" else i
            if j < n and pattern[j] == "]":
                j += 1
            close = pattern.find("]", j)
            if close < 0:
                out.append(re.escape(c))
                continue
            body, i = pattern[i:close], close + 1
            negate = body.startswith("!")
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            if body.startswith("^"):
                body = "\\" + body
            # A negated class must still not cross a path separator.
            out.append(f"[^/{body}]" if negate else f"[{body}]")
        else:
            out.append(re.escape(c))
    return "(?s)" + "".join(out)


def match(pattern: str) -> List[str]:
    """The files matching ``pattern`` (a path or glob), sorted; empty if none.

    >>> match("/nonexistent-dir/*.txt")
    []
    """
    return get_filesystem(pattern).match(pattern)


class _CodecStream:
    """A (de)compressing stream that also closes the raw stream under it.

    gzip, bz2 and lzma leave a caller-supplied file object open on close().
    """

    def __init__(self, codec: IO[bytes], raw: IO[bytes]) -> None:
        self._codec = codec
        self._raw = raw

    def __getattr__(self, name: str):
        return getattr(self._codec, name)

    def close(self) -> None:
        try:
            self._codec.close()
        finally:
            self._raw.close()

    def __enter__(self) -> "_CodecStream":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _wrap(raw: IO[bytes], compression_type: str, mode: str) -> IO[bytes]:
    if compression_type == CompressionTypes.UNCOMPRESSED:
        return raw
    if compression_type == CompressionTypes.GZIP:
        codec = gzip.GzipFile(
            fileobj=raw, mode=mode, filename="", mtime=0, compresslevel=_GZIP_LEVEL)
    elif compression_type == CompressionTypes.BZIP2:
        codec = bz2.BZ2File(raw, mode=mode)
    else:
        codec = lzma.LZMAFile(raw, mode=mode)
    return _CodecStream(codec, raw)


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
    return _wrap(get_filesystem(path).open_read(path), resolved, "rb")


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
    return _wrap(get_filesystem(path).open_write(path), resolved, "wb")


def compress(data: bytes, compression_type: str) -> bytes:
    """``data`` as one complete compressed stream (concatenated streams stay readable).

    >>> import gzip
    >>> gzip.decompress(compress(b"a", "gzip") + compress(b"b", "gzip"))
    b'ab'
    """
    if compression_type == CompressionTypes.UNCOMPRESSED:
        return data
    if compression_type == CompressionTypes.GZIP:
        return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
    if compression_type == CompressionTypes.BZIP2:
        return bz2.compress(data)
    if compression_type == CompressionTypes.LZMA:
        return lzma.compress(data)
    raise ValueError(f"compress() needs a concrete compression type, not {compression_type!r}")


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
