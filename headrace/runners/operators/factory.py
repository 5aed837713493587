"""One operator per primitive: the mapping every runtime (direct, engine) builds from."""
from __future__ import annotations

from headrace.runners.operators.base import FlattenOperator, Operator, WindowIntoOperator
from headrace.runners.operators.grouping_operators import GroupByKeyOperator
from headrace.runners.operators.pardo_operator import ParDoOperator
from headrace.runners.operators.session_combine import combine_per_key_operator
from headrace.runners.operators.sources import ReadOperator, TestStreamOperator
from headrace.runners.operators.stateful_pardo import make_stateful_operator
from headrace.runners.operators.writers import WriteOperator
from headrace.sdk.pardo import ParDo
from headrace.sdk.pipeline import AppliedTransform
from headrace.sdk.primitives import CombinePerKey, Flatten, GroupByKey, Read, WindowInto, Write
from headrace.sdk.test_stream import TestStream
from headrace.sdk.userstate import is_stateful_dofn


def make_operator(node: AppliedTransform) -> Operator:
    transform, label = node.transform, node.full_label
    if isinstance(transform, ParDo):
        side_windowings = [view.pvalue.windowing for view in node.side_inputs]
        if is_stateful_dofn(transform.fn):
            return make_stateful_operator(label, transform, node.main_inputs[0].windowing,
                                          side_windowings, list(node.outputs))
        return ParDoOperator(label, transform, side_windowings, list(node.outputs),
                             node.main_inputs[0].windowing)
    if isinstance(transform, GroupByKey):
        return GroupByKeyOperator(label, node.main_inputs[0].windowing)
    if isinstance(transform, CombinePerKey):
        return combine_per_key_operator(node.main_inputs[0].windowing)(
            label, node.main_inputs[0].windowing, transform.serialized_fn)
    if isinstance(transform, Flatten):
        return FlattenOperator(label, len(node.main_inputs))
    if isinstance(transform, WindowInto):
        return WindowIntoOperator(label, transform.windowing)
    if isinstance(transform, Read):
        return ReadOperator(label, transform.source, transform.watermark_strategy)
    if isinstance(transform, TestStream):
        return TestStreamOperator(label, transform)
    if isinstance(transform, Write):
        return WriteOperator(label, transform.sink)
    raise NotImplementedError(f"The direct runner cannot execute {label!r} "
                              f"({type(transform).__name__})")


