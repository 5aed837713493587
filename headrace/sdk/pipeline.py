"""``Pipeline``: records applied transforms as a graph that every runner walks.

The graph is plain data: :class:`AppliedTransform` nodes with their inputs and
outputs, composites holding their parts, primitives at the leaves.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from headrace.sdk.options import PipelineOptions, StandardOptions
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import AsSideInput, PBegin, PCollection, PValue
from headrace.sdk.windowing import DEFAULT_WINDOWING


class AppliedTransform:
    """A transform applied in a pipeline: a node of the pipeline graph."""

    def __init__(self, parent: Optional["AppliedTransform"], transform: Optional[PTransform],
                 full_label: str, inputs: Tuple[PValue, ...], pipeline: "Pipeline") -> None:
        self.parent = parent
        self.transform = transform
        self.full_label = full_label
        self.inputs = inputs
        self.side_inputs: Tuple[AsSideInput, ...] = ()
        self.outputs: Dict[Optional[str], PCollection] = {}
        self.parts: List["AppliedTransform"] = []
        self.pipeline = pipeline

    @property
    def is_primitive(self) -> bool:
        return self.transform is not None and self.transform.is_primitive

    @property
    def main_inputs(self) -> Tuple[PCollection, ...]:
        return tuple(i for i in self.inputs if isinstance(i, PCollection))

    def new_output(self, tag: Optional[str] = None, windowing: Any = None,
                   is_bounded: Optional[bool] = None) -> PCollection:
        """Create (and register) an output PCollection of this primitive."""
        inputs = self.main_inputs
        if windowing is None:
            windowing = inputs[0].windowing if inputs else DEFAULT_WINDOWING
        if is_bounded is None:
            is_bounded = all(i.is_bounded for i in inputs) if inputs else True
        pcoll = PCollection(self.pipeline, self, tag, windowing, is_bounded)
        self.outputs[tag] = pcoll
        return pcoll

    def walk(self) -> Iterator["AppliedTransform"]:
        yield self
        for part in self.parts:
            yield from part.walk()

    def __repr__(self) -> str:
        return f"<AppliedTransform {self.full_label!r}>"


class Pipeline:
    """A graph of transforms, built with ``|`` and executed by a runner.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     _ = p | beam.Create(["hello"]) | beam.Map(str.upper)
    """

    def __init__(self, runner: Union[str, Any, None] = None,
                 options: Optional[PipelineOptions] = None,
                 argv: Optional[List[str]] = None) -> None:
        if options is None:
            options = PipelineOptions(argv or [])
        elif not isinstance(options, PipelineOptions):
            raise TypeError(f"Pipeline options must be a PipelineOptions, "
                            f"got {type(options).__name__}")
        self._options = options
        runner = runner if runner is not None else options.view_as(StandardOptions).runner
        from headrace.sdk.runner import create_runner  # the registry imports runners lazily

        self.runner = create_runner(runner)
        self.root = AppliedTransform(None, None, "", (), self)
        self._stack = [self.root]
        self._labels: set = set()
        self.result = None

    @property
    def options(self) -> PipelineOptions:
        return self._options

    def __or__(self, transform: Any) -> Any:
        return self.apply(transform, PBegin(self))

    def apply(self, transform: Any, pvalueish: Any = None, label: Optional[str] = None) -> Any:
        """Apply ``transform`` to ``pvalueish`` and return its output."""
        if not isinstance(transform, PTransform):
            hint = (" (wrap a function in beam.Map, beam.FlatMap or beam.ParDo)"
                    if callable(transform) else "")
            raise TypeError(f"Expected a PTransform object, got {transform!r:.100}{hint}")
        if isinstance(pvalueish, Pipeline) or pvalueish is None:
            pvalueish = PBegin(self)
        if label is not None:
            transform = label >> transform
        parent = self._stack[-1]
        full_label = f"{parent.full_label}/{transform.label}" if parent.full_label \
            else transform.label
        if full_label in self._labels:
            raise RuntimeError(
                f'A transform with label "{full_label}" already exists in the pipeline. '
                f'To apply a transform with a specified label, write pvalue | "label" >> transform')
        self._labels.add(full_label)
        node = AppliedTransform(parent, transform, full_label, _flatten_inputs(pvalueish), self)
        parent.parts.append(node)
        self._stack.append(node)
        try:
            result = transform.expand(pvalueish)
        finally:
            self._stack.pop()
        if not node.is_primitive:
            node.outputs = _collect_outputs(result)
        return result

    def current_node(self) -> AppliedTransform:
        """The node being expanded; primitives use it to create their outputs."""
        return self._stack[-1]

    def primitives(self) -> List[AppliedTransform]:
        """Every primitive node, in application order (which is topological)."""
        return [node for node in self.root.walk() if node.is_primitive]

    def run(self, test_runner_api: Any = None):
        """Run the pipeline on its runner and return the ``PipelineResult``."""
        self.result = self.runner.run_pipeline(self, self._options)
        return self.result

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.run().wait_until_finish()


def _flatten_inputs(pvalueish: Any) -> Tuple[PValue, ...]:
    if isinstance(pvalueish, PValue):
        return (pvalueish,)
    if isinstance(pvalueish, dict):
        return tuple(v for v in pvalueish.values() if isinstance(v, PValue))
    if isinstance(pvalueish, (tuple, list)):
        return tuple(v for v in pvalueish if isinstance(v, PValue))
    return ()


def _collect_outputs(result: Any) -> Dict[Optional[str], PCollection]:
    if isinstance(result, PCollection):
        return {None: result}
    if isinstance(result, dict):
        return {str(k): v for k, v in result.items() if isinstance(v, PCollection)}
    if isinstance(result, (tuple, list)):
        return {str(i): v for i, v in enumerate(result) if isinstance(v, PCollection)}
    return {}
