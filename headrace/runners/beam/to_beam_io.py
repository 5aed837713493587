"""Translating headrace's roots and sinks to Apache Beam: ``Read``, ``TestStream``, ``Write``.

* A bounded ``Read`` becomes ``Create`` of the source's split descriptors
  (pickled) followed by a DoFn that opens each split and reads it to its end,
  so that Beam can spread the splits over its workers. Unbounded sources and
  watermark strategies need a splittable DoFn with a watermark estimator; they
  are refused (idleness has no Beam counterpart at all).
* ``TestStream`` becomes Beam's ``TestStream`` with the same events.
* ``Write`` keeps the sink contract (``open_writer(i, n)`` per writer,
  ``close()`` per writer, ``finalize(results)`` once): elements go to one
  writer (as on the direct runner, so file names are the same), which a
  GroupByKey gathers; a second GroupByKey gathers the writer results for the
  single ``finalize``.

>>> from headrace.transforms.create import InMemorySource
>>> reader = ReadSplitFn("Read")
>>> list(reader.process(dumps_user_code(InMemorySource([1, 2]).split(1)[0], "Read")))
[1, 2]
"""
from __future__ import annotations

from typing import Any, Iterator, List, Optional

import apache_beam as beam
from apache_beam.testing.test_stream import TestStream as BeamTestStream
from apache_beam.transforms import window as bw

from headrace.runners.beam.to_beam_values import (
    to_beam_duration,
    to_beam_output,
    to_beam_timestamp,
)
from headrace.runners.common.errors import reraise_with_label
from headrace.sdk.io_base import CommittingSink
from headrace.sdk.primitives import Read, Write
from headrace.sdk.serialization import dumps_user_code, loads_user_code
from headrace.sdk.test_stream import ElementEvent, ProcessingTimeEvent, TestStream, WatermarkEvent
from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS
from headrace.sdk.window import TimestampedValue

#: Records asked of a split reader per call, as the direct runner does.
BATCH = 1024


# -- Read ---------------------------------------------------------------------------------------

class ReadSplitFn(beam.DoFn):
    """Reads one pickled headrace ``SourceSplit`` to its end (applying a timestamp assigner)."""

    def __init__(self, label: str, strategy: Any = None) -> None:
        super().__init__()
        self._label = label
        self._strategy = dumps_user_code(strategy, label, "watermark strategy")

    def setup(self) -> None:
        self._assigner = loads_user_code(self._strategy)

    def process(self, descriptor: bytes) -> Iterator[Any]:
        strategy = getattr(self, "_assigner", None)
        try:
            reader = loads_user_code(descriptor).open()
            try:
                while True:
                    batch = reader.read_batch(BATCH)
                    if batch is None:
                        break
                    for element in batch:
                        yield self._stamped(element, strategy)
            finally:
                reader.close()
        except Exception as exc:
            reraise_with_label(exc, self._label)

    @staticmethod
    def _stamped(element: Any, strategy: Any) -> Any:
        if strategy is None or strategy.timestamp_assigner is None:
            return to_beam_output(element) if type(element) is TimestampedValue else element
        if type(element) is TimestampedValue:
            value, micros = element.value, element.timestamp_micros
        else:
            value, micros = element, MIN_MICROS
        micros = strategy.assign_timestamp(value, micros)
        return bw.TimestampedValue(value, to_beam_timestamp(micros))


def translate_read(bp: beam.Pipeline, node: Any, desired_splits: int, streaming: bool) -> Any:
    """Beam's reading of the headrace ``Read`` at ``node``; refusals name the node."""
    transform: Read = node.transform
    label, source = node.full_label, transform.source
    if not source.is_bounded:
        raise NotImplementedError(
            f"{label}: reading the unbounded source {source.display_name()} is not supported "
            "with --runner=beam (it needs a splittable DoFn with a watermark estimator)")
    strategy = (transform.watermark_strategy if transform.watermark_strategy is not None
                else source.default_watermark_strategy())
    if strategy is not None:
        if strategy.idle_timeout_micros is not None:
            raise NotImplementedError(
                f"{label}: watermark idleness (WatermarkStrategy.with_idleness) has no Apache "
                "Beam counterpart; it cannot run with --runner=beam")
        if streaming and strategy.max_out_of_orderness_micros is not None:
            # Beam's Create-based read holds the watermark until the split is read; a
            # per-split watermark would need a splittable DoFn with a watermark estimator.
            raise NotImplementedError(
                f"{label}: a source watermark strategy ({strategy!r}) in a streaming pipeline "
                "is not supported with --runner=beam")
    try:
        splits = source.split(desired_splits)
    except Exception as exc:
        reraise_with_label(exc, label)
    descriptors = [dumps_user_code(split, label, "source split") for split in splits]
    return (bp
            | f"{label}/Splits" >> beam.Create(descriptors)
            | f"{label}/ReadSplits" >> beam.ParDo(ReadSplitFn(label, strategy)))


# -- TestStream ----------------------------------------------------------------------------------

def translate_test_stream(bp: beam.Pipeline, node: Any) -> dict:
    """Beam's TestStream replaying the headrace one; returns ``{tag: Beam PCollection}``."""
    transform: TestStream = node.transform
    tags = set(node.outputs)
    stream = BeamTestStream(output_tags=tags)
    for event in transform.events:
        if isinstance(event, ElementEvent):
            stream.add_elements([bw.TimestampedValue(v, to_beam_timestamp(t))
                                 for v, t in event.timestamped_values], tag=event.tag)
        elif isinstance(event, WatermarkEvent):
            if event.new_watermark_micros >= MAX_MICROS:
                stream.advance_watermark_to_infinity(tag=event.tag)
            else:
                stream.advance_watermark_to(to_beam_timestamp(event.new_watermark_micros),
                                            tag=event.tag)
        elif isinstance(event, ProcessingTimeEvent):
            stream.advance_processing_time(to_beam_duration(event.advance_by_micros))
    result = bp | node.full_label >> stream
    if isinstance(result, dict):
        return result
    return {next(iter(tags)): result}


# -- Write ---------------------------------------------------------------------------------------

class _NoElement:
    """Makes every writer exist even when it receives no element (an empty file is output)."""

    def __reduce__(self):
        return (_NoElement, ())


class WriteShardFn(beam.DoFn):
    """Opens writer ``i`` of ``n``, writes the shard's elements, yields ``close()``'s result."""

    def __init__(self, sink_bytes: bytes, num_writers: int, label: str) -> None:
        super().__init__()
        self._sink_bytes, self._num_writers, self._label = sink_bytes, num_writers, label

    def process(self, shard: Any) -> Iterator[Any]:
        index, elements = shard
        try:
            sink = loads_user_code(self._sink_bytes)
            writer = sink.open_writer(index, self._num_writers)
            writer.write_batch([e for e in elements if not isinstance(e, _NoElement)])
            if isinstance(sink, CommittingSink):
                # No checkpoints here: publish the shard's output at its end, as the
                # direct runner does at the end of input.
                committer = sink.create_committer(index, self._num_writers)
                committer.commit(writer.prepare_commit(1))
                committer.close()
            yield writer.close()
        except Exception as exc:
            reraise_with_label(exc, self._label)


class FinalizeFn(beam.DoFn):
    """Calls ``finalize`` once with every writer's result; outputs what it returns."""

    def __init__(self, sink_bytes: bytes, label: str) -> None:
        super().__init__()
        self._sink_bytes, self._label = sink_bytes, label

    def process(self, keyed: Any) -> Iterator[Any]:
        _, results = keyed
        try:
            outputs: List[Any] = loads_user_code(self._sink_bytes).finalize(list(results))
        except Exception as exc:
            reraise_with_label(exc, self._label)
        for output in outputs:
            # The direct runner stamps Write's outputs at the beginning of time.
            yield bw.TimestampedValue(output, to_beam_timestamp(MIN_MICROS))


def translate_write(bp: beam.Pipeline, node: Any, pcoll: Any,
                    num_writers: Optional[int] = None) -> Any:
    transform: Write = node.transform
    label = node.full_label
    # One writer, as on the direct runner: the same writer index and count, the same files.
    n = num_writers or 1
    sink_bytes = dumps_user_code(transform.sink, label, "sink")
    keyed = (pcoll
             | f"{label}/GlobalWindow" >> beam.WindowInto(bw.GlobalWindows())
             | f"{label}/ToWriter" >> beam.Map(lambda e: (0, e)))
    every_writer = bp | f"{label}/Writers" >> beam.Create([(i, _NoElement()) for i in range(n)])
    return ((keyed, every_writer)
            | f"{label}/All" >> beam.Flatten()
            | f"{label}/GroupByWriter" >> beam.GroupByKey()
            | f"{label}/WriteShards" >> beam.ParDo(WriteShardFn(sink_bytes, n, label))
            | f"{label}/KeyResults" >> beam.Map(lambda r: (None, r))
            | f"{label}/GatherResults" >> beam.GroupByKey()
            | f"{label}/Finalize" >> beam.ParDo(FinalizeFn(sink_bytes, label)))

