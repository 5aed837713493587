"""Checkpoint barriers inside one subtask: aligning inputs, and passing barriers on.

Used only when checkpointing is on (otherwise the plain ``InputGate`` and direct
wiring run, unchanged). A barrier travels behind the data it follows:

- across an exchange as a ``BARRIER`` frame, which an :class:`AligningInputGate`
  aligns over its channels (one per producer subtask): a channel that delivered
  barrier N is held back (its frames queued) until every channel has, or has ended;
  then the barrier goes to the consuming operator and the held frames are replayed;
- between operators of a subtask as a call, behind the calls that delivered the
  data before it. An operator with several inputs aligns them the same way
  (:class:`InputAligner`: its inputs are wired through :class:`AlignedInput` s that
  hold back the calls of an input that delivered the barrier).

A barrier newer than the one being aligned means that one was given up (the
coordinator aborted it): alignment starts over with the newer one, releasing what
was held. A barrier older than the last one aligned is stale and dropped.

>>> seen = []
>>> aligner = Alignment(2, seen.append)
>>> aligner.barrier(0, 1), seen
([], [])
>>> aligner.hold(0, "after barrier 1 on input 0")
True
>>> aligner.hold(1, "before barrier 1 on input 1")
False
>>> aligner.barrier(1, 1), seen
([(0, 'after barrier 1 on input 0')], [1])
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from headrace.runners.engine.exchange import BARRIER, END, InputGate
from headrace.runners.engine.plan import Edge
from headrace.runners.operators.base import Batch, Operator


class Alignment:
    """Barrier alignment over ``inputs`` inputs; ``on_aligned(N)`` once barrier N arrived on
    every input that has not ended. Callers queue what a held input delivers (:meth:`hold`)
    and replay, in order, the items :meth:`barrier` and :meth:`end` return."""

    def __init__(self, inputs: int, on_aligned: Callable[[int], None]) -> None:
        self.inputs = inputs
        self.on_aligned = on_aligned
        self.aligning: Optional[int] = None
        self.last_aligned = 0
        self.arrived: Set[int] = set()
        self.ended: Set[int] = set()
        self.held: Dict[int, Deque[Any]] = {}

    def hold(self, index: int, item: Any) -> bool:
        """Queue ``item`` if input ``index`` is held back; whether it was."""
        queue = self.held.get(index)
        if queue is None:
            return False
        queue.append(item)
        return True

    def barrier(self, index: int, checkpoint_id: int) -> List[Tuple[int, Any]]:
        """Barrier ``checkpoint_id`` arrived on input ``index`` (not held); the held items
        to replay now (after ``on_aligned`` when this completed the alignment)."""
        replay: List[Tuple[int, Any]] = []
        if self.aligning is not None and checkpoint_id > self.aligning:
            replay = self._drain()  # the older checkpoint was given up
            self.aligning = None
        if self.aligning is None:
            if checkpoint_id <= self.last_aligned:
                return replay  # stale
            self.aligning = checkpoint_id
            self.arrived = set()
        elif checkpoint_id < self.aligning:
            return replay
        self.arrived.add(index)
        self.held[index] = deque()
        return replay + self._check()

    def end(self, index: int) -> List[Tuple[int, Any]]:
        """Input ``index`` ended: it counts as aligned from now on. As :meth:`barrier`."""
        self.ended.add(index)
        return self._check() if self.aligning is not None else []

    def _check(self) -> List[Tuple[int, Any]]:
        if len(self.arrived | self.ended) < self.inputs:
            return []
        checkpoint_id, self.aligning = self.aligning, None
        self.last_aligned = checkpoint_id
        self.on_aligned(checkpoint_id)
        return self._drain()

    def _drain(self) -> List[Tuple[int, Any]]:
        held, self.held = self.held, {}
        return [(index, item) for index, queue in held.items() for item in queue]


class AligningInputGate(InputGate):
    """An :class:`InputGate` that aligns its channels on barriers, then calls
    ``on_barrier(N)`` (the consumer's barrier handling) before replaying held frames."""

    def __init__(self, edge: Edge, consumer_label: str, channels: int,
                 on_barrier: Callable[[int], None]) -> None:
        super().__init__(edge, consumer_label, channels)
        self.alignment = Alignment(channels, on_barrier)

    def deliver(self, channel: int, kind: int, payload: Any) -> None:
        alignment = self.alignment
        if alignment.held and alignment.hold(channel, (kind, payload)):
            return
        if kind == BARRIER:
            self._replay(alignment.barrier(channel, payload))
            return
        super().deliver(channel, kind, payload)
        if kind == END:
            self._replay(alignment.end(channel))

    def _replay(self, frames: List[Tuple[int, Any]]) -> None:
        for channel, (kind, payload) in frames:
            self.deliver(channel, kind, payload)


class AlignedInput:
    """Input ``index`` of an operator with several inputs, as its producers see it: calls
    pass through unless the input is held back for alignment."""

    __slots__ = ("aligner", "index")

    def __init__(self, aligner: "InputAligner", index: int) -> None:
        self.aligner, self.index = aligner, index

    def process_batch(self, index: int, batch: Batch) -> None:
        self.aligner.call(self.index, "process_batch", (index, batch))

    def process_partials(self, batch: Batch) -> None:
        self.aligner.call(self.index, "process_partials", (batch,))

    def on_watermark(self, index: int, watermark: int) -> None:
        self.aligner.call(self.index, "on_watermark", (index, watermark))

    def set_input_idle(self, index: int, idle: bool) -> None:
        self.aligner.call(self.index, "set_input_idle", (index, idle))


class InputAligner:
    """Aligns the inputs of ``operator`` (several of them) on barriers; ``on_aligned(N)``
    snapshots it and passes the barrier on."""

    def __init__(self, operator: Operator, inputs: int,
                 on_aligned: Callable[[int], None]) -> None:
        self.operator = operator
        self.alignment = Alignment(inputs, on_aligned)
        self.inputs = [AlignedInput(self, i) for i in range(inputs)]

    def call(self, index: int, method: str, args: tuple) -> None:
        alignment = self.alignment
        if alignment.held and alignment.hold(index, (method, args)):
            return
        getattr(self.operator, method)(*args)

    def barrier(self, index: int, checkpoint_id: int) -> None:
        """Barrier ``checkpoint_id`` on input ``index`` (in order with its calls)."""
        alignment = self.alignment
        if alignment.held and alignment.hold(index, ("barrier", (index, checkpoint_id))):
            return
        for held_index, (method, args) in alignment.barrier(index, checkpoint_id):
            if method == "barrier":
                self.barrier(*args)
            else:
                self.call(held_index, method, args)
