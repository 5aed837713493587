"""Barrier alignment in a subtask: channels of a gate, inputs of an operator."""
from __future__ import annotations

from typing import Any, List

import pytest

from headrace.runners.engine.barriers import AligningInputGate, InputAligner
from headrace.runners.engine.exchange import BARRIER, DATA, END, WATERMARK
from headrace.runners.engine.plan import KEYED, Edge
from headrace.runners.operators.base import Operator
from headrace.sdk.timestamp import MAX_MICROS

pytestmark = pytest.mark.no_pipeline


class Recorder(Operator):
    """Records what reaches it, and barriers, in one sequence."""

    def __init__(self, inputs: int = 1) -> None:
        super().__init__("recorder", inputs)
        self.seen: List[Any] = []

    def process_batch(self, index: int, batch: Any) -> None:
        self.seen.extend((index, value) for value in batch)

    def barrier(self, checkpoint_id: int) -> None:
        self.seen.append(("barrier", checkpoint_id))


def _gate(channels: int) -> tuple:
    recorder = Recorder()
    gate = AligningInputGate(Edge(0, 0, None, 1, 0, KEYED), "consumer", channels,
                             recorder.barrier)
    gate.receivers[None] = [(recorder, 0)]
    return gate, recorder


def test_a_gate_holds_back_channels_that_delivered_the_barrier():
    gate, recorder = _gate(2)
    gate.deliver(0, DATA, ["a0"])
    gate.deliver(0, BARRIER, 1)
    gate.deliver(0, DATA, ["a1"])  # after the barrier: held
    gate.deliver(0, WATERMARK, 5)  # held too
    gate.deliver(1, DATA, ["b0"])
    assert recorder.seen == [(0, "a0"), (0, "b0")]
    assert recorder.input_watermark < 5
    gate.deliver(1, BARRIER, 1)
    gate.deliver(1, DATA, ["b1"])
    assert recorder.seen == [(0, "a0"), (0, "b0"), ("barrier", 1), (0, "a1"), (0, "b1")]
    assert gate.input_watermarks[0] == 5


def test_ended_channels_count_as_aligned():
    gate, recorder = _gate(3)
    gate.deliver(2, END, None)
    gate.deliver(0, BARRIER, 7)
    gate.deliver(0, DATA, ["held"])
    assert recorder.seen == []
    gate.deliver(1, END, None)  # the last one missing ends instead
    assert recorder.seen == [("barrier", 7), (0, "held")]
    assert not gate.all_ended()
    gate.deliver(0, END, None)
    assert gate.all_ended() and recorder.input_watermark == MAX_MICROS


def test_a_newer_barrier_gives_up_the_older_alignment():
    gate, recorder = _gate(2)
    gate.deliver(0, BARRIER, 1)
    gate.deliver(0, DATA, ["after 1"])
    gate.deliver(1, BARRIER, 2)  # checkpoint 1 was aborted; channel 1 never sends it
    assert recorder.seen == [(0, "after 1")]
    gate.deliver(1, DATA, ["after 2"])  # held for checkpoint 2
    gate.deliver(0, DATA, ["still before 2"])
    gate.deliver(0, BARRIER, 2)
    assert recorder.seen == [(0, "after 1"), (0, "still before 2"), ("barrier", 2),
                             (0, "after 2")]
    gate.deliver(0, BARRIER, 1)  # stale: dropped
    gate.deliver(0, DATA, ["x"])
    assert recorder.seen[-1] == (0, "x")


def test_held_frames_holding_the_next_barrier_align_again():
    gate, recorder = _gate(2)
    for n in (1, 2):
        gate.deliver(0, BARRIER, n)
        gate.deliver(0, DATA, [f"a after {n}"])
    gate.deliver(1, BARRIER, 1)
    assert recorder.seen == [("barrier", 1), (0, "a after 1")]  # channel 0 held again by 2
    gate.deliver(1, DATA, ["b"])
    gate.deliver(1, BARRIER, 2)
    assert recorder.seen[2:] == [(0, "b"), ("barrier", 2), (0, "a after 2")]


def test_an_operator_with_two_inputs_aligns_them():
    operator = Recorder(2)
    seen = operator.seen
    aligner = InputAligner(operator, 2, lambda n: seen.append(("barrier", n)))
    first, second = aligner.inputs
    first.process_batch(0, ["x0"])
    aligner.barrier(0, 3)
    first.process_batch(0, ["x1"])
    first.on_watermark(0, 10)
    second.process_batch(1, ["y0"])
    second.on_watermark(1, 20)
    assert seen == [(0, "x0"), (1, "y0")] and operator.input_watermark < 10
    aligner.barrier(1, 3)
    assert seen == [(0, "x0"), (1, "y0"), ("barrier", 3), (0, "x1")]
    assert operator.input_watermark == 10
