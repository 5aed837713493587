"""Exactly-once file output: :class:`WriteToFiles` and the :class:`PartFileSink` behind it.

This is Flink's ``FileSink`` with Beam's transform name (``beam.io.fileio.WriteToFiles``
is Beam's streaming file sink). Each writer (one per subtask) writes *part files*:

- named ``<path>/<prefix>-<subtask:05d>-<part:06d><suffix>``, the part number counting up per
  subtask (kept in the writer's checkpointed state, and never below a part already published);
- written first as hidden *in-progress* files under ``<path>/.in-progress/`` with the same
  name, so that no reader of ``<path>/*`` sees them;
- rolled on every checkpoint (and when a part reaches ``max_part_size`` bytes): the part is
  closed and made durable (fsync on local disks; on S3 the object is uploaded to its
  in-progress key, in parts when large), and travels in the checkpoint as a committable;
- published once the checkpoint completes: renamed to its final name (on S3: copied to the
  final key, then the in-progress key deleted). Publishing is idempotent: a part whose
  in-progress file is gone but whose final file exists is already published.

A writer opened fresh, or restored from a checkpoint after that checkpoint's parts were
published, deletes the in-progress files of its own subtask index (after rescaling to ``n``
writers, of every old index ``i`` with ``i % n`` equal to its own): they are what a crashed
attempt wrote after its last complete checkpoint, which the replay writes again. So the
directory belongs to one job (one ``prefix``); parts of an earlier run stay, and the part
numbers continue after them. Without checkpointing (the direct runner) everything is
published at the end of input.

What is identical between runs over the same input, whatever the checkpoint timing and the
crashes and restores in between: the multiset of lines over all published parts, and, for
each subtask, the concatenation of its parts in part order whenever the records reach that
subtask in a deterministic order (one subtask; or an input order fixed per subtask). Where
the parts roll, and so the number of parts and their names, depends on the checkpoints.
:func:`read_parts` reads the published output per subtask for such comparisons.

>>> import os, tempfile, headrace as beam
>>> out = tempfile.mkdtemp()
>>> with beam.Pipeline() as p:
...     _ = p | beam.Create(["a", "b"]) | beam.io.WriteToFiles(out, suffix=".txt")
>>> sorted(os.listdir(out))
['.in-progress', 'part-00000-000000.txt']
>>> read_parts(out, suffix=".txt")
{0: b'a\\nb\\n'}
"""
from __future__ import annotations

import re
from typing import IO, Any, Callable, Dict, List, NamedTuple, Optional

from headrace.io import filesystems
from headrace.io.filesystems import CompressionTypes
from headrace.sdk.coders import Coder
from headrace.sdk.io_base import Committer, CommittingSink, CommittingSinkWriter
from headrace.sdk.primitives import Write
from headrace.sdk.ptransform import PTransform

__all__ = ["PartFile", "PartFileSink", "WriteToFiles", "read_parts"]

#: A part rolls once it holds this many bytes (before compression).
DEFAULT_MAX_PART_SIZE = 128 << 20
IN_PROGRESS_DIR = ".in-progress"


class PartFile(NamedTuple):
    """A committable: a closed, durable in-progress part and the name it is published as."""

    in_progress: str
    final: str
    size: int


class PartFileSink(CommittingSink):
    """Writes part files under ``path`` with two-phase commit; see :class:`WriteToFiles`.

    >>> import tempfile
    >>> sink = PartFileSink(tempfile.mkdtemp(), suffix=".txt")
    >>> writer = sink.open_writer(0, 1)
    >>> writer.write_batch(["x", "y"])
    >>> parts = writer.prepare_commit(1)
    >>> sink.create_committer(0, 1).commit(parts)
    >>> [p.final.rsplit("/", 1)[1] for p in parts]
    ['part-00000-000000.txt']
    """

    def __init__(self, path: str, *, prefix: str = "part", suffix: str = "",
                 coder: Optional[Coder] = None,
                 format_fn: Optional[Callable[[Any], Any]] = None,
                 max_part_size: int = DEFAULT_MAX_PART_SIZE,
                 compression_type: str = CompressionTypes.AUTO,
                 label: str = "WriteToFiles") -> None:
        self.label = label
        if not isinstance(path, str) or not path:
            raise TypeError(f"{label}: path must be a non-empty string, got {path!r}")
        where = f"{label}({path!r})"
        if not isinstance(prefix, str) or not prefix or "/" in prefix:
            raise ValueError(f"{where}: prefix must be a non-empty file name prefix without "
                             f"'/', got {prefix!r}")
        if not isinstance(suffix, str) or "/" in suffix:
            raise ValueError(f"{where}: suffix must be a string without '/', got {suffix!r}")
        if coder is not None and format_fn is not None:
            raise ValueError(f"{where}: give a coder or a format_fn, not both")
        if coder is not None and not callable(getattr(coder, "encode", None)):
            raise TypeError(f"{where}: coder must have an encode(value) method, "
                            f"got {coder!r:.100}")
        if format_fn is not None and not callable(format_fn):
            raise TypeError(f"{where}: format_fn must be callable, got {format_fn!r:.100}")
        if (not isinstance(max_part_size, int) or isinstance(max_part_size, bool)
                or max_part_size <= 0):
            raise ValueError(f"{where}: max_part_size must be a positive int (bytes), "
                             f"got {max_part_size!r}")
        self.path = path.rstrip("/") or path
        self.prefix, self.suffix = prefix, suffix
        self.coder, self.format_fn = coder, format_fn
        self.max_part_size = max_part_size
        try:
            self.compression = CompressionTypes.resolve(self.final_path(0, 0), compression_type)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        self.in_progress_dir = filesystems.join(self.path, IN_PROGRESS_DIR)
        self.name_re = _part_name_re(prefix, suffix)

    def display_name(self) -> str:
        return f"{self.label}({self.path})"

    def part_name(self, subtask: int, part: int) -> str:
        return f"{self.prefix}-{subtask:05d}-{part:06d}{self.suffix}"

    def final_path(self, subtask: int, part: int) -> str:
        return filesystems.join(self.path, self.part_name(subtask, part))

    def encode(self, element: Any) -> bytes:
        """One line's bytes, without the newline: format_fn or coder, else ``str()`` in UTF-8."""
        if self.coder is not None:
            return self.coder.encode(element)
        value = self.format_fn(element) if self.format_fn is not None else element
        if isinstance(value, bytes):
            return value
        if self.format_fn is not None and not isinstance(value, str):
            raise TypeError(f"{self.display_name()}: format_fn must return str or bytes, "
                            f"got {type(value).__name__} for {element!r:.100}")
        return str(value).encode("utf-8")

    def open_writer(self, writer_index: int, num_writers: int) -> "_PartWriter":
        return _PartWriter(self, writer_index, num_writers, 0)

    def restore_writer(self, writer_index: int, num_writers: int,
                       states: List[Any]) -> "_PartWriter":
        # Only the old writer of the same index numbered parts with this index.
        next_part = max((s["next_part"] for s in states
                         if s is not None and s["subtask"] == writer_index), default=0)
        return _PartWriter(self, writer_index, num_writers, next_part)

    def create_committer(self, writer_index: int, num_writers: int) -> "_PartCommitter":
        return _PartCommitter(self)

    def finalize(self, writer_results: List[Any]) -> List[str]:
        """The final paths of the parts published by this run's writers, sorted."""
        return sorted(path for paths in writer_results for path in paths)


class _PartWriter(CommittingSinkWriter):
    """One subtask's writer: appends lines to its current in-progress part."""

    def __init__(self, sink: PartFileSink, index: int, num_writers: int,
                 next_part: int) -> None:
        self._sink, self._index = sink, index
        try:
            self._remove_leftovers(num_writers)
            self._next_part = max(next_part, self._next_after_published())
        except OSError as e:
            raise type(e)(f"{sink.display_name()}: cannot open writer {index}: {e}") from e
        self._stream: Optional[IO[bytes]] = None
        self._part: Optional[PartFile] = None
        self._ready: List[PartFile] = []
        self._published: List[str] = []

    def _remove_leftovers(self, num_writers: int) -> None:
        pattern = filesystems.join(filesystems.escape_glob(self._sink.in_progress_dir), "*")
        for path in filesystems.match(pattern):
            found = self._sink.name_re.fullmatch(filesystems.split(path)[1])
            if found and int(found.group(1)) % num_writers == self._index:
                filesystems.delete(path)

    def _next_after_published(self) -> int:
        sink = self._sink
        pattern = filesystems.join(
            filesystems.escape_glob(sink.path),
            filesystems.escape_glob(f"{sink.prefix}-{self._index:05d}-") + "*"
            + filesystems.escape_glob(sink.suffix))
        parts = [int(found.group(2)) for path in filesystems.match(pattern)
                 if (found := sink.name_re.fullmatch(filesystems.split(path)[1]))]
        return max(parts, default=-1) + 1

    def write(self, element: Any) -> None:
        self.write_batch([element])

    def write_batch(self, elements: Any) -> None:
        encode = self._sink.encode
        lines = [encode(e) + b"\n" for e in elements]
        limit = self._sink.max_part_size
        start = 0
        while start < len(lines):
            if self._stream is None:
                self._open_part()
            room = limit - self._part.size
            end, taken = start, 0
            while end < len(lines) and taken < room:  # a part ends at the line reaching it
                taken += len(lines[end])
                end += 1
            self._stream.write(b"".join(lines[start:end]))
            self._part = self._part._replace(size=self._part.size + taken)
            if self._part.size >= limit:
                self._roll()
            start = end

    def _open_part(self) -> None:
        sink, part = self._sink, self._next_part
        name = sink.part_name(self._index, part)
        in_progress = filesystems.join(sink.in_progress_dir, name)
        try:
            self._stream = filesystems.open_write(in_progress, sink.compression)
        except OSError as e:
            raise type(e)(f"{sink.display_name()}: cannot create part file "
                          f"{in_progress!r}: {e}") from e
        self._next_part += 1
        self._part = PartFile(in_progress, filesystems.join(sink.path, name), 0)

    def _roll(self) -> None:
        """Close the current part and make it durable; it is ready to be committed."""
        stream, part = self._stream, self._part
        self._stream = self._part = None
        try:
            stream.close()
            filesystems.sync(part.in_progress)
        except OSError as e:
            raise type(e)(f"{self._sink.display_name()}: cannot finish part file "
                          f"{part.in_progress!r}: {e}") from e
        self._ready.append(part)

    def prepare_commit(self, checkpoint_id: int) -> List[PartFile]:
        if self._stream is not None:
            self._roll()
        ready, self._ready = self._ready, []
        self._published.extend(part.final for part in ready)
        return ready

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return {"subtask": self._index, "next_part": self._next_part}

    def close(self) -> List[str]:
        """The final paths this writer handed out; a part never prepared is discarded."""
        if self._stream is not None:
            stream, part = self._stream, self._part
            self._stream = self._part = None
            try:
                stream.close()
                filesystems.delete(part.in_progress)
            except OSError:  # a leftover is removed when a writer opens next
                pass
        return list(self._published)


class _PartCommitter(Committer):
    """Publishes parts by renaming them to their final names, idempotently."""

    def __init__(self, sink: PartFileSink) -> None:
        self._sink = sink

    def commit(self, committables: List[Any]) -> None:
        directories = set()
        for part in committables:
            try:
                if filesystems.exists(part.in_progress):
                    filesystems.rename(part.in_progress, part.final)
                    directories.add(filesystems.split(part.final)[0])
                elif not filesystems.exists(part.final):
                    raise FileNotFoundError(
                        f"in-progress part {part.in_progress!r} is gone and {part.final!r} "
                        f"does not exist (deleted by hand, or by another job writing the "
                        f"same files?)")
            except OSError as e:
                raise type(e)(f"{self._sink.display_name()}: cannot publish "
                              f"{part.final!r}: {e}") from e
        for directory in sorted(directories):
            filesystems.sync(directory)


class WriteToFiles(PTransform):
    """Write each element as a line into part files under ``path``, exactly once.

    Lines are ``format_fn(element)`` (str or bytes), ``coder.encode(element)``, or by
    default ``str(element)`` in UTF-8 (bytes as they are), each followed by ``\\n``.
    Parts are ``<path>/<prefix>-<subtask>-<part><suffix>``, published by two-phase commit
    on checkpoints (see :mod:`headrace.io.fileio`); ``path`` may be local or ``s3://``.
    Compression follows the suffix (``.gz``...) unless ``compression_type`` says otherwise.
    The output PCollection holds the paths of the parts this run published.

    >>> import tempfile, headrace as beam
    >>> out = tempfile.mkdtemp()
    >>> with beam.Pipeline() as p:
    ...     _ = (p | beam.Create([1, 2, 3])
    ...            | beam.io.WriteToFiles(out, format_fn=lambda n: f"n={n}", suffix=".txt"))
    >>> sorted(read_parts(out, suffix=".txt")[0].split())
    [b'n=1', b'n=2', b'n=3']
    """

    def __init__(self, path: str, *, prefix: str = "part", suffix: str = "",
                 coder: Optional[Coder] = None,
                 format_fn: Optional[Callable[[Any], Any]] = None,
                 max_part_size: int = DEFAULT_MAX_PART_SIZE,
                 compression_type: str = CompressionTypes.AUTO) -> None:
        super().__init__()
        self._sink = PartFileSink(path, prefix=prefix, suffix=suffix, coder=coder,
                                  format_fn=format_fn, max_part_size=max_part_size,
                                  compression_type=compression_type)

    def expand(self, pcoll: Any) -> Any:
        return pcoll | Write(self._sink)


def read_parts(path: str, prefix: str = "part", suffix: str = "") -> Dict[int, bytes]:
    """The published output under ``path`` by subtask: its parts' decompressed bytes,
    concatenated in part order (in-progress files are not read).

    >>> import tempfile
    >>> read_parts(tempfile.mkdtemp())
    {}
    """
    name_re = _part_name_re(prefix, suffix)
    found = []
    pattern = filesystems.join(filesystems.escape_glob(path.rstrip("/") or path), "*")
    for file in filesystems.match(pattern):
        named = name_re.fullmatch(filesystems.split(file)[1])
        if named:
            found.append((int(named.group(1)), int(named.group(2)), file))
    out: Dict[int, bytes] = {}
    for subtask, _, file in sorted(found):
        with filesystems.open_read(file) as stream:
            out[subtask] = out.get(subtask, b"") + stream.read()
    return out


def _part_name_re(prefix: str, suffix: str) -> "re.Pattern[str]":
    return re.compile(re.escape(prefix) + r"-(\d{5,})-(\d{6,})" + re.escape(suffix))
