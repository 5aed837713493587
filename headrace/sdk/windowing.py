"""The windowing strategy a PCollection carries: window function and grouping policy."""
from __future__ import annotations

from typing import Any

from headrace.sdk.window import GlobalWindows, TimestampCombiner, WindowFn


class Windowing:
    """Which windows elements go to, and how grouped outputs are timestamped."""

    __slots__ = ("window_fn", "timestamp_combiner", "allowed_lateness_micros")

    def __init__(self, window_fn: WindowFn,
                 timestamp_combiner: str = TimestampCombiner.OUTPUT_AT_EOW,
                 allowed_lateness_micros: int = 0) -> None:
        self.window_fn = window_fn
        self.timestamp_combiner = timestamp_combiner
        self.allowed_lateness_micros = allowed_lateness_micros

    def is_global(self) -> bool:
        return isinstance(self.window_fn, GlobalWindows)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Windowing) and all(
            getattr(self, a) == getattr(other, a) for a in self.__slots__)

    def __hash__(self) -> int:
        return hash((type(self.window_fn), self.timestamp_combiner))

    def __repr__(self) -> str:
        return f"Windowing({self.window_fn!r}, {self.timestamp_combiner})"


DEFAULT_WINDOWING = Windowing(GlobalWindows())
