"""Beam's roots as headrace sources: ``Impulse``, bounded ``Read``, ``TestStream``, and
the side-input view that evaluates Beam's own view functions."""
from __future__ import annotations

import collections
import itertools
from typing import Any, Iterator, List, Optional

from apache_beam.portability import common_urns

from headrace.runners.beam.from_beam_metrics import install_bridge
from headrace.runners.beam.from_beam_values import beam_micros, to_headrace_output
from headrace.sdk import test_stream as hts
from headrace.sdk.io_base import Source, SourceSplit, SplitReader
from headrace.sdk.pvalue import AsSideInput, PCollection


class _IteratorReader(SplitReader):
    """Reads a Beam source's iterator; the Beam metrics its code records while reading
    are the reading step's (the read operator's metrics container is current)."""

    def __init__(self, values: Iterator[Any]) -> None:
        self._values = values
        self._done = False

    def read_batch(self, max_records: int) -> Optional[List[Any]]:
        if self._done:
            return None
        install_bridge()
        batch = []
        for value in self._values:
            batch.append(to_headrace_output(value))
            if len(batch) >= max_records:
                return batch
        self._done = True
        return batch or None


class _BeamSourceSplit(SourceSplit):
    """Some of a Beam source's bundles (``SourceBundle`` s), read one after another; or the
    whole source (``bundles`` is ``None``); or Beam's ``Impulse`` (``source`` is ``None``)."""

    def __init__(self, source: Any, bundles: Optional[List[Any]] = None) -> None:
        self.source = source
        self.bundles = bundles

    def open(self, position: Any = None) -> SplitReader:
        if self.source is None:  # Impulse: one empty byte string, as Beam emits
            return _IteratorReader(iter([b""]))
        if self.bundles is None:
            tracker = self.source.get_range_tracker(None, None)
            return _IteratorReader(iter(self.source.read(tracker)))
        return _IteratorReader(itertools.chain.from_iterable(
            bundle.source.read(bundle.source.get_range_tracker(bundle.start_position,
                                                               bundle.stop_position))
            for bundle in self.bundles))


class BeamBoundedSource(Source):
    """A Beam ``BoundedSource`` (or Beam's ``Impulse`` when ``None``).

    Split as Beam's ``Read`` splits it (``source.split`` with the chunk size Beam
    derives from the estimated size), the bundles dealt round-robin over at most
    ``desired_num_splits`` headrace splits.
    """

    def __init__(self, source: Any = None) -> None:
        self.source = source

    def split(self, desired_num_splits: int) -> List[SourceSplit]:
        if self.source is None or desired_num_splits <= 1:
            return [_BeamSourceSplit(self.source)]
        from apache_beam.io.iobase import Read as BeamRead

        try:
            size = self.source.estimate_size()
        except Exception:  # noqa: BLE001 (as Beam: an unknown size gets the default chunk)
            size = None
        bundles = list(self.source.split(BeamRead.get_desired_chunk_size(size)))
        if len(bundles) <= 1:
            return [_BeamSourceSplit(self.source)]
        count = min(desired_num_splits, len(bundles))
        return [_BeamSourceSplit(self.source, bundles[i::count])
                for i in range(count)]

    def display_name(self) -> str:
        return "Impulse" if self.source is None else type(self.source).__name__


class BeamSideInputView(AsSideInput):
    """A headrace side-input view computed by a Beam view's own ``view_fn``.

    Beam describes every view (AsSingleton, AsList, AsIter, AsDict, AsMultiMap,
    and views made outside those) by an access pattern and a function of the
    window's values; using them keeps Beam's exact semantics and error texts.
    """

    def __init__(self, pcoll: PCollection, beam_view: Any) -> None:
        super().__init__(pcoll)
        data = beam_view._side_input_data()
        self.access_pattern = data.access_pattern
        self.view_fn = data.view_fn

    def view(self, values: List[Any]) -> Any:
        if self.access_pattern == common_urns.side_inputs.MULTIMAP.urn:
            multimap = collections.defaultdict(list)
            for key, value in values:
                multimap[key].append(value)
            return self.view_fn(multimap)
        return self.view_fn(values)


def translate_test_stream(stream: Any) -> hts.TestStream:
    """Headrace's ``TestStream`` replaying the events of a Beam one."""
    from apache_beam.testing import test_stream as bts

    events: List[Any] = []
    for event in stream._events:
        if isinstance(event, bts.ElementEvent):
            values = []
            for tv in event.timestamped_values:
                value = getattr(tv, "value", tv)
                values.append((value, beam_micros(tv.timestamp)))
            events.append(hts.ElementEvent(values, event.tag))
        elif isinstance(event, bts.WatermarkEvent):
            events.append(hts.WatermarkEvent(beam_micros(event.new_watermark),
                                             event.tag))
        elif isinstance(event, bts.ProcessingTimeEvent):
            events.append(hts.ProcessingTimeEvent(beam_micros(event.advance_by)))
        else:
            raise NotImplementedError(f"Beam TestStream event {event!r} is not supported")
    return hts.TestStream(events=events, output_tags=stream.output_tags or None)
