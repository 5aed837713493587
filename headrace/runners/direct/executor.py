"""Builds the operator graph of a pipeline and drives it to completion in one thread."""
from __future__ import annotations

from typing import Dict, List

from headrace.runners.direct.grouping_operators import CombinePerKeyOperator, GroupByKeyOperator
from headrace.runners.direct.operators import (
    FlattenOperator,
    Operator,
    ReadOperator,
    WindowIntoOperator,
    WriteOperator,
)
from headrace.runners.direct.pardo_operator import ParDoOperator
from headrace.sdk.pardo import ParDo
from headrace.sdk.pipeline import AppliedTransform, Pipeline
from headrace.sdk.primitives import CombinePerKey, Flatten, GroupByKey, Read, WindowInto, Write
from headrace.sdk.timestamp import MAX_MICROS


def _make_operator(node: AppliedTransform) -> Operator:
    transform, label = node.transform, node.full_label
    if isinstance(transform, ParDo):
        return ParDoOperator(label, transform,
                             [view.pvalue.windowing for view in node.side_inputs],
                             list(node.outputs))
    if isinstance(transform, GroupByKey):
        return GroupByKeyOperator(label, node.main_inputs[0].windowing)
    if isinstance(transform, CombinePerKey):
        return CombinePerKeyOperator(label, node.main_inputs[0].windowing,
                                     transform.serialized_fn)
    if isinstance(transform, Flatten):
        return FlattenOperator(label, len(node.main_inputs))
    if isinstance(transform, WindowInto):
        return WindowIntoOperator(label, transform.windowing.window_fn)
    if isinstance(transform, Read):
        return ReadOperator(label, transform.source)
    if isinstance(transform, Write):
        return WriteOperator(label, transform.sink)
    raise NotImplementedError(f"The direct runner cannot execute {label!r} "
                              f"({type(transform).__name__})")


class DirectExecutor:
    """Runs every primitive of a bounded pipeline in this thread."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.nodes = pipeline.primitives()
        self.operators: Dict[AppliedTransform, Operator] = {}
        for node in self.nodes:
            operator = self.operators[node] = _make_operator(node)
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
            for operator in operators:
                if not operator.input_watermarks and not isinstance(operator, ReadOperator):
                    operator.advance(MAX_MICROS)
            for operator in operators:
                if isinstance(operator, ReadOperator):
                    operator.run()
            stuck = [op.label for op in operators if op.output_watermark != MAX_MICROS]
            if stuck:
                raise RuntimeError(f"Internal error: transforms did not finish: {stuck}")
        finally:
            self._close(started)
        return operators

    @staticmethod
    def _close(started: List[Operator]) -> None:
        error = None
        for operator in started:
            try:
                operator.close()
            except Exception as exc:  # close them all, report the first failure
                error = error or exc
        if error is not None:
            raise error
