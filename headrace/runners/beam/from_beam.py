"""Translating an Apache Beam pipeline graph into a headrace pipeline graph.

The walk goes over Beam's ``AppliedPTransform`` tree (as Beam's runners do),
either as the user built it or as Beam rebuilt it from its runner-API proto
(``TestPipeline`` round-trips the graph before running it): both have the
same transform objects at the leaves. Composites are expanded into their
parts, except those headrace runs better as a whole (``CombinePerKey``,
lifted, and a bounded ``Read``). Every headrace primitive is applied at the
root under the Beam transform's full label, so errors and metrics name the
step the Beam user wrote (a ``Read`` is named after the step of Beam's own
expansion that reads the source, as on Beam's runners). Groupings are
wrapped as :mod:`headrace.runners.beam.from_beam_grouping` describes.
"""
from __future__ import annotations

from typing import Any, Dict, List

from apache_beam.io import iobase as beam_iobase
from apache_beam.testing import test_stream as beam_test_stream
from apache_beam.transforms import core as beam_core

from headrace.runners.beam.from_beam_dofn import BeamCombineFnAdapter
from headrace.runners.beam.from_beam_grouping import (
    BeamGroupedOutput,
    KeyByBeamCoder,
    beam_key_coder,
)
from headrace.runners.beam.from_beam_io import (
    BeamBoundedSource,
    BeamSideInputView,
    translate_test_stream,
)
from headrace.runners.beam.from_beam_sdf import adapt_beam_dofn
from headrace.runners.beam.from_beam_windowing import UnsupportedBeamFeature, translate_windowing
from headrace.sdk.options import PipelineOptions
from headrace.sdk.pardo import ParDo
from headrace.sdk.pipeline import AppliedTransform, Pipeline
from headrace.sdk.primitives import CombinePerKey, Flatten, GroupByKey, Read, WindowInto
from headrace.sdk.pvalue import PCollection


def _urn_of(transform: Any) -> str:
    """The runner-API URN of a Beam transform, for error messages."""
    try:
        from apache_beam.runners.pipeline_context import PipelineContext

        urn, _ = transform.to_runner_api_parameter(PipelineContext())
        return str(urn)
    except Exception:  # noqa: BLE001 (only for a message: any failure means "unknown")
        return "unknown URN"


def unsupported(node: Any, why: str = "") -> UnsupportedBeamFeature:
    """The error for a Beam transform headrace cannot run, naming it fully."""
    transform = node.transform
    kind = type(transform)
    reason = f": {why}" if why else ""
    return UnsupportedBeamFeature(
        f"HeadraceRunner cannot run the Beam transform {node.full_label!r} "
        f"({kind.__module__}.{kind.__qualname__}, {_urn_of(transform)}){reason}")


class BeamPipelineTranslator:
    """Builds a headrace ``Pipeline`` equivalent to one Beam pipeline."""

    def __init__(self, beam_pipeline: Any, options: PipelineOptions) -> None:
        self.beam_pipeline = beam_pipeline
        self.pipeline = Pipeline(options=options)
        # id(Beam PCollection) -> (Beam PCollection kept alive, headrace PCollection)
        self._pcolls: Dict[int, Any] = {}

    # -- bookkeeping ---------------------------------------------------------------------------
    def _get(self, beam_pcoll: Any, node: Any) -> PCollection:
        entry = self._pcolls.get(id(beam_pcoll))
        if entry is None:
            raise unsupported(node, f"its input {getattr(beam_pcoll, 'tag', beam_pcoll)!r} was "
                                    "produced by a transform that was not translated")
        return entry[1]

    def _set(self, beam_pcoll: Any, pcoll: PCollection) -> None:
        self._pcolls[id(beam_pcoll)] = (beam_pcoll, pcoll)

    def _inputs(self, node: Any) -> List[PCollection]:
        return [self._get(p, node) for p in node.main_inputs.values()]

    def _apply(self, node: Any, transform: Any, inputs: Any) -> AppliedTransform:
        self.pipeline.apply(transform, inputs, label=node.full_label)
        return self.pipeline.root.parts[-1]

    def _map_outputs(self, node: Any, applied: AppliedTransform) -> None:
        for tag, beam_pcoll in node.outputs.items():
            pcoll = applied.outputs.get(tag)
            if pcoll is None and len(node.outputs) == 1:
                pcoll = applied.outputs.get(None)
            if pcoll is None:
                raise unsupported(node, f"no headrace output for tag {tag!r}")
            self._set(beam_pcoll, pcoll)

    # -- the walk ------------------------------------------------------------------------------
    def translate(self) -> Pipeline:
        self._visit(self.beam_pipeline.transforms_stack[0])
        return self.pipeline

    def _visit(self, parent: Any) -> None:
        for node in parent.parts:
            if self._translate_composite(node):
                continue
            if node.parts:
                self._visit(node)
            else:
                self._translate_leaf(node)

    def _translate_composite(self, node: Any) -> bool:
        transform = node.transform
        if type(transform) is beam_core.CombinePerKey and not transform.side_inputs \
                and node.parts:
            # Lifted: headrace's CombinePerKey pre-combines, as Beam's runners do.
            fn = BeamCombineFnAdapter(transform.fn)
            applied = self._apply_grouping(
                node, CombinePerKey(fn, *transform.args, **transform.kwargs))
            self._map_outputs(node, applied)
            return True
        if isinstance(transform, beam_iobase.Read) and node.parts:
            source = transform.source
            if not isinstance(source, beam_iobase.BoundedSource):
                raise unsupported(node, "only bounded Beam sources can be read")
            label = _reading_step(node).full_label
            self.pipeline.apply(Read(BeamBoundedSource(source)), self.pipeline,
                                label=label)
            self._map_outputs(node, self.pipeline.root.parts[-1])
            return True
        return False

    def _apply_grouping(self, node: Any, transform: Any) -> AppliedTransform:
        """Apply a headrace grouping for a Beam one, with what Beam's runners do around it:
        keys headrace cannot encode keyed by Beam's key coder, and millisecond timestamps."""
        beam_input = next(iter(node.main_inputs.values()))
        pcoll = self._get(beam_input, node)
        coder = beam_key_coder(beam_input, self.beam_pipeline._options, node.full_label)
        if coder is not None:
            self.pipeline.apply(ParDo(KeyByBeamCoder(coder)), pcoll,
                                label=f"{node.full_label}/HeadraceKeyByBeamCoder")
            pcoll = self.pipeline.root.parts[-1].outputs[None]
        grouped = self._apply(node, transform, pcoll).outputs[None]
        self.pipeline.apply(ParDo(BeamGroupedOutput(coder)), grouped,
                            label=f"{node.full_label}/HeadraceBeamOutput")
        return self.pipeline.root.parts[-1]

    def _translate_leaf(self, node: Any) -> None:
        transform = node.transform
        inputs = list(node.main_inputs.values())
        if inputs and all(any(out is i for i in inputs) for out in node.outputs.values()):
            return  # a composite that returned its input (e.g. Create's MaybeReshuffle)
        if isinstance(transform, beam_core.Impulse):
            applied = self._apply(node, Read(BeamBoundedSource(None)), self.pipeline)
        elif isinstance(transform, beam_core.WindowInto):
            applied = self._apply(node, WindowInto(translate_windowing(transform.windowing)),
                                  self._inputs(node)[0])
        elif isinstance(transform, beam_core.ParDo):
            applied = self._translate_pardo(node)
        elif isinstance(transform, beam_core.GroupByKey):
            applied = self._apply_grouping(node, GroupByKey())
        elif isinstance(transform, beam_core.Flatten):
            pcolls = tuple(self._inputs(node))
            applied = self._apply(node, Flatten(pipeline=self.pipeline), pcolls)
        elif isinstance(transform, beam_test_stream.TestStream):
            applied = self._apply(node, translate_test_stream(transform), self.pipeline)
        else:
            raise unsupported(node, "no headrace translation for this primitive")
        self._map_outputs(node, applied)

    def _translate_pardo(self, node: Any) -> AppliedTransform:
        transform = node.transform
        views = [BeamSideInputView(self._get(view.pvalue, node), view)
                 for view in node.side_inputs]
        try:
            fn = adapt_beam_dofn(transform.fn, transform.args, transform.kwargs, len(views),
                                 node.full_label)
        except UnsupportedBeamFeature as exc:
            raise unsupported(node, str(exc)) from None
        pardo = ParDo(fn, *views)
        tags = [tag for tag in node.outputs if tag is not None]
        if tags:
            pardo = pardo.with_outputs(*tags, main=None)
        main = self._inputs(node)[0]
        if fn.stateful:  # state and timers are per key, keyed as a grouping keys
            beam_input = next(iter(node.main_inputs.values()))
            coder = beam_key_coder(beam_input, self.beam_pipeline._options, node.full_label)
            if coder is not None:
                self.pipeline.apply(ParDo(KeyByBeamCoder(coder)), main,
                                    label=f"{node.full_label}/HeadraceKeyByBeamCoder")
                main = self.pipeline.root.parts[-1].outputs[None]
                fn.key_coder = coder
        return self._apply(node, pardo, main)


def _reading_step(node: Any) -> Any:
    """The leaf of a Beam composite's expansion that produces its output (for ``Read``:
    ``Read/SDFBoundedSourceReader/ParDo(SDFBoundedSourceDoFn)``), or the composite."""
    outputs = set(map(id, node.outputs.values()))
    for part in reversed(node.parts):
        if any(id(p) in outputs for p in part.outputs.values()):
            return _reading_step(part) if part.parts else part
    return node


def translate_pipeline(beam_pipeline: Any, options: PipelineOptions) -> Pipeline:
    """The headrace pipeline for ``beam_pipeline``; raises ``UnsupportedBeamFeature``."""
    return BeamPipelineTranslator(beam_pipeline, options).translate()


