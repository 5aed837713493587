"""Text files: :class:`ReadFromText` (here) and :class:`WriteToText` (in ``text_sink``).

Records end at ``\\n`` or ``\\r\\n`` (or a custom ``delimiter``); a last line
without a newline is a record, a file's trailing empty "line" is not.
Uncompressed files are split into byte ranges; a record belongs to the range
in which it starts.
"""
from __future__ import annotations

import lzma
import zlib
from typing import IO, Any, Dict, List, Optional, Tuple

from headrace.io import filesystems
from headrace.io.filesystems import CompressionTypes
from headrace.sdk.coders import Coder, StrUtf8Coder
from headrace.sdk.io_base import Source, SourceSplit, SplitReader
from headrace.sdk.primitives import Read
from headrace.sdk.ptransform import PTransform

__all__ = ["ReadFromText", "TextSink", "TextSource", "WriteToText"]

_CHUNK_SIZE = 1 << 16
# What a failing decompressor or file may raise mid-read.
_READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


class _RecordScanner:
    """Cuts a binary stream into delimited records, tracking each record's byte offset."""

    def __init__(self, stream: IO[bytes], offset: int, delimiter: Optional[bytes],
                 escapechar: Optional[bytes], keep_delimiter: bool, where: str) -> None:
        self._stream = stream
        self._delimiter = delimiter or b"\n"
        # With the default delimiter a "\r" before the "\n" is part of the line ending.
        self._crlf = delimiter is None
        self._escape = escapechar[0] if escapechar else None
        self._keep = keep_delimiter
        # Without escapes, whole buffers can be split at once instead of record by record.
        self._bulk = escapechar is None and not keep_delimiter
        self._where = where
        self._buf = b""
        self._pos = 0  # index in _buf of the next record's first byte
        #: File offset (in the decompressed stream) of the next record's first byte.
        self.offset = offset

    def _fill(self) -> bool:
        try:
            chunk = self._stream.read(_CHUNK_SIZE)
        except _READ_ERRORS as e:
            raise OSError(f"{self._where}: read failed near byte {self.offset}: {e}") from e
        if not chunk:
            return False
        self._buf = self._buf[self._pos:] + chunk
        self._pos = 0
        return True

    def _is_escaped(self, index: int) -> bool:
        run, j = 0, index - 1
        while j >= self._pos and self._buf[j] == self._escape:
            run += 1
            j -= 1
        return run % 2 == 1

    def _find_delimiter(self, search: int) -> Optional[Tuple[int, int]]:
        buf, delimiter = self._buf, self._delimiter
        while True:
            i = buf.find(delimiter, search)
            if i < 0:
                return None
            if self._escape is not None and self._is_escaped(i):
                search = i + len(delimiter)
                continue
            end = i
            if (self._crlf and i > self._pos and buf[i - 1] == 13
                    and not (self._escape is not None and self._is_escaped(i - 1))):
                end = i - 1
            return end, i + len(delimiter)

    def next_record(self) -> Optional[Tuple[bytes, int]]:
        """The next record and its start offset, or ``None`` at the end of the stream."""
        searched = 0  # bytes after _pos already known not to start a delimiter
        while True:
            found = self._find_delimiter(self._pos + searched)
            if found is not None:
                break
            searched = max(0, len(self._buf) - self._pos - len(self._delimiter) + 1)
            if not self._fill():
                record = self._buf[self._pos:]
                if not record:
                    return None
                start = self.offset
                self.offset += len(record)
                self._pos = len(self._buf)
                return record, start
        end, next_start = found
        record = self._buf[self._pos:next_start if self._keep else end]
        start = self.offset
        self.offset += next_start - self._pos
        self._pos = next_start
        return record, start

    def take(self, max_records: int, end: Optional[int]) -> List[bytes]:
        """Up to ``max_records`` complete records already buffered, starting before ``end``.

        Returns ``[]`` when the buffer holds no complete record (or bulk
        splitting does not apply); :meth:`next_record` then reads on.
        """
        if not self._bulk:
            return []
        buf, pos, delimiter = self._buf, self._pos, self._delimiter
        stop = buf.rfind(delimiter, pos)  # the last delimiter to consume
        if stop < 0:
            return []
        if end is not None:
            # The record ending at the first delimiter that ends at or after ``end``
            # is the last one starting before it.
            boundary = buf.find(delimiter, max(pos, pos + end - self.offset - len(delimiter)))
            if 0 <= boundary < stop:
                stop = boundary
        region = buf[pos:stop]
        records = region.split(delimiter, max_records)
        if len(records) > max_records:
            records.pop()  # the unsplit rest
            consumed = sum(map(len, records)) + len(records) * len(delimiter)
        else:
            consumed = stop + len(delimiter) - pos
        self._pos += consumed
        self.offset += consumed
        if self._crlf and b"\r" in region:
            records = [r[:-1] if r.endswith(b"\r") else r for r in records]
        return records

    def skip_to_record_at_or_after(self, start: int) -> None:
        """Reposition a seekable stream at the first record starting at or after ``start``."""
        # A record starts right after a delimiter that ends at or after ``start``.
        begin = max(0, start - len(self._delimiter))
        if self._escape is not None:
            # Whether that delimiter is escaped depends on the run of escape bytes before it.
            while begin > 0:
                step = min(begin, _CHUNK_SIZE)
                self._stream.seek(begin - step)
                window = self._stream.read(step)
                run = len(window) - len(window.rstrip(bytes([self._escape])))
                begin -= run
                if run < step:
                    break
        self.seek(begin)
        self.next_record()

    def seek(self, offset: int) -> None:
        """Continue reading at ``offset`` (forward-only decompression for compressed files)."""
        self._stream.seek(offset)
        self._buf, self._pos, self.offset = b"", 0, offset


class _TextFileSplit(SourceSplit):
    """The byte range ``[start, end)`` of one file (``end=None``: to the end of the file)."""

    def __init__(self, source: "TextSource", path: str, start: int, end: Optional[int]) -> None:
        self.source = source
        self.path = path
        self.start = start
        self.end = end

    def __repr__(self) -> str:
        return f"_TextFileSplit({self.path!r}, {self.start}, {self.end})"

    def open(self, position: Any = None) -> "_TextSplitReader":
        """Open a reader; ``position`` is a byte offset returned by ``position()``."""
        source = self.source
        try:
            stream = filesystems.open_read(self.path, source.compression_for(self.path))
        except OSError as e:
            raise type(e)(f"{source.label}: cannot open file {self.path!r} "
                          f"(matched by {source.file_pattern!r}): {e}") from e
        try:
            scanner = source._scanner(stream, self.path)
            if position is not None:
                # A saved position is always a record start after any header.
                scanner.seek(position)
            else:
                for _ in range(source.skip_header_lines):
                    if scanner.next_record() is None:
                        break
                if self.start > scanner.offset:
                    scanner.skip_to_record_at_or_after(self.start)
        except BaseException:
            stream.close()
            raise
        return _TextSplitReader(self, stream, scanner)


class _TextSplitReader(SplitReader):
    """Reads the records of one :class:`_TextFileSplit`; ``position()`` is a byte offset."""

    def __init__(self, split: _TextFileSplit, stream: IO[bytes], scanner: _RecordScanner) -> None:
        self._split = split
        self._stream = stream
        self._scanner = scanner
        self._decode = split.source.coder.decode
        self._skip_blank = split.source.skip_blank_lines
        self._done = False

    def read_batch(self, max_records: int) -> Optional[List[Any]]:
        if self._done:
            return None
        scanner, end, decode = self._scanner, self._split.end, self._decode
        out: List[Any] = []
        while len(out) < max_records:
            if end is not None and scanner.offset >= end:
                self._done = True
                break
            first = scanner.offset
            records = scanner.take(max_records - len(out), end)
            if not records:
                found = scanner.next_record()
                if found is None:
                    self._done = True
                    break
                records = [found[0]]
            if self._skip_blank:
                records = [r for r in records if r.strip()]
            try:
                out.extend([decode(r) for r in records])
            except Exception as e:
                index, error = self._first_failure(records, e)
                raise self._decode_error(first, index, error) from error
        return None if self._done and not out else out

    def position(self) -> int:
        return self._scanner.offset

    def close(self) -> None:
        self._stream.close()

    def _first_failure(self, records: List[bytes], error: Exception) -> Tuple[int, Exception]:
        """Which of ``records`` failed to decode in a batch, and why."""
        for index, record in enumerate(records):
            try:
                self._decode(record)
            except Exception as e:
                return index, e
        return 0, error

    def _decode_error(self, first: int, index: int, error: Exception) -> ValueError:
        line, start = self._locate(first, index)
        offset = start + error.start if isinstance(error, UnicodeDecodeError) else start
        return ValueError(
            f"{self._split.source.label}: cannot decode line {line} of {self._split.path!r} "
            f"(byte offset {offset}): {error}")

    def _locate(self, first: int, index: int) -> Tuple[str, int]:
        """The line number and offset of the ``index``-th non-skipped record from ``first``."""
        # Found by reading the file again, only when reporting an error.
        source, path = self._split.source, self._split.path
        try:
            with filesystems.open_read(path, source.compression_for(path)) as stream:
                scanner = source._scanner(stream, path)
                line = 1
                while scanner.offset < first and scanner.next_record() is not None:
                    line += 1
                while True:
                    start = scanner.offset
                    found = scanner.next_record()
                    if found is None or not (self._skip_blank and not found[0].strip()):
                        if index == 0:
                            return str(line), start
                        index -= 1
                    line += 1
        except _READ_ERRORS:
            return "?", first


class TextSource(Source):
    """The files matching a pattern, read as delimited text records; see :class:`ReadFromText`.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "in.txt")
    >>> with open(path, "w") as f:
    ...     _ = f.write("a\\nb\\r\\nc")
    >>> [split] = TextSource(path).split(1)
    >>> reader = split.open()
    >>> reader.read_batch(10), reader.position()
    (['a', 'b', 'c'], 6)
    """

    def __init__(self, file_pattern: str, min_bundle_size: int = 0,
                 compression_type: str = CompressionTypes.AUTO,
                 strip_trailing_newlines: bool = True, coder: Optional[Coder] = None,
                 validate: bool = True, skip_header_lines: int = 0,
                 delimiter: Optional[bytes] = None, escapechar: Optional[bytes] = None, *,
                 skip_blank_lines: bool = False, label: str = "ReadFromText") -> None:
        self.label = label
        if not isinstance(file_pattern, str) or not file_pattern:
            raise TypeError(f"{label}: file_pattern must be a non-empty string, "
                            f"got {file_pattern!r}")
        if not CompressionTypes.is_valid_compression_type(compression_type):
            raise ValueError(f"{label}({file_pattern!r}): unsupported compression_type "
                             f"{compression_type!r}")
        if not isinstance(min_bundle_size, int) or min_bundle_size < 0:
            raise ValueError(f"{label}({file_pattern!r}): min_bundle_size must be an int >= 0, "
                             f"got {min_bundle_size!r}")
        if not isinstance(skip_header_lines, int) or skip_header_lines < 0:
            raise ValueError(f"{label}({file_pattern!r}): Cannot skip negative number of "
                             f"header lines: {skip_header_lines!r}")
        if delimiter is not None:
            if not isinstance(delimiter, bytes) or not delimiter:
                raise ValueError(f"{label}({file_pattern!r}): Delimiter must be a non-empty "
                                 f"bytes sequence, got {delimiter!r}")
            if any(delimiter[:i] == delimiter[-i:] for i in range(1, len(delimiter))):
                raise ValueError(f"{label}({file_pattern!r}): Delimiter must not self-overlap "
                                 f"(a prefix equal to a suffix is ambiguous): {delimiter!r}")
        if escapechar is not None:
            if not isinstance(escapechar, bytes) or len(escapechar) != 1:
                raise ValueError(f"{label}({file_pattern!r}): escapechar must be bytes of "
                                 f"size 1, got {escapechar!r}")
            if escapechar in (delimiter or b"\n"):
                raise ValueError(f"{label}({file_pattern!r}): escapechar {escapechar!r} must "
                                 f"not be part of the delimiter")
        if coder is not None and not callable(getattr(coder, "decode", None)):
            raise TypeError(f"{label}({file_pattern!r}): coder must have a decode(bytes) "
                            f"method, got {coder!r:.100}")
        self.file_pattern = file_pattern
        self.min_bundle_size = min_bundle_size
        self.compression_type = compression_type
        self.strip_trailing_newlines = strip_trailing_newlines
        self.coder = coder if coder is not None else StrUtf8Coder()
        self.should_validate = validate
        self.skip_header_lines = skip_header_lines
        self.delimiter = delimiter
        self.escapechar = escapechar
        self.skip_blank_lines = skip_blank_lines

    def display_name(self) -> str:
        return f"{self.label}({self.file_pattern})"

    def validate(self) -> None:
        """With ``validate=True``: ``FileNotFoundError`` if the pattern matches no file."""
        if self.should_validate:
            self._match()

    def _match(self) -> List[str]:
        try:
            paths = filesystems.match(self.file_pattern)
        except OSError as e:
            raise type(e)(f"{self.label}: cannot list files for pattern "
                          f"{self.file_pattern!r}: {e}") from e
        if not paths:
            raise FileNotFoundError(f"{self.label}: No files found based on the file pattern "
                                    f"{self.file_pattern!r}")
        return paths

    def compression_for(self, path: str) -> str:
        """The concrete compression of ``path`` under this source's ``compression_type``.

        >>> TextSource("/data/*", validate=False).compression_for("/data/a.gz")
        'gzip'
        """
        try:
            return CompressionTypes.resolve(path, self.compression_type)
        except ValueError as e:
            raise ValueError(f"{self.label}: {e}") from None

    def _scanner(self, stream: IO[bytes], path: str) -> _RecordScanner:
        return _RecordScanner(stream, 0, self.delimiter, self.escapechar,
                              not self.strip_trailing_newlines,
                              f"{self.label}: file {path!r}")

    def split(self, desired_num_splits: int) -> List[SourceSplit]:
        """One split per compressed file; uncompressed files in byte ranges of equal size."""
        sizes: Dict[str, Optional[int]] = {}
        for path in self._match():
            if self.compression_for(path) != CompressionTypes.UNCOMPRESSED:
                sizes[path] = None
                continue
            try:
                sizes[path] = filesystems.size(path)
            except OSError as e:
                raise type(e)(f"{self.label}: cannot read file {path!r} (matched by "
                              f"{self.file_pattern!r}): {e}") from e
        total = sum(size for size in sizes.values() if size)
        bundle = max(self.min_bundle_size, -(-total // max(1, desired_num_splits)), 1)
        splits: List[SourceSplit] = []
        for path, size in sizes.items():
            starts = range(0, size, bundle) if size else [0]
            for start in starts:
                # The last range reads to whatever the end of the file is when it is read.
                end = start + bundle if start + bundle < (size or 0) else None
                splits.append(_TextFileSplit(self, path, start, end))
        return splits


class ReadFromText(PTransform):
    """Read lines (or ``delimiter``-separated records) from the files matching a pattern.

    Lines are decoded as UTF-8 unless a ``coder`` is given; ``skip_header_lines``
    are skipped at the start of every file; compression follows the extension
    with ``compression_type='auto'``. A custom ``delimiter`` (bytes) replaces
    ``\\n``/``\\r\\n``; an ``escapechar`` byte makes the delimiter (or itself)
    that follows it literal. Output elements are in file order within a file.

    >>> import os, tempfile, headrace as beam
    >>> path = os.path.join(tempfile.mkdtemp(), "in.txt")
    >>> with open(path, "w") as f:
    ...     _ = f.write("header\\nx\\ny\\n")
    >>> with beam.Pipeline() as p:
    ...     lines = p | beam.io.ReadFromText(path, skip_header_lines=1)
    """

    def __init__(self, file_pattern: str, min_bundle_size: int = 0,
                 compression_type: str = CompressionTypes.AUTO,
                 strip_trailing_newlines: bool = True, coder: Optional[Coder] = None,
                 validate: bool = True, skip_header_lines: int = 0,
                 delimiter: Optional[bytes] = None, escapechar: Optional[bytes] = None) -> None:
        super().__init__()
        self._source = TextSource(file_pattern, min_bundle_size, compression_type,
                                  strip_trailing_newlines, coder, validate, skip_header_lines,
                                  delimiter, escapechar)
        self._source.validate()

    def expand(self, pbegin: Any) -> Any:
        return pbegin | Read(self._source)


# WriteToText lives with the sink; re-exported for Beam's ``io.textio`` module path.
from headrace.io.text_sink import TextSink, WriteToText  # noqa: E402
