"""Exactly-once file output: :class:`WriteToFiles` and the :class:`PartFileSink` behind it.

This is Flink's ``FileSink`` with Beam's transform name (``beam.io.fileio.WriteToFiles``
is Beam's streaming file sink). Each writer (one per subtask) writes *part files*:

- named ``<path>/<prefix>-<subtask:05d>-<part:06d><suffix>``, the part number counting up per
  subtask (kept in the writer's checkpointed state, and never below a part already published);
- written first as hidden *in-progress* files under ``<path>/.in-progress/`` with the same
  name, so that no reader of ``<path>/*`` sees them;
- optionally in a subdirectory per element chosen by a ``destination`` function (Flink's
  bucket assigner: a date, a region...), ``<path>/<destination>/<name>``, in progress under
  ``<path>/.in-progress/<destination>/``;
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
numbers continue after them. Restoring a checkpoint older than the latest complete one
(an old savepoint) leaves the parts published after it in place, as Flink does. Without
checkpointing (the direct runner) everything is published at the end of input.

What is identical between runs over the same input, whatever the checkpoint timing and the
crashes and restores in between: the multiset of lines over all published parts, and, for
each subtask without destinations, the concatenation of its parts in part order whenever the
records reach that subtask in a deterministic order (one subtask, or an input order fixed per
subtask). Where
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
from typing import Any, Callable, Dict, List, Optional

from headrace.io import filesystems
from headrace.io.filesystems import CompressionTypes
from headrace.io.part_files import PartCommitter, PartFile, PartWriter, published_parts
from headrace.sdk.coders import Coder
from headrace.sdk.io_base import CommittingSink
from headrace.sdk.primitives import Write
from headrace.sdk.ptransform import PTransform

__all__ = ["PartFile", "PartFileSink", "WriteToFiles", "read_parts"]

#: A part rolls once it holds this many bytes (before compression).
DEFAULT_MAX_PART_SIZE = 128 << 20
IN_PROGRESS_DIR = ".in-progress"


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
                 destination: Optional[Callable[[Any], str]] = None,
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
        if destination is not None and not callable(destination):
            raise TypeError(f"{where}: destination must be callable (element -> directory), "
                            f"got {destination!r:.100}")
        if (not isinstance(max_part_size, int) or isinstance(max_part_size, bool)
                or max_part_size <= 0):
            raise ValueError(f"{where}: max_part_size must be a positive int (bytes), "
                             f"got {max_part_size!r}")
        self.path = path.rstrip("/") or path
        self.prefix, self.suffix = prefix, suffix
        self.coder, self.format_fn = coder, format_fn
        self.max_part_size = max_part_size
        self.destination = destination
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

    def destination_dir(self, value: Any, element: Any) -> str:
        """Check what ``destination`` returned for ``element``: a relative directory.

        >>> PartFileSink("/out", destination=str).destination_dir("2024/05/", None)
        '2024/05'
        """
        if not isinstance(value, str):
            raise TypeError(f"{self.display_name()}: destination must return a str (a "
                            f"relative directory), got {type(value).__name__} for "
                            f"{element!r:.100}")
        parts = value.rstrip("/").split("/") if value else []
        if value.startswith("/") or any(p in ("", "..") or p.startswith(".") for p in parts):
            raise ValueError(f"{self.display_name()}: destination {value!r} for "
                             f"{element!r:.100} is not a relative directory of visible "
                             f"names (no '..', no empty or hidden parts)")
        return "/".join(parts)

    def encode(self, element: Any) -> bytes:
        """One line's bytes, without the newline: format_fn or coder, else ``str()`` in UTF-8."""
        return self.line_encoder()(element)

    def line_encoder(self) -> Callable[[Any], bytes]:
        """The function :meth:`encode` applies (looked up once per batch by writers)."""
        if self.coder is not None:
            return self.coder.encode
        format_fn = self.format_fn
        if format_fn is None:
            return lambda v: v if type(v) is bytes else str(v).encode("utf-8")

        def formatted(element: Any) -> bytes:
            value = format_fn(element)
            if type(value) is str:
                return value.encode("utf-8")
            if isinstance(value, bytes):
                return value
            raise TypeError(f"{self.display_name()}: format_fn must return str or bytes, "
                            f"got {type(value).__name__} for {element!r:.100}")

        return formatted

    def open_writer(self, writer_index: int, num_writers: int) -> PartWriter:
        return PartWriter(self, writer_index, num_writers, 0)

    def restore_writer(self, writer_index: int, num_writers: int,
                       states: List[Any]) -> PartWriter:
        # Only the old writer of the same index numbered parts with this index.
        next_part = max((s["next_part"] for s in states
                         if s is not None and s["subtask"] == writer_index), default=0)
        return PartWriter(self, writer_index, num_writers, next_part)

    def create_committer(self, writer_index: int, num_writers: int) -> PartCommitter:
        return PartCommitter(self)

    def finalize(self, writer_results: List[Any]) -> List[str]:
        """The final paths of the parts published by this run's writers, sorted."""
        return sorted(path for paths in writer_results for path in paths)


class WriteToFiles(PTransform):
    """Write each element as a line into part files under ``path``, exactly once.

    Lines are ``format_fn(element)`` (str or bytes), ``coder.encode(element)``, or by
    default ``str(element)`` in UTF-8 (bytes as they are), each followed by ``\\n``.
    Parts are ``<path>/<prefix>-<subtask>-<part><suffix>``, published by two-phase commit
    on checkpoints (see :mod:`headrace.io.fileio`); ``path`` may be local or ``s3://``.
    Compression follows the suffix (``.gz``...) unless ``compression_type`` says otherwise.
    ``destination(element)`` may name a subdirectory (``"2024-05-01"``, ``"eu/clicks"``) per
    element, as Flink's bucket assigner: each has its own parts, numbered per subtask across
    all destinations. The output PCollection holds the paths of the parts this run published.

    >>> import tempfile, headrace as beam
    >>> out = tempfile.mkdtemp()
    >>> with beam.Pipeline() as p:
    ...     _ = (p | beam.Create([1, 2, 3])
    ...            | beam.io.WriteToFiles(out, format_fn=lambda n: f"n={n}", suffix=".txt"))
    >>> sorted(read_parts(out, suffix=".txt")[0].split())
    [b'n=1', b'n=2', b'n=3']
    >>> with beam.Pipeline() as p:
    ...     _ = (p | beam.Create([1, 2, 3])
    ...            | beam.io.WriteToFiles(out + "/by", destination=lambda n: f"n{n % 2}"))
    >>> import os
    >>> sorted(os.path.relpath(f, out) for f in filesystems.match(out + "/by/*/*"))
    ['by/n0/part-00000-000001', 'by/n1/part-00000-000000']
    """

    def __init__(self, path: str, *, prefix: str = "part", suffix: str = "",
                 coder: Optional[Coder] = None,
                 format_fn: Optional[Callable[[Any], Any]] = None,
                 max_part_size: int = DEFAULT_MAX_PART_SIZE,
                 compression_type: str = CompressionTypes.AUTO,
                 destination: Optional[Callable[[Any], str]] = None) -> None:
        super().__init__()
        self._sink = PartFileSink(path, prefix=prefix, suffix=suffix, coder=coder,
                                  format_fn=format_fn, max_part_size=max_part_size,
                                  compression_type=compression_type, destination=destination)

    def expand(self, pcoll: Any) -> Any:
        return pcoll | Write(self._sink)


def read_parts(path: str, prefix: str = "part", suffix: str = "",
               destinations: bool = False) -> Dict[int, bytes]:
    """The published output under ``path`` by subtask: its parts' decompressed bytes,
    concatenated in part order (in-progress files are not read); with ``destinations``,
    parts in subdirectories too.

    >>> import tempfile
    >>> read_parts(tempfile.mkdtemp())
    {}
    """
    sink = PartFileSink(path, prefix=prefix, suffix=suffix,
                        destination=str if destinations else None, label="read_parts")
    out: Dict[int, bytes] = {}
    for subtask, _, file in published_parts(sink):
        with filesystems.open_read(file) as stream:
            out[subtask] = out.get(subtask, b"") + stream.read()
    return out


def _part_name_re(prefix: str, suffix: str) -> "re.Pattern[str]":
    return re.compile(re.escape(prefix) + r"-(\d{5,})-(\d{6,})" + re.escape(suffix))
