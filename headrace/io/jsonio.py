"""JSON Lines files: one JSON value per line, read and written like text files.

Reading works like ``ReadFromText`` (globs, compression, byte-range splits, header
lines); writing names, shards and compresses files like ``WriteToText``.
"""
from __future__ import annotations

import json
from typing import Any, Optional

from headrace.io.filesystems import CompressionTypes
from headrace.io.textio import TextSink, TextSource
from headrace.sdk.coders import Coder
from headrace.sdk.primitives import Read, Write
from headrace.sdk.ptransform import PTransform

__all__ = ["ReadFromJsonLines", "WriteToJsonLines"]


class _JsonLinesCoder(Coder):
    """One JSON document per record; encoding errors name the transform."""

    def __init__(self, label: str) -> None:
        self._label = label

    def encode(self, value: Any) -> bytes:
        try:
            return json.dumps(value).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise TypeError(f"{self._label}: cannot write an element of type "
                            f"{type(value).__name__} as JSON ({e}): {value!r:.200}") from e

    def decode(self, encoded: bytes) -> Any:
        # json.loads takes bytes and detects UTF-8/16/32 itself.
        return json.loads(encoded)

    def _components(self) -> tuple:
        return (self._label,)


class ReadFromJsonLines(PTransform):
    """Read the files matching a pattern as JSON Lines, producing the parsed values.

    Blank lines are skipped; a line that is not valid JSON fails the read with
    the file name and line number. Options are those of ``ReadFromText``.

    >>> import os, tempfile, headrace as beam
    >>> path = os.path.join(tempfile.mkdtemp(), "in.jsonl")
    >>> with open(path, "w") as f:
    ...     _ = f.write('{"user": "a", "n": 1}\\n{"user": "b", "n": 2}\\n')
    >>> with beam.Pipeline() as p:
    ...     records = p | beam.io.ReadFromJsonLines(path)
    """

    def __init__(self, file_pattern: str, min_bundle_size: int = 0,
                 compression_type: str = CompressionTypes.AUTO, validate: bool = True,
                 skip_header_lines: int = 0) -> None:
        super().__init__()
        label = type(self).__name__
        self._source = TextSource(file_pattern, min_bundle_size, compression_type,
                                  coder=_JsonLinesCoder(label), validate=validate,
                                  skip_header_lines=skip_header_lines, skip_blank_lines=True,
                                  label=label)
        self._source.validate()

    def expand(self, pbegin: Any) -> Any:
        return pbegin | Read(self._source)


class WriteToJsonLines(PTransform):
    """Write each element as one line of ``json.dumps(element)``.

    Naming, sharding and compression are those of ``WriteToText``; the output
    PCollection holds the names of the files written. An element that JSON
    cannot represent fails the write with its type.

    >>> import os, tempfile, headrace as beam
    >>> prefix = os.path.join(tempfile.mkdtemp(), "out")
    >>> with beam.Pipeline() as p:
    ...     files = p | beam.Create([{"a": 1}]) | beam.io.WriteToJsonLines(prefix, ".jsonl")
    """

    def __init__(self, file_path_prefix: str, file_name_suffix: str = "",
                 num_shards: int = 0, shard_name_template: Optional[str] = None,
                 compression_type: str = CompressionTypes.AUTO, *,
                 skip_if_empty: bool = False) -> None:
        super().__init__()
        label = type(self).__name__
        self._sink = TextSink(file_path_prefix, file_name_suffix, num_shards=num_shards,
                              shard_name_template=shard_name_template,
                              coder=_JsonLinesCoder(label), compression_type=compression_type,
                              skip_if_empty=skip_if_empty, label=label)

    def expand(self, pcoll: Any) -> Any:
        return pcoll | Write(self._sink)
