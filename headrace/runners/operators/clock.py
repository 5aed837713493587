"""Processing-time clocks: the wall clock, or a manual one that TestStream advances."""
from __future__ import annotations

import time


class WallClock:
    """Real processing time, in int microseconds since the epoch."""

    def now(self) -> int:
        return time.time_ns() // 1000


class ManualClock:
    """Virtual processing time starting at 0 (as Beam's TestClock), moved only by ``advance``.

    >>> clock = ManualClock(); clock.advance(5_000_000); clock.now()
    5000000
    """

    def __init__(self, start_micros: int = 0) -> None:
        self._now = start_micros

    def now(self) -> int:
        return self._now

    def advance(self, micros: int) -> None:
        self._now += micros
