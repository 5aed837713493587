"""One subtask of every stage: the operators one worker runs, wired to its exchanges.

Forward edges are plain calls from producer to consumer (the fused chain);
other edges end in an :class:`ExchangeOutput` and begin, on the consumer
side, at an :class:`InputGate`. Frames addressed to this subtask itself are
delivered at once, without serialization.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from headrace.runners.engine.exchange import ExchangeOutput, InputGate
from headrace.runners.engine.lifting import PartialCombineOperator, can_lift
from headrace.runners.engine.plan import FINALIZE, FORWARD, KEYED, WRITE, PhysicalPlan, PlanNode
from headrace.runners.operators.base import Operator, close_all, next_processing_time
from headrace.runners.operators.factory import make_operator
from headrace.runners.operators.grouping_operators import CombinePerKeyOperator, GroupByKeyOperator
from headrace.runners.operators.pardo_operator import ParDoOperator
from headrace.runners.operators.sources import ReadOperator, TestStreamOperator
from headrace.runners.operators.writers import FinalizeWriteOperator, WriteOperator
from headrace.sdk.io_base import assign_splits
from headrace.sdk.primitives import Read
from headrace.sdk.serialization import loads_user_code
from headrace.sdk.timestamp import MAX_MICROS

#: send(destination subtask, frame kind, edge id, payload) for frames to other subtasks.
RemoteSend = Callable[[int, int, int, Any], None]


class SubtaskGraph:
    """The operators of subtask ``subtask`` of ``plan``, wired together."""

    def __init__(self, plan: PhysicalPlan, subtask: int, clock: Any, streaming: bool,
                 remote_send: RemoteSend) -> None:
        self.plan = plan
        self.subtask = subtask
        self.remote_send = remote_send
        self.clock = clock
        self.operators: Dict[int, Operator] = {}
        self.gates: Dict[int, InputGate] = {}
        for node in plan.nodes:
            operator = self.operators[node.node_id] = self._make(node)
            operator.clock = clock
            if isinstance(operator, (ParDoOperator, GroupByKeyOperator, CombinePerKeyOperator)):
                operator.bundle_per_batch = streaming
        #: Pre-combiners in front of lifted CombinePerKey exchanges (see ``lifting``).
        self.partial_combiners: List[PartialCombineOperator] = []
        for edge in plan.edges:
            producer = self.operators[edge.producer]
            consumer = self.operators[edge.consumer]
            if edge.partitioning == FORWARD:
                producer.receivers.setdefault(edge.tag, []).append((consumer, edge.index))
                continue
            exchange = ExchangeOutput(edge, consumer.label, subtask, plan.parallelism,
                                      plan.max_parallelism, self.send)
            entry: Operator = exchange
            if edge.partitioning == KEYED and plan.parallelism > 1 and can_lift(consumer):
                # Combiner lifting: partial accumulators cross the exchange, not elements.
                entry = PartialCombineOperator(consumer,
                                               loads_user_code(consumer.serialized_fn)[0],
                                               exchange)
                entry.clock = clock
                self.partial_combiners.append(entry)
            producer.receivers.setdefault(edge.tag, []).append((entry, 0))
            gate = self.gates[edge.edge_id] = InputGate(edge, consumer.label, plan.parallelism)
            gate.receivers[None] = [(consumer, edge.index)]
        self.readers = [op for op in self.operators.values() if isinstance(op, ReadOperator)]
        self.streams = [op for op in self.operators.values()
                        if isinstance(op, TestStreamOperator)]

    def _make(self, node: PlanNode) -> Operator:
        transform = node.transform_node.transform
        plan, subtask = self.plan, self.subtask
        if node.role == WRITE:
            return WriteOperator(node.label, transform.sink, subtask, plan.parallelism)
        if node.role == FINALIZE:
            return FinalizeWriteOperator(node.label, transform.sink)
        operator = make_operator(node.transform_node)
        if isinstance(transform, Read):
            operator.assigned = _SplitShare(transform.source, subtask, plan.parallelism)
            operator.subtask, operator.parallelism = subtask, plan.parallelism
        return operator

    def send(self, destination: int, kind: int, edge_id: int, payload: Any) -> None:
        if destination == self.subtask:
            self.gates[edge_id].deliver(destination, kind, payload)
        else:
            self.remote_send(destination, kind, edge_id, payload)

    def deliver(self, source: int, kind: int, edge_id: int, payload: Any) -> None:
        """A frame from subtask ``source``."""
        self.gates[edge_id].deliver(source, kind, payload)

    def start(self) -> List[Operator]:
        """Start every operator and open the readers; returns those started (to close)."""
        started: List[Operator] = []
        try:
            for operator in [*self.operators.values(), *self.partial_combiners]:
                operator.start()
                started.append(operator)
            for reader in self.readers:
                reader.open_splits(reader.assigned)
            for operator in self.operators.values():
                if not operator.input_watermarks and not isinstance(
                        operator, (ReadOperator, TestStreamOperator)):
                    operator.advance(MAX_MICROS)
        except BaseException:
            close_all(started)
            raise
        return started

    def finished(self) -> bool:
        """Every input complete; with a TestStream (parallelism 1): its script is over."""
        if self.streams:
            return all(stream.finished for stream in self.streams)
        return all(op.output_watermark == MAX_MICROS for op in self.operators.values())

    def next_processing_time(self) -> Optional[int]:
        return next_processing_time(self.operators.values())


class _SplitShare:
    """This subtask's share of a source's splits (``assign_splits``: by assignment key,
    else every ``parallelism``-th from ``subtask``).

    Every worker computes the same split list, so ``Source.split`` must be
    deterministic (the built-in sources are).
    """

    def __init__(self, source: Any, subtask: int, parallelism: int) -> None:
        self.source, self.subtask, self.parallelism = source, subtask, parallelism

    def __call__(self) -> List[Any]:
        return assign_splits(self.source.split(self.parallelism), self.subtask, self.parallelism)
