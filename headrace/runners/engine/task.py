"""One subtask of every stage: the operators one worker runs, wired to its exchanges.

Forward edges are plain calls from producer to consumer (the fused chain);
other edges end in an :class:`ExchangeOutput` and begin, on the consumer
side, at an :class:`InputGate`. Frames addressed to this subtask itself are
delivered at once, without serialization.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from headrace.runners.engine.barriers import AligningInputGate, InputAligner
from headrace.runners.engine.exchange import ExchangeOutput, InputGate
from headrace.runners.engine.lifting import PartialCombineOperator, can_lift
from headrace.runners.engine.plan import FINALIZE, FORWARD, KEYED, WRITE, PhysicalPlan, PlanNode
from headrace.runners.engine.snapshots import RestoredState, operator_id
from headrace.runners.operators.base import Operator, close_all, next_processing_time
from headrace.runners.operators.factory import make_operator
from headrace.runners.operators.grouping_operators import CombinePerKeyOperator, GroupByKeyOperator
from headrace.runners.operators.pardo_operator import ParDoOperator
from headrace.runners.operators.sources import ReadOperator, TestStreamOperator
from headrace.runners.operators.writers import FinalizeWriteOperator, WriteOperator
from headrace.runners.state import factory as state_factory
from headrace.runners.state.base.key_groups import key_group_range
from headrace.sdk.primitives import Read
from headrace.sdk.serialization import loads_user_code
from headrace.sdk.timestamp import MAX_MICROS

#: send(destination subtask, frame kind, edge id, payload) for frames to other subtasks.
RemoteSend = Callable[[int, int, int, Any], None]


class SubtaskGraph:
    """The operators of subtask ``subtask`` of ``plan``, wired together."""

    def __init__(self, plan: PhysicalPlan, subtask: int, clock: Any, streaming: bool,
                 remote_send: RemoteSend, options: Any = None,
                 restored: Optional[RestoredState] = None, checkpointing: bool = False) -> None:
        self.plan = plan
        self.subtask = subtask
        self.remote_send = remote_send
        self.clock = clock
        self.options = options
        self.restored = restored
        self.operators: Dict[int, Operator] = {}
        self.gates: Dict[int, InputGate] = {}
        self.key_groups = key_group_range(subtask, plan.parallelism, plan.max_parallelism)
        for node in plan.nodes:
            operator = self.operators[node.node_id] = self._make(node)
            operator.clock = clock
            if hasattr(operator, "configure_keyed_state"):
                self._configure_keyed_state(node, operator, restored)
            if isinstance(operator, (ParDoOperator, GroupByKeyOperator, CombinePerKeyOperator)):
                operator.bundle_per_batch = streaming
        #: Checkpointing: barriers, alignment of operators with several inputs, ends held
        #: back until the final checkpoint (``release_end``); see ``barriers``.
        self.checkpointing = checkpointing
        self.checkpointer: Any = None  # a SubtaskCheckpointer, set by the host
        self.end_released = not checkpointing
        self.aligners: Dict[int, InputAligner] = {}
        self.exchanges: Dict[int, ExchangeOutput] = {}
        self._consumers = {node.node_id: plan.consumers(node.node_id) for node in plan.nodes}
        if checkpointing:
            for node in plan.nodes:
                operator = self.operators[node.node_id]
                operator.checkpointing = True
                if len(node.inputs) > 1:
                    self.aligners[node.node_id] = InputAligner(
                        operator, len(node.inputs), lambda n, node=node: self._aligned(node, n))
        #: Pre-combiners in front of lifted CombinePerKey exchanges (see ``lifting``).
        self.partial_combiners: List[PartialCombineOperator] = []
        for edge in plan.edges:
            producer = self.operators[edge.producer]
            consumer = self.operators[edge.consumer]
            aligner = self.aligners.get(edge.consumer)
            target: Any = consumer if aligner is None else aligner.inputs[edge.index]
            if edge.partitioning == FORWARD:
                producer.receivers.setdefault(edge.tag, []).append((target, edge.index))
                continue
            exchange = ExchangeOutput(edge, consumer.label, subtask, plan.parallelism,
                                      plan.max_parallelism, self.send)
            exchange.hold_end = checkpointing
            self.exchanges[edge.edge_id] = exchange
            entry: Operator = exchange
            if edge.partitioning == KEYED and plan.parallelism > 1 and can_lift(consumer):
                # Combiner lifting: partial accumulators cross the exchange, not elements.
                entry = PartialCombineOperator(consumer,
                                               loads_user_code(consumer.serialized_fn)[0],
                                               exchange)
                entry.clock = clock
                self.partial_combiners.append(entry)
            producer.receivers.setdefault(edge.tag, []).append((entry, 0))
            if checkpointing:
                gate = AligningInputGate(edge, consumer.label, plan.parallelism,
                                         lambda n, e=edge: self.barrier(e.consumer, e.index, n))
            else:
                gate = InputGate(edge, consumer.label, plan.parallelism)
            self.gates[edge.edge_id] = gate
            gate.receivers[None] = [(target, edge.index)]
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
            # Its share of the splits: ``assign_splits`` of ``source.split(parallelism)``.
            # Every worker computes the same split list, so ``Source.split`` must be
            # deterministic (the built-in sources are).
            operator.subtask, operator.parallelism = subtask, plan.parallelism
        return operator

    def _configure_keyed_state(self, node: PlanNode, operator: Any,
                               restored: Optional[RestoredState]) -> None:
        """The keyed operator's backend for this subtask's key groups (``--state_backend``),
        restored from ``restored``'s snapshots of it when there are any."""
        options, key_groups = self.options, self.key_groups
        max_parallelism = self.plan.max_parallelism
        name = f"{node.label}-{self.subtask}"
        snapshots = restored.keyed.get(operator_id(node), []) if restored is not None else []

        def make_backend() -> Any:
            if snapshots:
                return state_factory.restore_state_backend(options, snapshots, key_groups,
                                                           max_parallelism, name=name)
            return state_factory.make_state_backend(options, key_groups, max_parallelism,
                                                    name=name)

        operator.configure_keyed_state(make_backend, key_groups, max_parallelism)

    # -- checkpoint barriers --------------------------------------------------------------------
    def trigger_checkpoint(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` starts here: sources (and any operator without
        inputs) snapshot their positions and emit the barrier behind what they emitted."""
        for node in self.plan.nodes:
            if not node.inputs:
                self._aligned(node, checkpoint_id)

    def barrier(self, node_id: int, index: int, checkpoint_id: int) -> None:
        """Barrier ``checkpoint_id`` arrived on input ``index`` of node ``node_id``."""
        aligner = self.aligners.get(node_id)
        if aligner is not None:
            aligner.barrier(index, checkpoint_id)
        else:
            self._aligned(self.plan.nodes[node_id], checkpoint_id)

    def _aligned(self, node: PlanNode, checkpoint_id: int) -> None:
        """The barrier reached ``node`` on every input: snapshot it, then pass the barrier on."""
        self.checkpointer.snapshot(node, checkpoint_id)
        for edge in self._consumers[node.node_id]:
            if edge.partitioning == FORWARD:
                self.barrier(edge.consumer, edge.index, checkpoint_id)
            else:
                self.exchanges[edge.edge_id].broadcast_barrier(checkpoint_id)

    def sources_finished(self) -> bool:
        """Every source of this subtask has read all its splits."""
        return all(reader.finished for reader in self.readers)

    def release_end(self) -> None:
        """The final checkpoint is complete: send the ends held back, and let the subtask
        finish once its inputs are complete."""
        self.end_released = True
        for exchange in self.exchanges.values():
            held = exchange.hold_end
            exchange.hold_end = False
            if held and exchange.output_watermark == MAX_MICROS:
                exchange.send_end()

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
            if self.restored is not None:
                for node in self.plan.nodes:
                    self.operators[node.node_id].restore_state(
                        self.restored.operators.get(operator_id(node), []))
            for reader in self.readers:
                reader.open_splits()
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
        return self.end_released and all(op.output_watermark == MAX_MICROS
                                         for op in self.operators.values())

    def next_processing_time(self) -> Optional[int]:
        return next_processing_time(self.operators.values())
