"""Watermark strategies, Flink's model in Beam's style, applied per source split.

A strategy says how to find an element's event time (a timestamp assigner)
and how far behind the largest event time seen the watermark trails (bounded
out-of-orderness). With idleness, a split that has produced nothing for a
while stops holding the watermark back until data returns.

>>> strategy = (WatermarkStrategy.for_bounded_out_of_orderness(5)
...             .with_timestamp_assigner(lambda reading, _: reading["time"])
...             .with_idleness(30))
>>> generator = strategy.create_generator()
>>> generator.on_event(Timestamp(100).micros)
>>> generator.current_watermark() == Timestamp(95).micros - 1
True
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from headrace.sdk.timestamp import MIN_MICROS, Duration, Timestamp, to_micros

TimestampAssigner = Callable[[Any, Optional[Timestamp]], Any]


class WatermarkGenerator:
    """Tracks one split's watermark from the event times it has seen."""

    def __init__(self, max_out_of_orderness_micros: Optional[int]) -> None:
        self._bound = max_out_of_orderness_micros
        self._max_seen = MIN_MICROS

    def on_event(self, timestamp_micros: int) -> None:
        if timestamp_micros > self._max_seen:
            self._max_seen = timestamp_micros

    def current_watermark(self) -> int:
        """Everything at or before this instant is (believed) complete."""
        if self._bound is None or self._max_seen == MIN_MICROS:
            return MIN_MICROS
        return self._max_seen - self._bound - 1


class WatermarkStrategy:
    """How a source split assigns event times and derives its watermark."""

    def __init__(self, max_out_of_orderness_micros: Optional[int],
                 timestamp_assigner: Optional[TimestampAssigner] = None,
                 idle_timeout_micros: Optional[int] = None) -> None:
        self.max_out_of_orderness_micros = max_out_of_orderness_micros
        self.timestamp_assigner = timestamp_assigner
        self.idle_timeout_micros = idle_timeout_micros

    @classmethod
    def for_bounded_out_of_orderness(cls, max_out_of_orderness: Any) -> "WatermarkStrategy":
        """The watermark trails the largest event time seen by ``max_out_of_orderness``."""
        bound = Duration.of(max_out_of_orderness).micros
        if bound < 0:
            raise ValueError(f"max_out_of_orderness must not be negative, got "
                             f"{max_out_of_orderness!r}")
        return cls(bound)

    @classmethod
    def for_monotonous_timestamps(cls) -> "WatermarkStrategy":
        """Event times never decrease: the watermark follows the latest one."""
        return cls(0)

    @classmethod
    def no_watermarks(cls) -> "WatermarkStrategy":
        """The watermark stays at the beginning of time until the split ends."""
        return cls(None)

    def with_timestamp_assigner(self, assigner: TimestampAssigner) -> "WatermarkStrategy":
        """Take event times from ``assigner(element, previous_timestamp)`` (seconds,
        a Timestamp or a datetime)."""
        if not callable(assigner):
            raise TypeError(f"with_timestamp_assigner needs a callable, got {assigner!r:.100}")
        return WatermarkStrategy(self.max_out_of_orderness_micros, assigner,
                                 self.idle_timeout_micros)

    def with_idleness(self, idle_timeout: Any) -> "WatermarkStrategy":
        """Mark a split idle after ``idle_timeout`` seconds of processing time without data."""
        timeout = Duration.of(idle_timeout).micros
        if timeout <= 0:
            raise ValueError(f"with_idleness needs a positive timeout, got {idle_timeout!r}")
        return WatermarkStrategy(self.max_out_of_orderness_micros, self.timestamp_assigner,
                                 timeout)

    def create_generator(self) -> WatermarkGenerator:
        return WatermarkGenerator(self.max_out_of_orderness_micros)

    def assign_timestamp(self, element: Any, previous_micros: int) -> int:
        """The event time of ``element`` in micros, via the assigner (else the previous one)."""
        if self.timestamp_assigner is None:
            return previous_micros
        previous = None if previous_micros == MIN_MICROS else Timestamp(micros=previous_micros)
        return to_micros(self.timestamp_assigner(element, previous),
                         "event time returned by the timestamp assigner")

    def __repr__(self) -> str:
        return (f"WatermarkStrategy(out_of_orderness={self.max_out_of_orderness_micros}, "
                f"idle={self.idle_timeout_micros}, assigner={self.timestamp_assigner!r})")
