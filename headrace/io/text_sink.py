"""Sharded text output: :class:`WriteToText` and the :class:`TextSink` behind it.

Writers write temporary pieces; ``finalize`` renames (or concatenates) them
into ``prefix-SSSSS-of-NNNNN.suffix`` shards, with Beam's naming.
"""
from __future__ import annotations

import re
import shutil
import uuid
from typing import IO, Any, Dict, List, NamedTuple, Optional, Tuple

from headrace.io import filesystems
from headrace.io.filesystems import CompressionTypes
from headrace.sdk.coders import Coder
from headrace.sdk.io_base import Sink, SinkWriter
from headrace.sdk.primitives import Write
from headrace.sdk.ptransform import PTransform

__all__ = ["TextSink", "WriteToText"]

DEFAULT_SHARD_NAME_TEMPLATE = "-SSSSS-of-NNNNN"
_COPY_BUFFER = 1 << 20


class _ToBytesCoder(Coder):
    """Beam's default text sink coder: bytes as they are, anything else as ``str()`` in UTF-8."""

    def encode(self, value: Any) -> bytes:
        return value if isinstance(value, bytes) else str(value).encode("utf-8")

    def is_deterministic(self) -> bool:
        return True



class _ShardNames:
    """Final shard names from ``prefix + template + suffix``; ``S``/``N`` runs are numbers."""

    def __init__(self, prefix: str, template: str, suffix: str, label: str) -> None:
        if template and "S" not in template:
            raise ValueError(f"{label}({prefix!r}): Shard number pattern S+ not found in "
                             f"shard_name_template: {template!r}")
        if re.search("[UVW]", template):
            raise ValueError(f"{label}({prefix!r}): shard_name_template {template!r} uses "
                             f"U, V or W (uuid and window placeholders), which headrace does "
                             f"not support; use S (shard number) and N (shard count)")
        self._prefix, self._suffix = prefix, suffix
        # Runs of S and N are the only parts starting with those letters.
        self._parts = [p for p in re.split("(S+|N+)", template) if p]

    @property
    def single_file(self) -> bool:
        return not self._parts

    def name(self, shard: int, num_shards: int) -> str:
        out = [self._prefix]
        for part in self._parts:
            if part[0] == "S":
                out.append(str(shard).zfill(len(part)))
            elif part[0] == "N":
                out.append(str(num_shards).zfill(len(part)))
            else:
                out.append(part)
        return "".join(out + [self._suffix])

    def glob(self, num_shards: int) -> str:
        out = [filesystems.escape_glob(self._prefix)]
        for part in self._parts:
            if part[0] == "S":
                out.append("*")
            elif part[0] == "N":
                out.append(str(num_shards).zfill(len(part)))
            else:
                out.append(filesystems.escape_glob(part))
        return "".join(out + [filesystems.escape_glob(self._suffix)])


class _WriterResult(NamedTuple):
    writer_index: int
    pieces: Dict[int, str]  # shard number -> temporary file
    complete: bool  # the pieces already hold the header and footer


class TextSink(Sink):
    """Writes text shards through temporary files; see :class:`WriteToText`.

    >>> import os, tempfile
    >>> prefix = os.path.join(tempfile.mkdtemp(), "out")
    >>> sink = TextSink(prefix, ".txt", num_shards=2)
    >>> writer = sink.open_writer(0, 1)
    >>> writer.write_batch(["a", "b", "c"])
    >>> [os.path.basename(f) for f in sink.finalize([writer.close()])]
    ['out-00000-of-00002.txt', 'out-00001-of-00002.txt']
    """

    def __init__(self, file_path_prefix: str, file_name_suffix: str = "",
                 append_trailing_newlines: bool = True, num_shards: int = 0,
                 shard_name_template: Optional[str] = None, coder: Optional[Coder] = None,
                 compression_type: str = CompressionTypes.AUTO, header: Any = None,
                 footer: Any = None, *, skip_if_empty: bool = False,
                 label: str = "WriteToText") -> None:
        self.label = label
        if not isinstance(file_path_prefix, str) or not file_path_prefix:
            raise TypeError(f"{label}: file_path_prefix must be a non-empty string, "
                            f"got {file_path_prefix!r}")
        where = f"{label}({file_path_prefix!r})"
        if not isinstance(file_name_suffix, str):
            raise TypeError(f"{where}: file_name_suffix must be a string, "
                            f"got {file_name_suffix!r}")
        if not isinstance(num_shards, int) or isinstance(num_shards, bool) or num_shards < 0:
            raise ValueError(f"{where}: num_shards must be an int >= 0, got {num_shards!r}")
        if shard_name_template is not None and not isinstance(shard_name_template, str):
            raise TypeError(f"{where}: shard_name_template must be a string, "
                            f"got {shard_name_template!r}")
        if coder is not None and not callable(getattr(coder, "encode", None)):
            raise TypeError(f"{where}: coder must have an encode(value) method, "
                            f"got {coder!r:.100}")
        if shard_name_template is None:
            shard_name_template = DEFAULT_SHARD_NAME_TEMPLATE
        elif shard_name_template == "":
            num_shards = 1
        self.file_path_prefix = file_path_prefix
        self.file_name_suffix = file_name_suffix
        self.num_shards = num_shards
        self.shard_name_template = shard_name_template
        self.coder = coder if coder is not None else _ToBytesCoder()
        self.skip_if_empty = skip_if_empty
        self.names = _ShardNames(file_path_prefix, shard_name_template, file_name_suffix, label)
        try:
            self.compression = CompressionTypes.resolve(self.names.name(0, 1), compression_type)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        newline = b"\n" if append_trailing_newlines else b""
        self.newline = newline
        self.header = None if header is None else _ToBytesCoder().encode(header) + newline
        self.footer = None if footer is None else _ToBytesCoder().encode(footer) + newline
        directory, name = filesystems.split(file_path_prefix)
        # Hidden, beside the output so that renames stay within one filesystem; unique
        # per sink so that two writes to the same prefix never mix their pieces.
        self.temp_dir = filesystems.join(directory, f".headrace-temp-{name}-{uuid.uuid4().hex}")

    def display_name(self) -> str:
        return (f"{self.label}({self.file_path_prefix}{self.shard_name_template}"
                f"{self.file_name_suffix})")

    def open_writer(self, writer_index: int, num_writers: int) -> "_TextSinkWriter":
        return _TextSinkWriter(self, writer_index, num_writers)

    def finalize(self, writer_results: List[Any]) -> List[str]:
        """Turn the writers' temporary pieces into final shards; returns their names in order."""
        results = sorted(writer_results, key=lambda r: r.writer_index)
        if self.num_shards:
            shards = [[(r.pieces[s], r.complete) for r in results if s in r.pieces]
                      for s in range(self.num_shards)]
        else:
            shards = [[(r.pieces[0], r.complete)] for r in results if r.pieces]
            if not shards and not self.skip_if_empty:
                shards = [[]]  # Beam writes one empty shard for an empty PCollection.
        finals = [self.names.name(i, len(shards)) for i in range(len(shards))]
        if shards and not self.names.single_file:
            # Like Beam, replace the whole previous output of this name pattern.
            stale = set(filesystems.match(self.names.glob(len(shards)))) - set(finals)
            for path in sorted(stale):
                filesystems.delete(path)
        for shard, (final, pieces) in enumerate(zip(finals, shards)):
            self._finalize_shard(shard, final, pieces)
        if filesystems.exists(self.temp_dir):
            # Also removes pieces left by failed writer attempts.
            filesystems.delete(self.temp_dir)
        return finals

    def _finalize_shard(self, shard: int, final: str, pieces: List[Tuple[str, bool]]) -> None:
        paths = [path for path, _ in pieces]
        missing = [path for path in paths if not filesystems.exists(path)]
        if missing:
            if filesystems.exists(final):
                return  # an earlier finalize() already produced this shard
            raise FileNotFoundError(f"{self.label}: temporary files {missing} for output "
                                    f"{final!r} have disappeared")
        if len(pieces) == 1 and pieces[0][1]:
            filesystems.rename(paths[0], final)
            return
        assembled = filesystems.join(self.temp_dir, f"shard-{shard:05d}-{uuid.uuid4().hex}")
        with filesystems.open_write(assembled, CompressionTypes.UNCOMPRESSED) as out:
            # Compressed streams concatenate into a valid file; an empty shard still
            # gets one (empty) stream so that it is a valid compressed file.
            if self.header is not None or not paths:
                out.write(filesystems.compress(self.header or b"", self.compression))
            for path in paths:
                with filesystems.open_read(path, CompressionTypes.UNCOMPRESSED) as piece:
                    shutil.copyfileobj(piece, out, _COPY_BUFFER)
            if self.footer is not None:
                out.write(filesystems.compress(self.footer, self.compression))
        filesystems.rename(assembled, final)


class _TextSinkWriter(SinkWriter):
    """One parallel writer of a :class:`TextSink`, writing one temporary piece per shard."""

    def __init__(self, sink: TextSink, writer_index: int, num_writers: int) -> None:
        self._sink = sink
        self._index = writer_index
        # num_shards=0: each writer's output is one shard of its own.
        self._num_shards = sink.num_shards or 1
        self._complete = (sink.num_shards == 0 or num_writers == 1
                          or (sink.header is None and sink.footer is None))
        # Writers start at different shards so that small outputs still spread out.
        self._next_shard = writer_index % self._num_shards
        self._attempt = uuid.uuid4().hex[:12]
        self._files: Dict[int, IO[bytes]] = {}
        self._paths: Dict[int, str] = {}
        self._encode = sink.coder.encode

    def _file(self, shard: int) -> IO[bytes]:
        f = self._files.get(shard)
        if f is None:
            path = filesystems.join(
                self._sink.temp_dir, f"w{self._index:05d}-s{shard:05d}-{self._attempt}")
            try:
                f = filesystems.open_write(path, self._sink.compression)
            except OSError as e:
                raise type(e)(f"{self._sink.label}: cannot create temporary file {path!r}: "
                              f"{e}") from e
            if self._complete and self._sink.header is not None:
                f.write(self._sink.header)
            self._files[shard], self._paths[shard] = f, path
        return f

    def write(self, element: Any) -> None:
        shard = self._next_shard
        self._next_shard = (shard + 1) % self._num_shards
        self._file(shard).write(self._encode(element) + self._sink.newline)

    def write_batch(self, elements: Any) -> None:
        lines = [self._encode(e) for e in elements]
        if not lines:
            return
        newline, n, first = self._sink.newline, self._num_shards, self._next_shard
        for k in range(min(n, len(lines))):
            self._file((first + k) % n).write(newline.join(lines[k::n]) + newline)
        self._next_shard = (first + len(lines)) % n

    def close(self) -> _WriterResult:
        for f in self._files.values():
            if self._complete and self._sink.footer is not None:
                f.write(self._sink.footer)
            f.close()
        return _WriterResult(self._index, dict(self._paths), self._complete)


class WriteToText(PTransform):
    """Write each element as a line of text (``str(element)``, bytes as they are).

    Output files are ``file_path_prefix + shard_name_template + file_name_suffix``
    with the template's ``S`` run replaced by the shard number and ``N`` run by
    the shard count (default ``-SSSSS-of-NNNNN``; ``''`` writes exactly one file).
    The output PCollection holds the names of the files written.

    >>> import os, tempfile, headrace as beam
    >>> prefix = os.path.join(tempfile.mkdtemp(), "out")
    >>> with beam.Pipeline() as p:
    ...     files = p | beam.Create(["a", "b"]) | beam.io.WriteToText(prefix, ".txt")
    """

    def __init__(self, file_path_prefix: str, file_name_suffix: str = "",
                 append_trailing_newlines: bool = True, num_shards: int = 0,
                 shard_name_template: Optional[str] = None, coder: Optional[Coder] = None,
                 compression_type: str = CompressionTypes.AUTO, header: Any = None,
                 footer: Any = None, *, skip_if_empty: bool = False) -> None:
        super().__init__()
        self._sink = TextSink(file_path_prefix, file_name_suffix, append_trailing_newlines,
                              num_shards, shard_name_template, coder, compression_type,
                              header, footer, skip_if_empty=skip_if_empty)

    def expand(self, pcoll: Any) -> Any:
        return pcoll | Write(self._sink)
