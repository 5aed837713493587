"""Builds the operator graph of a pipeline and drives it to completion in one thread.

Batch pipelines drain each source in turn. Streaming pipelines (unbounded
sources, a TestStream, or ``--streaming``) poll every source round-robin,
replay TestStream events, and fire processing-time timers as the clock
passes them, until every source is finished (or, for a TestStream, its
script is over: like Beam, whatever its watermark has not released then is
never emitted).
"""
from __future__ import annotations

import time
from typing import Any, Dict, List

from headrace.runners.operators.base import (
    Operator,
    close_all,
    fire_processing_time,
    next_processing_time,
)
from headrace.runners.operators.clock import ManualClock, WallClock
from headrace.runners.operators.factory import make_operator as _make_operator
from headrace.runners.operators.grouping_operators import CombinePerKeyOperator, GroupByKeyOperator
from headrace.runners.operators.pardo_operator import ParDoOperator
from headrace.runners.operators.sources import ReadOperator, TestStreamOperator
from headrace.runners.state import factory as state_factory
from headrace.runners.state.base.key_groups import DEFAULT_MAX_PARALLELISM
from headrace.sdk.options import HeadraceOptions, StandardOptions
from headrace.sdk.pipeline import AppliedTransform, Pipeline
from headrace.sdk.test_stream import TestStream
from headrace.sdk.timestamp import MAX_MICROS

#: How long an idle streaming loop sleeps at most before polling the sources again (seconds).
POLL_INTERVAL = 0.01


class DirectExecutor:
    """Runs every primitive of a pipeline in this thread."""

    def __init__(self, pipeline: Pipeline, options: Any = None) -> None:
        self.nodes = pipeline.primitives()
        has_test_stream = any(isinstance(n.transform, TestStream) for n in self.nodes)
        unbounded = any(not pcoll.is_bounded for n in self.nodes for pcoll in n.outputs.values())
        forced = bool(options is not None and options.view_as(StandardOptions).streaming)
        self.streaming = forced or unbounded or has_test_stream
        self.clock = ManualClock() if has_test_stream else WallClock()
        self.operators: Dict[AppliedTransform, Operator] = {}
        max_parallelism = (options.view_as(HeadraceOptions).max_parallelism
                           if options is not None else DEFAULT_MAX_PARALLELISM)
        key_groups = range(max_parallelism)
        for node in self.nodes:
            operator = self.operators[node] = _make_operator(node)
            operator.clock = self.clock
            if hasattr(operator, "configure_keyed_state"):
                # One subtask owning every key group.
                name = node.full_label
                operator.configure_keyed_state(
                    lambda name=name: state_factory.make_state_backend(
                        options, key_groups, max_parallelism, name=name),
                    key_groups, max_parallelism)
            if isinstance(operator, (ParDoOperator, GroupByKeyOperator, CombinePerKeyOperator)):
                operator.bundle_per_batch = self.streaming
            inputs = list(node.main_inputs) + [view.pvalue for view in node.side_inputs]
            for index, pcoll in enumerate(inputs):
                producer = self.operators[pcoll.producer]
                producer.receivers.setdefault(pcoll.tag, []).append((operator, index))

    def run(self) -> List[Operator]:
        operators = list(self.operators.values())
        started: List[Operator] = []
        try:
            for operator in operators:
                operator.start()
                started.append(operator)
            readers = [op for op in operators if isinstance(op, ReadOperator)]
            for reader in readers:
                reader.open()
            for operator in operators:
                if not operator.input_watermarks and not isinstance(
                        operator, (ReadOperator, TestStreamOperator)):
                    operator.advance(MAX_MICROS)
            if self.streaming:
                self._run_streaming(operators)
            else:
                for reader in readers:
                    reader.drain()
                stuck = [op.label for op in operators if op.output_watermark != MAX_MICROS]
                if stuck:
                    raise RuntimeError(f"Internal error: transforms did not finish: {stuck}")
        finally:
            close_all(started)
        return operators

    def _run_streaming(self, operators: List[Operator]) -> None:
        readers = [op for op in operators if isinstance(op, ReadOperator)]
        streams = [op for op in operators if isinstance(op, TestStreamOperator)]
        while True:
            progressed = False
            for reader in readers:
                if not reader.finished:
                    progressed = reader.poll() or progressed
            for stream in streams:
                if not stream.finished:
                    progressed = True
                    advance_by = stream.step()
                    if advance_by:
                        self.clock.advance(advance_by)
            fire_processing_time(operators, self.clock)
            if all(r.finished for r in readers) and all(s.finished for s in streams):
                break
            if not progressed and isinstance(self.clock, WallClock):
                self._sleep_until_due(operators)
        for operator in operators:
            if isinstance(operator, ParDoOperator):
                operator.finish_bundle()

    def _sleep_until_due(self, operators: List[Operator]) -> None:
        due = next_processing_time(operators)
        wait = POLL_INTERVAL
        if due is not None:
            wait = min(wait, max(0.0, (due - self.clock.now()) / 1e6))
        time.sleep(wait)
