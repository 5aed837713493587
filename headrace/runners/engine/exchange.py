"""Exchanges: the two ends of a non-forward edge, and the frames that cross it.

A producer subtask hands its output to an :class:`ExchangeOutput`, which
splits each batch by destination subtask (by key group for keyed edges) and
sends watermarks and idleness to every consumer subtask. On the consumer side
an :class:`InputGate` merges the channels of all producer subtasks: data goes
straight through, and its watermark is the minimum over the channels that are
not idle, exactly as an operator combines its inputs.

Frames are ``(kind, edge_id, payload)`` tuples, in order per channel:

- ``DATA``: a batch, in columns (see :func:`encode_batch`);
- ``PARTIAL``: a batch of partial accumulators for a lifted CombinePerKey
  (see ``lifting``), in columns too;
- ``WATERMARK``: int microseconds; ``IDLE``: a bool;
- ``END``: the producer subtask will send nothing more on this edge (its
  watermark is final);
- ``BARRIER``: a checkpoint barrier (payload: the checkpoint id). With
  checkpointing on, gates align on them (``barriers.AligningInputGate``): a
  channel that delivered barrier N is held back until every channel has, then
  the barrier passes to the operator. A plain gate refuses them.

With checkpointing on, a producer that reaches the end sends ``WATERMARK`` at
the maximum instead of ``END`` (``hold_end``), so barriers still follow, until
the final checkpoint is complete (:meth:`ExchangeOutput.send_end`).
"""
from __future__ import annotations

from operator import itemgetter
from typing import Any, Callable, Dict, List

from headrace.runners.engine.plan import BROADCAST, SINGLETON, Edge
from headrace.runners.operators.base import Operator
from headrace.runners.operators.batch import Batch, ColumnBatch, as_columns
from headrace.runners.state.base.key_groups import key_group_for
from headrace.sdk.coders import encode_key
from headrace.sdk.coders.keys import ENCODING_CONSISTENT_KEY_TYPES
from headrace.sdk.timestamp import MAX_MICROS
from headrace.sdk.windowed_value import WindowedValue

DATA, WATERMARK, IDLE, END, BARRIER, PARTIAL = 0, 1, 2, 3, 4, 5
#: The frame kinds that carry a batch.
BATCH_KINDS = (DATA, PARTIAL)

#: send(destination subtask, frame kind, edge id, payload)
Send = Callable[[int, int, int, Any], None]
_CACHE_LIMIT = 1 << 16
_CACHEABLE = frozenset(ENCODING_CONSISTENT_KEY_TYPES)
_first = itemgetter(0)
#: The key of an element that is not a pair: it stays on this subtask, whose consumer
#: then fails with the message its transform gives for that mistake.
_UNKEYED = object()


def encode_batch(batch: Batch) -> tuple:
    """A batch as columns; a column shared by every element is sent once.

    >>> from headrace.sdk.window import GLOBAL_WINDOW
    >>> batch = [WindowedValue.of(v, 0, (GLOBAL_WINDOW,)) for v in "ab"]
    >>> [wv.value for wv in decode_batch(encode_batch(batch))]
    ['a', 'b']
    """
    columns = as_columns(batch)
    return (columns.values, columns.timestamps, columns.windows, columns.pane_info)


def decode_batch(columns: tuple) -> Batch:
    return ColumnBatch(*columns)


class ExchangeOutput(Operator):
    """The producer end of a non-forward edge: routes each element to its consumer subtask.

    Watermarks, idleness and the end go to every consumer subtask, data only
    where it belongs (so every consumer knows when its input is complete).
    """

    def __init__(self, edge: Edge, consumer_label: str, subtask: int, parallelism: int,
                 max_parallelism: int, send: Send) -> None:
        super().__init__(f"{consumer_label}/exchange", 1)
        self.edge = edge
        self.consumer_label = consumer_label
        self.subtask = subtask
        self.parallelism = parallelism
        self.max_parallelism = max_parallelism
        self.send = send
        self._destinations: Dict[Any, int] = {}
        #: Checkpointing: the end is a maximum watermark until ``send_end``.
        self.hold_end = False

    def process_batch(self, index: int, batch: List[WindowedValue]) -> None:
        self.route(batch, DATA)

    def route(self, batch: Batch, kind: int) -> None:
        """Send ``batch`` as frames of ``kind`` (``DATA`` or ``PARTIAL``) where it belongs."""
        if not batch:
            return
        edge_id, partitioning = self.edge.edge_id, self.edge.partitioning
        if partitioning == BROADCAST:
            for destination in range(self.parallelism):
                self.send(destination, kind, edge_id, batch)
        elif partitioning == SINGLETON:
            self.send(0, kind, edge_id, batch)
        else:
            for destination, part in self._split_by_key(batch).items():
                self.send(destination, kind, edge_id, part)

    def _split_by_key(self, batch: Batch) -> Dict[int, Batch]:
        if self.parallelism == 1:
            return {0: batch}
        columns = as_columns(batch)
        destinations = self._destinations_of(columns.values)
        present = set(destinations)
        if len(present) == 1:
            return {present.pop(): columns}
        return {d: columns.select([x == d for x in destinations]) for d in sorted(present)}

    def _destinations_of(self, values: List[Any]) -> List[int]:
        """The destination subtask of each value; pairs with plain keys are looked up in C."""
        if set(map(type, values)) == {tuple} and set(map(len, values)) == {2}:
            keys = list(map(_first, values))
            if set(map(type, keys)) <= _CACHEABLE:
                cache = self._destinations
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                destinations = list(map(cache.get, keys))
                if None in destinations:
                    for key in set(keys).difference(cache):
                        cache[key] = self._destination(key)
                    destinations = list(map(cache.__getitem__, keys))
                return destinations
        destination_of = self._destination_of
        return [destination_of(value) for value in values]

    def _destination_of(self, value: Any) -> int:
        key = value[0] if isinstance(value, (tuple, list)) and len(value) == 2 else _UNKEYED
        if type(key) in ENCODING_CONSISTENT_KEY_TYPES:
            cache = self._destinations
            destination = cache.get(key)
            if destination is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                destination = cache[key] = self._destination(key)
            return destination
        return self._destination(key)

    def _destination(self, key: Any) -> int:
        if key is _UNKEYED:
            return self.subtask
        try:
            encoded = encode_key(key)
        except Exception:
            # The consumer rejects it with its own message (e.g. naming the key's type).
            return self.subtask
        return key_group_for(encoded, self.max_parallelism) * self.parallelism \
            // self.max_parallelism

    def advance(self, watermark: int) -> None:
        self.output_watermark = watermark
        kind, payload = (END, None) if watermark == MAX_MICROS and not self.hold_end \
            else (WATERMARK, watermark)
        for destination in range(self.parallelism):
            self.send(destination, kind, self.edge.edge_id, payload)

    def broadcast_barrier(self, checkpoint_id: int) -> None:
        """Barrier ``checkpoint_id`` to every consumer subtask, behind the data sent so far."""
        for destination in range(self.parallelism):
            self.send(destination, BARRIER, self.edge.edge_id, checkpoint_id)

    def send_end(self) -> None:
        """The end held back by ``hold_end``: nothing more follows on this edge."""
        self.hold_end = False
        for destination in range(self.parallelism):
            self.send(destination, END, self.edge.edge_id, None)

    def _set_output_idle(self, idle: bool) -> None:
        if idle != self.output_idle:
            self.output_idle = idle
            for destination in range(self.parallelism):
                self.send(destination, IDLE, self.edge.edge_id, idle)


class InputGate(Operator):
    """The consumer end of an edge: one input per producer subtask, merged into one."""

    def __init__(self, edge: Edge, consumer_label: str, channels: int) -> None:
        super().__init__(f"{consumer_label}/gate", channels)
        self.edge = edge

    def process_batch(self, index: int, batch: List[WindowedValue]) -> None:
        self.emit_batch(None, batch)

    def deliver(self, channel: int, kind: int, payload: Any) -> None:
        """Apply one frame that arrived from producer subtask ``channel``."""
        if kind == DATA:
            self.process_batch(channel, payload)
        elif kind == PARTIAL:
            for consumer, _ in self.receivers[None]:
                consumer.process_partials(payload)
        elif kind == WATERMARK:
            self.on_watermark(channel, payload)
        elif kind == END:
            self.on_watermark(channel, MAX_MICROS)
        elif kind == IDLE:
            self.set_input_idle(channel, payload)
        else:
            raise RuntimeError(f"Internal error: frame kind {kind} on edge {self.edge.edge_id} "
                               "is not handled (a barrier on a job without checkpointing)")

