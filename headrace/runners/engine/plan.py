"""The physical plan: which primitive runs where, and how data moves between subtasks.

Every primitive becomes a :class:`PlanNode` that runs once per subtask. An
edge between two nodes is ``FORWARD`` (producer and consumer in the same
subtask, a plain function call: the nodes are fused into one chain) unless the
consumer needs the data spread otherwise:

- ``KEYED``: GroupByKey, CombinePerKey and stateful ParDo inputs go to the
  subtask owning the key's key group (a stable hash, see ``key_groups``);
- ``BROADCAST``: a side input reaches every subtask whole;
- ``SINGLETON``: a Write's per-writer results meet on subtask 0 to be finalized.

A ``Write`` becomes two nodes: ``WRITE`` (one writer per subtask) and
``FINALIZE`` (once, on subtask 0). Chains of ``FORWARD`` edges form the stages
the progress display reports on.

>>> import headrace as beam
>>> p = beam.Pipeline()
>>> _ = (p | "Create" >> beam.Create([("a", 1)]) | "Double" >> beam.Map(lambda kv: kv)
...      | "Group" >> beam.GroupByKey())
>>> plan = PhysicalPlan.build(p, parallelism=2)
>>> [e.partitioning for e in plan.edges]
['forward', 'keyed']
>>> [stage.name for stage in plan.stages]
['Create/Read(InMemory(1 elements)) -> Double', 'Group']
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from headrace.runners.state.base.key_groups import DEFAULT_MAX_PARALLELISM
from headrace.sdk.pardo import ParDo
from headrace.sdk.pipeline import AppliedTransform, Pipeline
from headrace.sdk.primitives import CombinePerKey, GroupByKey, Write
from headrace.sdk.pvalue import AsSideInput
from headrace.sdk.test_stream import TestStream
from headrace.sdk.userstate import is_stateful_dofn

FORWARD, KEYED, BROADCAST, SINGLETON = "forward", "keyed", "broadcast", "singleton"
#: What a plan node does with its transform: run it, or one half of a Write.
RUN, WRITE, FINALIZE = "run", "write", "finalize"


@dataclass
class Edge:
    """Data from ``producer``'s output ``tag`` into input ``index`` of ``consumer``."""

    edge_id: int
    producer: int
    tag: Optional[str]
    consumer: int
    index: int
    partitioning: str


class PCollectionRef:
    """What a runtime needs of a PCollection (it cannot be pickled itself)."""

    def __init__(self, pcoll: Any) -> None:
        self.label = pcoll.label
        self.tag = pcoll.tag
        self.windowing = pcoll.windowing
        self.is_bounded = pcoll.is_bounded


class DetachedNode:
    """An applied transform without its pipeline: picklable, shipped to every worker.

    It has the attributes operators are built from (``transform``,
    ``full_label``, ``main_inputs``, ``side_inputs``, ``outputs``), with
    :class:`PCollectionRef` s in place of PCollections.
    """

    def __init__(self, applied: AppliedTransform) -> None:
        self.full_label = applied.full_label
        self.main_inputs = [PCollectionRef(p) for p in applied.main_inputs]
        self.side_inputs = [_detach_view(view) for view in applied.side_inputs]
        self.outputs = {tag: PCollectionRef(p) for tag, p in applied.outputs.items()}
        transform = applied.transform
        if getattr(transform, "pipeline", None) is not None:  # e.g. a Flatten of nothing
            transform = copy.copy(transform)
            transform.pipeline = None
        if isinstance(transform, ParDo) and transform.side_inputs:
            transform = copy.copy(transform)
            transform.side_inputs = [_detach_view(view) for view in transform.side_inputs]
            transform.args = tuple(_detach_view(arg) for arg in transform.args)
            transform.kwargs = {name: _detach_view(arg) for name, arg in transform.kwargs.items()}
        self.transform = transform


def _detach_view(view: Any) -> Any:
    if not isinstance(view, AsSideInput):
        return view
    detached = copy.copy(view)
    detached.pvalue = PCollectionRef(view.pvalue)
    return detached


@dataclass
class PlanNode:
    """One primitive (or half of a Write) as every subtask runs it."""

    node_id: int
    transform_node: DetachedNode
    role: str = RUN
    inputs: List[Edge] = field(default_factory=list)
    stage: int = -1

    @property
    def label(self) -> str:
        suffix = "/Finalize" if self.role == FINALIZE else ""
        return self.transform_node.full_label + suffix


@dataclass
class Stage:
    """A chain of nodes joined by forward edges: fused into one loop per subtask."""

    stage_id: int
    node_ids: List[int]
    name: str


class PhysicalPlan:
    """The executable form of a pipeline for ``parallelism`` subtasks."""

    def __init__(self, nodes: List[PlanNode], edges: List[Edge], parallelism: int,
                 max_parallelism: int) -> None:
        self.nodes = nodes
        self.edges = edges
        self.parallelism = parallelism
        self.max_parallelism = max_parallelism
        self.stages = _stages(nodes, edges)

    @classmethod
    def build(cls, pipeline: Pipeline, parallelism: int,
              max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> "PhysicalPlan":
        """Plan ``pipeline``'s primitives for ``parallelism`` subtasks."""
        if parallelism < 1:
            raise ValueError(f"--parallelism must be at least 1, got {parallelism}")
        if max_parallelism < parallelism:
            raise ValueError(f"--max_parallelism ({max_parallelism}) must be at least "
                             f"--parallelism ({parallelism}): key groups are the unit of "
                             "distribution")
        nodes: List[PlanNode] = []
        edges: List[Edge] = []
        output_node: Dict[AppliedTransform, int] = {}
        for applied in pipeline.primitives():
            detached = DetachedNode(applied)
            node = PlanNode(len(nodes), detached, RUN)
            nodes.append(node)
            inputs = list(applied.main_inputs) + [view.pvalue for view in applied.side_inputs]
            for index, pcoll in enumerate(inputs):
                edge = Edge(len(edges), output_node[pcoll.producer], pcoll.tag, node.node_id,
                            index, _partitioning(applied, index))
                edges.append(edge)
                node.inputs.append(edge)
            output_node[applied] = node.node_id
            if isinstance(applied.transform, Write):
                node.role = WRITE
                finalize = PlanNode(len(nodes), detached, FINALIZE)
                nodes.append(finalize)
                edge = Edge(len(edges), node.node_id, None, finalize.node_id, 0, SINGLETON)
                edges.append(edge)
                finalize.inputs.append(edge)
                output_node[applied] = finalize.node_id
        return cls(nodes, edges, parallelism, max_parallelism)

    def has_test_stream(self) -> bool:
        return any(isinstance(n.transform_node.transform, TestStream) for n in self.nodes)

    def is_unbounded(self) -> bool:
        return any(not pcoll.is_bounded for n in self.nodes
                   for pcoll in n.transform_node.outputs.values())

    def consumers(self, node_id: int) -> List[Edge]:
        return [edge for edge in self.edges if edge.producer == node_id]


def _partitioning(applied: AppliedTransform, index: int) -> str:
    transform = applied.transform
    if index >= len(applied.main_inputs):
        return BROADCAST
    if isinstance(transform, (GroupByKey, CombinePerKey)):
        return KEYED
    if isinstance(transform, ParDo) and is_stateful_dofn(transform.fn):
        return KEYED
    return FORWARD


def _stages(nodes: List[PlanNode], edges: List[Edge]) -> List[Stage]:
    """Group nodes into chains: a node joins its producer's stage over a single forward edge."""
    stages: List[Stage] = []
    for node in nodes:
        forward = [e for e in node.inputs if e.partitioning == FORWARD]
        if len(node.inputs) == 1 and forward:
            node.stage = nodes[forward[0].producer].stage
            stages[node.stage].node_ids.append(node.node_id)
        else:
            node.stage = len(stages)
            stages.append(Stage(node.stage, [node.node_id], ""))
    for stage in stages:
        labels = [nodes[i].label for i in stage.node_ids]
        stage.name = " -> ".join(labels) if len(labels) <= 3 else \
            f"{labels[0]} -> ... -> {labels[-1]} ({len(labels)} steps)"
    return stages
