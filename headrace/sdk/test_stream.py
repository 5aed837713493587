"""``TestStream``: a scripted unbounded source for deterministic streaming tests (Beam's API).

The script is a list of events: elements arriving (each ``add_elements`` call
arrives as one bundle), the watermark advancing, and processing time
advancing. Runners replay it in order; processing time is virtual.

>>> from headrace.sdk.window import TimestampedValue
>>> stream = (TestStream()
...           .add_elements([TimestampedValue("a", 1), TimestampedValue("b", 2)])
...           .advance_watermark_to(10)
...           .advance_processing_time(5)
...           .advance_watermark_to_infinity())
>>> [type(e).__name__ for e in stream.events]
['ElementEvent', 'WatermarkEvent', 'ProcessingTimeEvent', 'WatermarkEvent']
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Set, Union

from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import PBegin, PCollection
from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS, Duration, to_micros
from headrace.sdk.window import TimestampedValue
from headrace.sdk.windowed_value import WindowedValue
from headrace.sdk.windowing import DEFAULT_WINDOWING


class ElementEvent(NamedTuple):
    #: ``(value, timestamp_micros)`` pairs.
    timestamped_values: List[tuple]
    tag: Optional[str] = None


class WatermarkEvent(NamedTuple):
    new_watermark_micros: int
    tag: Optional[str] = None


class ProcessingTimeEvent(NamedTuple):
    advance_by_micros: int


Event = Union[ElementEvent, WatermarkEvent, ProcessingTimeEvent]


class TestStream(PTransform):
    """Emit scripted elements and advance the watermark and processing time.

    Applied to a pipeline it yields one unbounded PCollection, or a dict of them
    by tag when ``add_elements``/``advance_watermark_to`` used several tags.
    """

    __test__ = False  # not a pytest test class
    is_primitive = True

    def __init__(self, coder: Any = None, events: Optional[List[Event]] = None,
                 output_tags: Optional[Iterable[Optional[str]]] = None) -> None:
        super().__init__()
        self.coder = coder
        self.events: List[Event] = []
        self.output_tags: Set[Optional[str]] = set(output_tags or ())
        self._watermarks: Dict[Optional[str], int] = {None: MIN_MICROS}
        for event in events or ():
            self._add(event)

    def _add(self, event: Event) -> "TestStream":
        if isinstance(event, ElementEvent):
            for _, micros in event.timestamped_values:
                if micros >= MAX_MICROS:
                    raise ValueError("TestStream: element timestamps must be before the end "
                                     "of time")
        elif isinstance(event, WatermarkEvent):
            previous = self._watermarks.get(event.tag, MIN_MICROS)
            if event.new_watermark_micros <= previous:
                raise ValueError(f"TestStream: the watermark must advance strictly: "
                                 f"{event.new_watermark_micros} <= {previous} (micros)")
            self._watermarks[event.tag] = event.new_watermark_micros
        elif isinstance(event, ProcessingTimeEvent):
            if event.advance_by_micros <= 0:
                raise ValueError("TestStream: processing time must advance by a positive amount")
        else:
            raise TypeError(f"TestStream: unknown event {event!r}")
        if not isinstance(event, ProcessingTimeEvent):
            self.output_tags.add(event.tag)
        self.events.append(event)
        return self

    def add_elements(self, elements: Iterable[Any], tag: Optional[str] = None,
                     event_timestamp: Any = None) -> "TestStream":
        """Elements arriving together; plain values get ``event_timestamp`` or the watermark."""
        default = (to_micros(event_timestamp, "TestStream event_timestamp")
                   if event_timestamp is not None else self._watermarks.get(tag, MIN_MICROS))
        values = []
        for element in elements:
            if isinstance(element, (TimestampedValue, WindowedValue)):
                values.append((element.value, element.timestamp_micros))
            else:
                values.append((element, default))
        return self._add(ElementEvent(values, tag))

    def advance_watermark_to(self, new_watermark: Any, tag: Optional[str] = None) -> "TestStream":
        """Advance the watermark to ``new_watermark`` (seconds or a Timestamp)."""
        return self._add(WatermarkEvent(to_micros(new_watermark, "TestStream watermark"), tag))

    def advance_watermark_to_infinity(self, tag: Optional[str] = None) -> "TestStream":
        """Advance the watermark to the end of time, completing the stream."""
        return self._add(WatermarkEvent(MAX_MICROS, tag))

    def advance_processing_time(self, advance_by: Any) -> "TestStream":
        """Advance (virtual) processing time by ``advance_by`` seconds."""
        return self._add(ProcessingTimeEvent(Duration.of(advance_by).micros))

    def expand(self, pbegin: PBegin) -> Union[PCollection, Dict[Optional[str], PCollection]]:
        if not isinstance(pbegin, PBegin):
            raise TypeError(f"{self.label!r} is a root transform: apply it to a Pipeline")
        node = pbegin.pipeline.current_node()
        tags = self.output_tags or {None}
        outputs = {tag: node.new_output(tag, DEFAULT_WINDOWING, is_bounded=False) for tag in tags}
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        return outputs
