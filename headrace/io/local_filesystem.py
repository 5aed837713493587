"""The :class:`FileSystem` of local disks: plain paths and ``file://`` URLs, globs matched by
walking only the directories a pattern can reach.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> open(os.path.join(d, "a.txt"), "w").close()
>>> [os.path.basename(p) for p in LocalFileSystem().match("file://" + d + "/*.txt")]
['a.txt']
"""
from __future__ import annotations

import os
import posixpath
import re
import shutil
from typing import IO, List

from headrace.io.filesystem_interface import FileSystem
from headrace.io.globs import GLOB_CHARS_RE, glob_to_regex, has_glob


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
        literal_prefix = pattern[:GLOB_CHARS_RE.search(pattern).start()]
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

    def sync(self, path: str) -> None:
        # fsync through a read-only descriptor flushes the file's (or directory's) data.
        fd = os.open(self._local(path) or os.curdir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
