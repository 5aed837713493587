"""The runner-side element envelope: a value with its timestamp, windows and pane."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from headrace.sdk.timestamp import Timestamp, to_micros


class WindowedValue:
    """A value in one or more windows at an event timestamp (int microseconds).

    ``DoFn.finish_bundle`` yields these to say which window an output belongs to.

    >>> from headrace.sdk.window import GLOBAL_WINDOW
    >>> WindowedValue("x", 5, [GLOBAL_WINDOW]).timestamp
    Timestamp(5)
    """

    __slots__ = ("value", "timestamp_micros", "windows", "pane_info")

    def __init__(self, value: Any, timestamp: Any, windows: Sequence[Any],
                 pane_info: Optional[Any] = None) -> None:
        self.value = value
        self.timestamp_micros = to_micros(timestamp)
        self.windows = tuple(windows)
        self.pane_info = pane_info

    @classmethod
    def of(cls, value: Any, timestamp_micros: int, windows: tuple,
           pane_info: Optional[Any] = None) -> "WindowedValue":
        """Construct without validation (runner hot path)."""
        wv = cls.__new__(cls)
        wv.value = value
        wv.timestamp_micros = timestamp_micros
        wv.windows = windows
        wv.pane_info = pane_info
        return wv

    @property
    def timestamp(self) -> Timestamp:
        return Timestamp(micros=self.timestamp_micros)

    def with_value(self, value: Any) -> "WindowedValue":
        return WindowedValue.of(value, self.timestamp_micros, self.windows, self.pane_info)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, WindowedValue) and self.value == other.value
                and self.timestamp_micros == other.timestamp_micros
                and self.windows == other.windows and self.pane_info == other.pane_info)

    def __hash__(self) -> int:
        return hash((self.timestamp_micros, self.windows))

    def __repr__(self) -> str:
        return f"WindowedValue({self.value!r}, {self.timestamp!r}, {list(self.windows)!r})"


class PaneInfoTiming:
    """When a pane fired relative to the watermark, as in Beam."""

    EARLY = 0
    ON_TIME = 1
    LATE = 2
    UNKNOWN = 3

    @classmethod
    def to_string(cls, value: int) -> str:
        return ("EARLY", "ON_TIME", "LATE", "UNKNOWN")[value]


class PaneInfo:
    """Which firing of a window produced an element (``DoFn.PaneInfoParam``).

    >>> PaneInfo(True, False, PaneInfoTiming.EARLY, 0, -1)
    PaneInfo(first: True, last: False, timing: EARLY, index: 0, on_time_index: -1)
    """

    __slots__ = ("is_first", "is_last", "timing", "index", "nonspeculative_index")

    def __init__(self, is_first: bool, is_last: bool, timing: int, index: int,
                 nonspeculative_index: int) -> None:
        self.is_first = is_first
        self.is_last = is_last
        self.timing = timing
        self.index = index
        self.nonspeculative_index = nonspeculative_index

    def _key(self) -> tuple:
        return (self.is_first, self.is_last, self.timing, self.index, self.nonspeculative_index)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PaneInfo) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"PaneInfo(first: {self.is_first}, last: {self.is_last}, "
                f"timing: {PaneInfoTiming.to_string(self.timing)}, index: {self.index}, "
                f"on_time_index: {self.nonspeculative_index})")

    def __reduce__(self):
        return (PaneInfo, self._key())


#: The pane of elements that no trigger produced (Beam's ``PANE_INFO_UNKNOWN``).
PANE_INFO_UNKNOWN = PaneInfo(True, True, PaneInfoTiming.UNKNOWN, 0, 0)
