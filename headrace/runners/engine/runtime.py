"""The event loop of one worker: read sources, move frames, fire timers, never block on output.

Each turn of the loop reads one batch from every split of this subtask's
sources (unless an outbox is over its limit: backpressure), applies every
frame that arrived from other workers, fires due processing-time timers, and
writes what the pipes take. Frames for another worker collect in a pending
list that is serialized (pickle protocol 5) as one message once it holds
``batch_size`` records, carries a control frame whose data is older than the
flush interval, or the loop is about to wait: a trickle is never stuck behind
a half-full batch.
"""
from __future__ import annotations

import pickle
import select
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from headrace.runners.engine.exchange import BATCH_KINDS, decode_batch, encode_batch
from headrace.runners.engine.task import SubtaskGraph
from headrace.runners.engine.transport import Inbox, Outbox
from headrace.runners.operators.base import fire_processing_time

#: How long the loop waits at most when it has nothing to do (seconds).
IDLE_WAIT = 0.05


@dataclass
class ExchangeSettings:
    """How frames are batched between workers and when sources must pause."""

    batch_size: int = 1000
    flush_interval: float = 0.005
    max_pending_bytes: int = 8 << 20


class _Pending:
    """Frames for one other worker, not yet serialized."""

    __slots__ = ("frames", "records", "since")

    def __init__(self) -> None:
        self.frames: List[Tuple[int, int, Any]] = []
        self.records = 0
        self.since = 0.0


class SubtaskRuntime:
    """Runs ``graph`` until its inputs are complete, exchanging frames with other workers."""

    def __init__(self, graph: SubtaskGraph, inboxes: Dict[int, Inbox],
                 outboxes: Dict[int, Outbox], settings: ExchangeSettings,
                 report: Callable[[Dict[str, Any]], None], control_fd: Optional[int] = None,
                 on_control: Optional[Callable[[], None]] = None,
                 report_interval: float = 0.25,
                 every_turn: Optional[Callable[[], None]] = None) -> None:
        self.graph = graph
        self.inboxes = inboxes
        self.outboxes = outboxes
        self.settings = settings
        self.report = report
        self.control_fd = control_fd
        self.on_control = on_control
        self.report_interval = report_interval
        #: Called once per turn of the loop (checkpointing: control messages, uploads).
        self.every_turn = every_turn
        self.pending = {destination: _Pending() for destination in outboxes}
        self.backpressured_time = 0.0
        graph.remote_send = self._queue

    def _queue(self, destination: int, kind: int, edge_id: int, payload: Any) -> None:
        pending = self.pending[destination]
        if not pending.frames:
            pending.since = time.monotonic()
        if kind in BATCH_KINDS:
            pending.records += len(payload)
            payload = encode_batch(payload)
        pending.frames.append((kind, edge_id, payload))
        if pending.records >= self.settings.batch_size:
            self._flush(destination)

    def _flush(self, destination: int) -> None:
        pending = self.pending[destination]
        if pending.frames:
            message = pickle.dumps(pending.frames, protocol=5)
            pending.frames, pending.records = [], 0
            self.outboxes[destination].put(message)

    def _flush_due(self, now: float, everything: bool) -> None:
        interval = self.settings.flush_interval
        for destination, pending in self.pending.items():
            if pending.frames and (everything or now - pending.since >= interval):
                self._flush(destination)

    def _receive(self, ready: List[int]) -> bool:
        got = False
        deliver = self.graph.deliver
        for source, inbox in self.inboxes.items():
            if inbox.closed or (ready is not None and inbox.fd not in ready):
                continue
            for message in inbox.read():
                got = True
                for kind, edge_id, payload in pickle.loads(message):
                    if kind in BATCH_KINDS:
                        payload = decode_batch(payload)
                    deliver(source, kind, edge_id, payload)
        return got

    def _write(self) -> bool:
        """Write to every pipe what it takes; True when nothing is left pending."""
        done = True
        for outbox in self.outboxes.values():
            if outbox.pending_bytes and not outbox.write():
                done = False
        return done

    def _backpressured(self) -> bool:
        limit = self.settings.max_pending_bytes
        return any(outbox.pending_bytes > limit for outbox in self.outboxes.values())

    def run(self) -> None:
        """Drive the subtask to the end of its input (or of its TestStream's script)."""
        graph = self.graph
        clock = graph.clock
        next_report = time.monotonic() + self.report_interval
        while True:
            turn_start = time.monotonic()
            worked = False
            if self._backpressured():
                self._write()
            else:
                worked = self._poll_sources()
            worked = self._receive(None) or worked
            if self.every_turn is not None:
                self.every_turn()
            fire_processing_time(self.graph.operators.values(), clock)
            now = time.monotonic()
            finished = graph.finished()
            self._flush_due(now, everything=not worked or finished)
            all_written = self._write()
            if finished and all_written and not any(p.frames for p in self.pending.values()):
                return
            if self._backpressured():
                self.backpressured_time += time.monotonic() - turn_start
            if now >= next_report:
                next_report = now + self.report_interval
                self.report(self.progress())
            if not worked:
                self._wait(clock)

    def _poll_sources(self) -> bool:
        worked = False
        for reader in self.graph.readers:
            if not reader.finished:
                worked = reader.poll() or worked
                worked = worked or reader.finished
        for stream in self.graph.streams:
            if not stream.finished:
                worked = True
                advance_by = stream.step()
                if advance_by:
                    stream.clock.advance(advance_by)
        return worked

    def _wait(self, clock: Any) -> None:
        """Sleep until a frame arrives, a pipe drains, or a timer or flush is due."""
        timeout = IDLE_WAIT
        due = self.graph.next_processing_time()
        if due is not None:
            timeout = min(timeout, max(0.0, (due - clock.now()) / 1e6))
        if any(p.frames for p in self.pending.values()):
            timeout = min(timeout, self.settings.flush_interval)
        readers = [inbox.fd for inbox in self.inboxes.values() if not inbox.closed]
        if self.control_fd is not None:
            readers.append(self.control_fd)
        writers = [outbox.fd for outbox in self.outboxes.values() if outbox.pending_bytes]
        if not readers and not writers:
            time.sleep(timeout)
            return
        ready, _, _ = select.select(readers, writers, [], timeout)
        if self.control_fd in ready and self.on_control is not None:
            self.on_control()

    def progress(self) -> Dict[str, Any]:
        """Records emitted and output watermark per node, and time spent backpressured."""
        return {
            "nodes": {node_id: (op.records_out, op.output_watermark)
                      for node_id, op in self.graph.operators.items()},
            "backpressured_time": self.backpressured_time,
        }
