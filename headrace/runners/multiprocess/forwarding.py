"""What user code prints or logs in a worker reaches the driver's ``sys.stdout``,
``sys.stderr`` and root logging handlers, as if it had run in the driver.

A forked worker holds copies of the driver's Python-level streams and handlers: writes to
a stream the driver redirected (``contextlib.redirect_stdout``, pytest's ``capsys``) or a
record for an in-memory handler (pytest's ``caplog``) would stay in the worker. Workers
instead send them to the coordinator over their control pipe, which replays them
(:func:`replay`). Loggers below the root keep their own handlers in the worker; the root's
are the driver's.
"""
from __future__ import annotations

import copy
import io
import logging
import sys
from typing import Any, Callable, Optional, Tuple

#: Message kinds a worker sends for its output; the coordinator hands them to :func:`replay`.
KINDS = ("stdout", "stderr", "log")

Send = Callable[[Tuple[Any, ...]], None]


class _ForwardedStream(io.TextIOBase):
    """A text stream sending complete lines to the coordinator (the rest on ``flush``)."""

    def __init__(self, kind: str, send: Send, original: Any) -> None:
        super().__init__()
        self.kind = kind
        self._send = send
        self._original = original
        self._pending = ""

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._original, "encoding", None) or "utf-8"

    def fileno(self) -> int:  # code writing to the descriptor itself bypasses forwarding
        return self._original.fileno()

    def write(self, text: str) -> int:
        self._pending += text
        end = self._pending.rfind("\n") + 1
        if end:
            self._forward(self._pending[:end])
            self._pending = self._pending[end:]
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._forward(self._pending)
            self._pending = ""

    def _forward(self, text: str) -> None:
        try:
            self._send((self.kind, text))
        except (OSError, ValueError):  # the control pipe is closed: the worker is ending
            self._original.write(text)


class _ForwardingHandler(logging.Handler):
    """The worker's only root handler: sends each record, made picklable, to the driver."""

    def __init__(self, send: Send) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._send(("log", _portable(record)))
        except Exception:
            self.handleError(record)


def _portable(record: logging.LogRecord) -> logging.LogRecord:
    """A copy whose message and traceback are already text (arguments may not pickle)."""
    record = copy.copy(record)
    record.msg = record.getMessage()
    record.args = None
    if record.exc_info:
        record.exc_text = record.exc_text or logging.Formatter().formatException(
            record.exc_info)
        record.exc_info = None
    return record


def forward_output(send: Send) -> None:
    """In a worker: send what is printed to ``sys.stdout``/``sys.stderr`` and what reaches
    the root logger to the coordinator. ``send`` must be safe to call from any thread."""
    sys.stdout = _ForwardedStream("stdout", send, sys.stdout)
    sys.stderr = _ForwardedStream("stderr", send, sys.stderr)
    logging.getLogger().handlers = [_ForwardingHandler(send)]


def flush_output() -> None:
    """In a worker: send what is still buffered (a last line without its newline)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, _ForwardedStream):
            stream.flush()


def replay(message: Tuple[Any, ...], out: Optional[Any] = None) -> None:
    """In the coordinator: write a worker's output, or hand its log record to the root
    logger's handlers, as if the worker's code had run here.

    >>> buffer = io.StringIO()
    >>> replay(("stdout", "hello from a worker\\n"), out=buffer)
    >>> buffer.getvalue()
    'hello from a worker\\n'
    """
    kind = message[0]
    if kind == "log":
        logging.getLogger().callHandlers(message[1])
    else:
        stream = out if out is not None else getattr(sys, kind)
        stream.write(message[1])
        stream.flush()
