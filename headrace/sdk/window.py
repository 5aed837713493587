"""Windows and window functions, as in Beam's ``apache_beam.transforms.window``.

Windows keep their bounds as int microseconds (``start_micros``/``end_micros``)
for the runners' hot paths and expose :class:`Timestamp` s to users.

>>> FixedWindows(10).assign(WindowFn.AssignContext(Timestamp(23)))
[IntervalWindow(20, 30)]
"""
from __future__ import annotations

import abc
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from headrace.sdk.timestamp import (
    GLOBAL_WINDOW_END_MICROS,
    MIN_MICROS,
    MIN_TIMESTAMP,
    Duration,
    Timestamp,
    to_micros,
)
from headrace.sdk.windowed_value import WindowedValue


class TimestampCombiner:
    """How the timestamp of a grouped output is chosen from its inputs' timestamps."""

    OUTPUT_AT_EOW = "OUTPUT_AT_EOW"
    OUTPUT_AT_EARLIEST = "OUTPUT_AT_EARLIEST"
    OUTPUT_AT_LATEST = "OUTPUT_AT_LATEST"
    OUTPUT_AT_EARLIEST_TRANSFORMED = "OUTPUT_AT_EARLIEST_TRANSFORMED"


class BoundedWindow:
    """A window: a set of timestamps ending at ``end`` (exclusive)."""

    __slots__ = ("end_micros",)

    def __init__(self, end: Any) -> None:
        self.end_micros = to_micros(end, "window end")

    @property
    def end(self) -> Timestamp:
        return _timestamp(self.end_micros)

    def max_timestamp(self) -> Timestamp:
        return _timestamp(self.end_micros - 1)

    @property
    def max_timestamp_micros(self) -> int:
        return self.end_micros - 1


class GlobalWindow(BoundedWindow):
    """The single window spanning all of time; a singleton, as in Beam."""

    _instance: Optional["GlobalWindow"] = None

    def __new__(cls) -> "GlobalWindow":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
            BoundedWindow.__init__(cls._instance, Timestamp(micros=GLOBAL_WINDOW_END_MICROS))
        return cls._instance

    def __init__(self) -> None:
        pass

    def __repr__(self) -> str:
        return "GlobalWindow"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GlobalWindow)

    def __hash__(self) -> int:
        return 0x61B4

    def __reduce__(self):
        return (GlobalWindow, ())

    @property
    def start(self) -> Timestamp:
        return Timestamp(micros=MIN_MICROS)


GLOBAL_WINDOW = GlobalWindow()


class IntervalWindow(BoundedWindow):
    """The half-open interval ``[start, end)``.

    >>> IntervalWindow(0, 10).contains(Timestamp(9.5))
    True

    Windows key the state of every windowed operator, so the hash is computed once.
    """

    __slots__ = ("start_micros", "_hash")

    def __init__(self, start: Any, end: Any) -> None:
        super().__init__(end)
        self.start_micros = to_micros(start, "window start")
        self._hash = hash((self.start_micros, self.end_micros))

    @classmethod
    def from_micros(cls, start_micros: int, end_micros: int) -> "IntervalWindow":
        window = cls.__new__(cls)
        window.start_micros = start_micros
        window.end_micros = end_micros
        window._hash = hash((start_micros, end_micros))
        return window

    @property
    def start(self) -> Timestamp:
        return _timestamp(self.start_micros)

    def contains(self, timestamp: Any) -> bool:
        micros = to_micros(timestamp)
        return self.start_micros <= micros < self.end_micros

    def intersects(self, other: "IntervalWindow") -> bool:
        return other.start_micros < self.end_micros and self.start_micros < other.end_micros

    def union(self, other: "IntervalWindow") -> "IntervalWindow":
        return IntervalWindow.from_micros(min(self.start_micros, other.start_micros),
                                          max(self.end_micros, other.end_micros))

    def __eq__(self, other: object) -> bool:
        return other is self or (
            isinstance(other, IntervalWindow) and self.start_micros == other.start_micros
            and self.end_micros == other.end_micros)

    def __lt__(self, other: "IntervalWindow") -> bool:
        return (self.end_micros, self.start_micros) < (other.end_micros, other.start_micros)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"IntervalWindow({_seconds(self.start_micros)}, {_seconds(self.end_micros)})"

    def __reduce__(self):
        return (IntervalWindow.from_micros, (self.start_micros, self.end_micros))


def _timestamp(micros: int) -> Timestamp:
    """``Timestamp(micros=micros)`` without its argument checks (``micros`` is an int)."""
    timestamp = Timestamp.__new__(Timestamp)
    timestamp.micros = micros
    return timestamp


def _seconds(micros: int) -> str:
    return f"{micros // 1_000_000}" if micros % 1_000_000 == 0 else f"{micros / 1_000_000}"


class TimestampedValue:
    """A value with an event timestamp; ``Create`` and ``Map`` outputs of these are unwrapped.

    >>> TimestampedValue("click", 12.5).timestamp
    Timestamp(12.500000)
    """

    __slots__ = ("value", "timestamp_micros")

    def __init__(self, value: Any, timestamp: Any) -> None:
        self.value = value
        # Built once per element by user Maps: the float case inline (what to_micros does).
        if type(timestamp) is float:
            self.timestamp_micros = round(timestamp * 1_000_000)
        else:
            self.timestamp_micros = to_micros(timestamp, "TimestampedValue timestamp")

    @property
    def timestamp(self) -> Timestamp:
        return _timestamp(self.timestamp_micros)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TimestampedValue) and self.value == other.value
                and self.timestamp_micros == other.timestamp_micros)

    def __hash__(self) -> int:
        return hash((self.value, self.timestamp_micros))

    def __repr__(self) -> str:
        return f"TimestampedValue({self.value!r}, {self.timestamp!r})"


class WindowFn(abc.ABC):
    """Assigns elements to windows; merging window functions also merge windows."""

    class AssignContext:
        """What ``assign`` sees: the element's timestamp, the element, its current window."""

        __slots__ = ("timestamp", "element", "window")

        def __init__(self, timestamp: Any, element: Any = None,
                     window: Optional[BoundedWindow] = None) -> None:
            self.timestamp = Timestamp.of(timestamp)
            self.element = element
            self.window = window

    class MergeContext:
        """What ``merge`` sees: the windows of one key; ``merge`` reports merges to it."""

        def __init__(self, windows: Iterable[BoundedWindow]) -> None:
            self.windows = list(windows)
            self.merges: List[tuple] = []

        def merge(self, to_be_merged: Sequence[BoundedWindow], merge_result: BoundedWindow) -> None:
            self.merges.append((list(to_be_merged), merge_result))

    @abc.abstractmethod
    def assign(self, assign_context: "WindowFn.AssignContext") -> Iterable[BoundedWindow]:
        """Return the windows the element belongs to."""

    def merge(self, merge_context: "WindowFn.MergeContext") -> None:
        """Merge windows of one key by calling ``merge_context.merge``; no-op if not merging."""

    def is_merging(self) -> bool:
        """True unless the function is a :class:`NonMergingWindowFn` (Beam's default)."""
        return True

    def get_transformed_output_time(self, window: BoundedWindow, input_timestamp: Timestamp):
        return input_timestamp

    def assign_micros(self, timestamp_micros: int, element: Any,
                      window: BoundedWindow) -> Sequence[BoundedWindow]:
        """Runner fast path; built-in window functions override it to avoid Timestamp objects."""
        return list(self.assign(WindowFn.AssignContext(Timestamp(micros=timestamp_micros),
                                                       element, window)))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(type(self))


class NonMergingWindowFn(WindowFn):
    """A window function whose windows never merge."""

    def is_merging(self) -> bool:
        return False


class GlobalWindows(NonMergingWindowFn):
    """Every element in the single global window (the default)."""

    @classmethod
    def windowed_value(cls, value: Any, timestamp: Any = MIN_TIMESTAMP) -> WindowedValue:
        """A value in the global window, e.g. to emit from ``finish_bundle``."""
        return WindowedValue(value, timestamp, (GLOBAL_WINDOW,))

    def assign(self, assign_context):
        return [GLOBAL_WINDOW]

    def assign_micros(self, timestamp_micros, element, window):
        return (GLOBAL_WINDOW,)

    def __repr__(self) -> str:
        return "GlobalWindows()"


def _positive_micros(value: Any, what: str) -> int:
    micros = Duration.of(value).micros if not isinstance(value, Duration) else value.micros
    if micros <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return micros


class FixedWindows(NonMergingWindowFn):
    """Tumbling windows of ``size`` seconds, aligned to ``offset``.

    >>> FixedWindows(60).assign(WindowFn.AssignContext(Timestamp(61)))
    [IntervalWindow(60, 120)]
    """

    def __init__(self, size: Any, offset: Any = 0) -> None:
        self.size_micros = _positive_micros(size, "FixedWindows size")
        self.offset_micros = Duration.of(offset).micros % self.size_micros
        # The last window assigned: consecutive elements mostly fall in one window, and
        # sharing the object makes every lookup keyed by it an identity match.
        self._last: Tuple[int, tuple] = (MIN_MICROS, ())

    @property
    def size(self) -> Duration:
        return Duration(micros=self.size_micros)

    @property
    def offset(self) -> Duration:
        return Duration(micros=self.offset_micros)

    def assign(self, assign_context):
        return list(self.assign_micros(assign_context.timestamp.micros, None, None))

    def assign_micros(self, timestamp_micros, element, window):
        start = timestamp_micros - (timestamp_micros - self.offset_micros) % self.size_micros
        last = self._last
        if last[0] == start:
            return last[1]
        windows = (IntervalWindow.from_micros(start, start + self.size_micros),)
        self._last = (start, windows)
        return windows

    def __eq__(self, other: object) -> bool:
        return (type(self) is type(other) and self.size_micros == other.size_micros
                and self.offset_micros == other.offset_micros)

    def __hash__(self) -> int:
        return hash((type(self), self.size_micros, self.offset_micros))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_last"] = (MIN_MICROS, ())
        return state

    def __repr__(self) -> str:
        return f"FixedWindows({self.size_micros / 1e6:g}, offset={self.offset_micros / 1e6:g})"


class SlidingWindows(NonMergingWindowFn):
    """Overlapping windows of ``size`` seconds starting every ``period`` seconds.

    >>> SlidingWindows(10, 5).assign(WindowFn.AssignContext(Timestamp(12)))
    [IntervalWindow(10, 20), IntervalWindow(5, 15)]
    """

    def __init__(self, size: Any, period: Any, offset: Any = 0) -> None:
        self.size_micros = _positive_micros(size, "SlidingWindows size")
        self.period_micros = _positive_micros(period, "SlidingWindows period")
        self.offset_micros = Duration.of(offset).micros % self.period_micros

    @property
    def size(self) -> Duration:
        return Duration(micros=self.size_micros)

    @property
    def period(self) -> Duration:
        return Duration(micros=self.period_micros)

    def assign(self, assign_context):
        return list(self.assign_micros(assign_context.timestamp.micros, None, None))

    def assign_micros(self, timestamp_micros, element, window):
        last_start = timestamp_micros - (timestamp_micros - self.offset_micros) % self.period_micros
        size = self.size_micros
        return tuple(IntervalWindow.from_micros(start, start + size)
                     for start in range(last_start, timestamp_micros - size, -self.period_micros))

    def __repr__(self) -> str:
        return f"SlidingWindows({self.size_micros / 1e6:g}, {self.period_micros / 1e6:g})"


class Sessions(WindowFn):
    """Per-key activity sessions separated by at least ``gap_size`` seconds of inactivity.

    >>> ctx = WindowFn.MergeContext([IntervalWindow(0, 5), IntervalWindow(3, 8)])
    >>> Sessions(5).merge(ctx); ctx.merges
    [([IntervalWindow(0, 5), IntervalWindow(3, 8)], IntervalWindow(0, 8))]
    """

    def __init__(self, gap_size: Any) -> None:
        self.gap_size_micros = _positive_micros(gap_size, "Sessions gap_size")

    @property
    def gap_size(self) -> Duration:
        return Duration(micros=self.gap_size_micros)

    def is_merging(self) -> bool:
        return True

    def assign(self, assign_context):
        return list(self.assign_micros(assign_context.timestamp.micros, None, None))

    def assign_micros(self, timestamp_micros, element, window):
        return (IntervalWindow.from_micros(timestamp_micros,
                                           timestamp_micros + self.gap_size_micros),)

    def merge(self, merge_context):
        group: List[IntervalWindow] = []
        group_end = MIN_MICROS
        for window in sorted(merge_context.windows, key=lambda w: w.start_micros):
            if group and window.start_micros < group_end:
                group.append(window)
                group_end = max(group_end, window.end_micros)
                continue
            if len(group) > 1:
                merge_context.merge(group, IntervalWindow.from_micros(group[0].start_micros,
                                                                      group_end))
            group, group_end = [window], window.end_micros
        if len(group) > 1:
            merge_context.merge(group, IntervalWindow.from_micros(group[0].start_micros, group_end))

    def __repr__(self) -> str:
        return f"Sessions({self.gap_size_micros / 1e6:g})"
