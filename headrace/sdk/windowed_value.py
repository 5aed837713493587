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
