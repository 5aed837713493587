"""Length-prefixed messages over non-blocking pipes between two processes.

A worker never blocks on a write: an :class:`Outbox` keeps what the pipe did
not take and the event loop retries when the pipe is writable. That is what
keeps slot-shared workers from deadlocking (A waiting to write to B while B
waits to write to A); the bound on memory comes instead from the sources,
which stop reading while any outbox is over its limit (backpressure).

>>> import os
>>> r, w = os.pipe()
>>> box, inbox = Outbox(w), Inbox(r)
>>> box.put(b"hello"); box.put(b"world"); box.write()
True
>>> inbox.read()
[b'hello', b'world']
>>> os.close(r); os.close(w)
"""
from __future__ import annotations

import fcntl
import os
import struct
from collections import deque
from typing import Deque, List

_HEADER = struct.Struct("<I")
#: Bytes asked of the kernel per read; also the pipe size we ask for (Linux allows up to 1 MiB).
CHUNK = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def enlarge_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe buffer: fewer wake-ups per batch. Best effort."""
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, CHUNK)
    except OSError:
        pass


class Outbox:
    """Messages waiting to be written to one pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._chunks: Deque[memoryview] = deque()
        self.pending_bytes = 0

    def put(self, message: bytes) -> None:
        self._chunks.append(memoryview(_HEADER.pack(len(message)) + message))
        self.pending_bytes += len(message) + _HEADER.size

    def write(self) -> bool:
        """Write as much as the pipe takes now; True when nothing is left pending."""
        chunks = self._chunks
        while chunks:
            chunk = chunks[0]
            try:
                written = os.write(self.fd, chunk)
            except BlockingIOError:
                return False
            self.pending_bytes -= written
            if written == len(chunk):
                chunks.popleft()
            else:
                chunks[0] = chunk[written:]
                return False
        return True


class Inbox:
    """Reassembles messages from one pipe's byte stream."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._buffer = bytearray()
        self.closed = False

    def read(self) -> List[bytes]:
        """The complete messages available now (empty when none); sets ``closed`` at EOF."""
        try:
            data = os.read(self.fd, CHUNK)
        except BlockingIOError:
            return []
        if not data:
            self.closed = True
            return []
        buffer = self._buffer
        buffer += data
        messages = []
        offset, size = 0, len(buffer)
        while size - offset >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer, offset)
            end = offset + _HEADER.size + length
            if end > size:
                break
            messages.append(bytes(buffer[offset + _HEADER.size:end]))
            offset = end
        if offset:
            del buffer[:offset]
        return messages
