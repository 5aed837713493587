"""Translating a headrace pipeline graph into an Apache Beam pipeline.

The translator walks ``Pipeline.primitives()`` (topological order) and
applies, for each primitive, the Beam transforms that do the same, labelled
with the primitive's full label so that Beam's step names (and so metric
steps) are headrace's. Everything is translated before anything runs: a
feature Beam cannot express raises ``NotImplementedError`` naming the feature
and the transform.

>>> import headrace as hr
>>> import apache_beam as beam
>>> p = hr.Pipeline()
>>> _ = p | hr.Create([1, 2]) | hr.Map(lambda x: x * 10)
>>> translation = BeamTranslator(p).translate(beam.Pipeline())
>>> sorted(translation.keys())[:1]
['Create/Read(InMemory(2 elements))']
"""
from __future__ import annotations

from typing import Any, Dict

import apache_beam as beam

from headrace.runners.beam.to_beam_dofn import BeamCombineFnAdapter, make_beam_dofn
from headrace.runners.beam.to_beam_io import translate_read, translate_test_stream, translate_write
from headrace.runners.beam.to_beam_windowing import to_beam_window_into
from headrace.sdk.pardo import ParDo
from headrace.sdk.primitives import CombinePerKey, Flatten, GroupByKey, Read, WindowInto, Write
from headrace.sdk.test_stream import TestStream


def _as_list(kv: Any) -> Any:
    # headrace's GroupByKey outputs lists; Beam's iterables would print and compare otherwise.
    return kv[0], list(kv[1])


class BeamTranslator:
    """Builds the Beam equivalent of a headrace pipeline in a given Beam pipeline.

    ``translate`` returns ``{full label: {output tag: Beam PCollection}}``.
    """

    def __init__(self, pipeline: Any, desired_splits: int = 1, streaming: bool = False) -> None:
        self.pipeline = pipeline
        self.desired_splits = desired_splits
        self.streaming = streaming
        self._pcolls: Dict[int, Any] = {}

    def _beam(self, pcoll: Any) -> Any:
        return self._pcolls[id(pcoll)]

    def translate(self, bp: beam.Pipeline) -> Dict[str, Dict[Any, Any]]:
        done: Dict[str, Dict[Any, Any]] = {}
        for node in self.pipeline.primitives():
            outputs = self._translate(bp, node)
            for tag, pcoll in node.outputs.items():
                if tag not in outputs:
                    raise NotImplementedError(f"{node.full_label}: output {tag!r} has no Beam "
                                              "translation")
                self._pcolls[id(pcoll)] = outputs[tag]
            done[node.full_label] = outputs
        return done

    def _translate(self, bp: beam.Pipeline, node: Any) -> Dict[Any, Any]:
        transform, label = node.transform, node.full_label
        inputs = [self._beam(p) for p in node.main_inputs]
        if isinstance(transform, Read):
            return {None: translate_read(bp, node, self.desired_splits, self.streaming)}
        if isinstance(transform, TestStream):
            return translate_test_stream(bp, node)
        if isinstance(transform, ParDo):
            return self._pardo(node, inputs[0])
        if isinstance(transform, GroupByKey):
            grouped = inputs[0] | label >> beam.GroupByKey()
            return {None: grouped | f"{label}/AsLists" >> beam.Map(_as_list)}
        if isinstance(transform, CombinePerKey):
            adapter = BeamCombineFnAdapter(transform.serialized_fn, label)
            return {None: inputs[0] | label >> beam.CombinePerKey(adapter)}
        if isinstance(transform, WindowInto):
            window_into = to_beam_window_into(transform.windowing, label)
            return {None: inputs[0] | label >> window_into}
        if isinstance(transform, Flatten):
            if not inputs:
                return {None: () | label >> beam.Flatten(pipeline=bp)}
            return {None: tuple(inputs) | label >> beam.Flatten()}
        if isinstance(transform, Write):
            return {None: translate_write(bp, node, inputs[0])}
        raise NotImplementedError(f"{label}: the primitive {type(transform).__name__} has no "
                                  "Beam translation")

    def _pardo(self, node: Any, pcoll: Any) -> Dict[Any, Any]:
        transform, label = node.transform, node.full_label
        dofn = make_beam_dofn(node)
        # Views are shaped by headrace's own view classes inside the wrapper (defaults,
        # errors and all), so Beam only materialises each side input per window.
        views = [beam.pvalue.AsList(self._beam(view.pvalue)) for view in node.side_inputs]
        pardo = beam.ParDo(dofn, *views)
        tags = [tag for tag in node.outputs if tag is not None]
        if transform.output_tags is None and not tags:
            return {None: pcoll | label >> pardo}
        result = pcoll | label >> pardo.with_outputs(*tags)
        return {tag: result[tag] for tag in node.outputs}
