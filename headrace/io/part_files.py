"""The writer and committer of :class:`~headrace.io.fileio.PartFileSink`'s part files.

A writer keeps one open in-progress part per destination directory, numbering parts per
subtask across all destinations; see :mod:`headrace.io.fileio` for the protocol.
"""
from __future__ import annotations

from typing import IO, Any, Dict, List, NamedTuple, Optional, Tuple

from headrace.io import filesystems
from headrace.sdk.io_base import Committer, CommittingSinkWriter

#: Normalized destinations remembered per writer (by the value the function returned).
_DESTINATION_CACHE = 10_000


class PartFile(NamedTuple):
    """A committable: a closed, durable in-progress part and the name it is published as."""

    in_progress: str
    final: str
    size: int


def published_parts(sink: Any, subtask: Optional[int] = None) -> List[Tuple[int, int, str]]:
    """``(subtask, part, path)`` of every published part of ``sink`` (of one subtask if
    given), sorted; files under hidden directories (in-progress ones) are not published."""
    base = sink.path
    name = f"{sink.prefix}-{subtask:05d}-" if subtask is not None else f"{sink.prefix}-"
    depth = "**" if sink.destination is not None else ""
    pattern = filesystems.join(filesystems.escape_glob(base),
                               depth + filesystems.escape_glob(name) + "*"
                               + filesystems.escape_glob(sink.suffix))
    found = []
    for path in filesystems.match(pattern):
        relative = path[len(base):].strip("/").split("/")
        named = sink.name_re.fullmatch(relative[-1])
        if named and not any(d.startswith(".") for d in relative[:-1]):
            found.append((int(named.group(1)), int(named.group(2)), path))
    return sorted(found)


class PartWriter(CommittingSinkWriter):
    """One subtask's writer: appends lines to the open in-progress part of each destination."""

    def __init__(self, sink: Any, index: int, num_writers: int, next_part: int) -> None:
        self._sink, self._index = sink, index
        try:
            self._remove_leftovers(num_writers)
            published = published_parts(sink, index)
            self._next_part = max(next_part, published[-1][1] + 1 if published else 0)
        except OSError as e:
            raise type(e)(f"{sink.display_name()}: cannot open writer {index}: {e}") from e
        self._encode = sink.line_encoder()
        self._destination = sink.destination
        self._destinations: Dict[Any, str] = {}
        self._open: Dict[str, Tuple[IO[bytes], PartFile]] = {}
        self._ready: List[PartFile] = []
        self._published: List[str] = []

    def _remove_leftovers(self, num_writers: int) -> None:
        sink = self._sink
        pattern = filesystems.join(filesystems.escape_glob(sink.in_progress_dir), "**")
        for path in filesystems.match(pattern):
            found = sink.name_re.fullmatch(filesystems.split(path)[1])
            if found and int(found.group(1)) % num_writers == self._index:
                filesystems.delete(path)

    def write(self, element: Any) -> None:
        self.write_batch([element])

    def write_batch(self, elements: Any) -> None:
        if self._destination is None:
            self._write_lines("", list(map(self._encode, elements)))
            return
        groups: Dict[str, List[bytes]] = {}
        destination, known, encode = self._destination, self._destinations, self._encode
        for element in elements:
            value = destination(element)
            directory = known.get(value) if type(value) is str else None
            if directory is None:
                directory = self._sink.destination_dir(value, element)
                if len(known) >= _DESTINATION_CACHE:
                    known.clear()
                known[value] = directory
            groups.setdefault(directory, []).append(encode(element))
        for directory, lines in groups.items():
            self._write_lines(directory, lines)

    def _write_lines(self, destination: str, lines: List[bytes]) -> None:
        limit = self._sink.max_part_size
        start = 0
        while start < len(lines):
            stream, part = self._open.get(destination) or self._open_part(destination)
            room = limit - part.size
            end = len(lines)
            taken = sum(map(len, lines[start:] if start else lines)) + end - start
            if taken > room:  # the part ends with the line that reaches the limit
                end, taken = start, 0
                while taken < room:
                    taken += len(lines[end]) + 1
                    end += 1
            stream.write(b"\n".join(lines[start:end]) + b"\n")
            part = part._replace(size=part.size + taken)
            self._open[destination] = (stream, part)
            if part.size >= limit:
                self._roll(destination)
            start = end

    def _open_part(self, destination: str) -> Tuple[IO[bytes], PartFile]:
        sink = self._sink
        name = sink.part_name(self._index, self._next_part)
        relative = filesystems.join(destination, name) if destination else name
        in_progress = filesystems.join(sink.in_progress_dir, relative)
        try:
            stream = filesystems.open_write(in_progress, sink.compression)
        except OSError as e:
            raise type(e)(f"{sink.display_name()}: cannot create part file "
                          f"{in_progress!r}: {e}") from e
        self._next_part += 1
        opened = self._open[destination] = (
            stream, PartFile(in_progress, filesystems.join(sink.path, relative), 0))
        return opened

    def _roll(self, destination: str) -> None:
        """Close the destination's open part and make it durable: ready to be committed."""
        stream, part = self._open.pop(destination)
        try:
            stream.close()
            filesystems.sync(part.in_progress)
        except OSError as e:
            raise type(e)(f"{self._sink.display_name()}: cannot finish part file "
                          f"{part.in_progress!r}: {e}") from e
        self._ready.append(part)

    def prepare_commit(self, checkpoint_id: int) -> List[PartFile]:
        for destination in sorted(self._open):
            self._roll(destination)
        ready, self._ready = self._ready, []
        # The new files' directory entries, too.
        for directory in sorted({filesystems.split(part.in_progress)[0] for part in ready}):
            try:
                filesystems.sync(directory)
            except OSError as e:
                raise type(e)(f"{self._sink.display_name()}: cannot sync {directory!r}: "
                              f"{e}") from e
        self._published.extend(part.final for part in ready)
        return ready

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return {"subtask": self._index, "next_part": self._next_part}

    def close(self) -> List[str]:
        """The final paths this writer handed out; a part never prepared is discarded."""
        for stream, part in self._open.values():
            try:
                stream.close()
                filesystems.delete(part.in_progress)
            except OSError:  # a leftover is removed when a writer opens next
                pass
        self._open = {}
        return list(self._published)


class PartCommitter(Committer):
    """Publishes parts by renaming them to their final names, idempotently."""

    def __init__(self, sink: Any) -> None:
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
