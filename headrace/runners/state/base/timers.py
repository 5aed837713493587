"""Timers: per key, namespace (window), family and tag, in event or processing time.

Setting a timer with the identity of a pending one replaces it, as in Beam.
Due timers are popped one at a time, earliest first, because firing one may
set another that is due before the rest.
"""
from __future__ import annotations

import heapq
import itertools
from typing import Dict, Hashable, Iterable, List, NamedTuple, Optional, Tuple

from headrace.runners.state.base.key_groups import DEFAULT_MAX_PARALLELISM, key_group_for

EVENT_TIME = "EVENT_TIME"
PROCESSING_TIME = "PROCESSING_TIME"


class Timer(NamedTuple):
    key: bytes
    namespace: Hashable
    family: str
    tag: str
    domain: str
    fire_at: int
    #: The timestamp outputs of the timer callback get; holds the watermark back until fired.
    output_timestamp: int

    @property
    def identity(self) -> Tuple[bytes, Hashable, str, str]:
        return (self.key, self.namespace, self.family, self.tag)


class TimerService:
    """Pending timers of one operator instance, in both time domains.

    >>> timers = TimerService()
    >>> timers.set(Timer(b"k", None, "flush", "", EVENT_TIME, 10, 10))
    >>> timers.pop_due(EVENT_TIME, 9) is None, timers.pop_due(EVENT_TIME, 10).fire_at
    (True, 10)
    """

    def __init__(self) -> None:
        self._pending: Dict[Tuple, Timer] = {}
        self._heaps: Dict[str, List[Tuple[int, int, Tuple]]] = {EVENT_TIME: [],
                                                                 PROCESSING_TIME: []}
        self._sequence = itertools.count()

    def set(self, timer: Timer) -> None:
        """Schedule ``timer``, replacing a pending timer with the same identity."""
        identity = timer.identity
        self._pending[identity] = timer
        heapq.heappush(self._heaps[timer.domain], (timer.fire_at, next(self._sequence), identity))

    def delete(self, key: bytes, namespace: Hashable, family: str, tag: str = "") -> None:
        """Cancel a pending timer; stale heap entries are skipped when popped."""
        self._pending.pop((key, namespace, family, tag), None)

    def get(self, key: bytes, namespace: Hashable, family: str, tag: str = "") -> Optional[Timer]:
        return self._pending.get((key, namespace, family, tag))

    def _clean_top(self, domain: str) -> Optional[Tuple[int, int, Tuple]]:
        heap = self._heaps[domain]
        while heap:
            fire_at, _, identity = heap[0]
            timer = self._pending.get(identity)
            if timer is not None and timer.domain == domain and timer.fire_at == fire_at:
                return heap[0]
            heapq.heappop(heap)
        return None

    def next_time(self, domain: str) -> Optional[int]:
        """When the earliest pending timer of ``domain`` fires, or None."""
        top = self._clean_top(domain)
        return None if top is None else top[0]

    def pop_due(self, domain: str, up_to: int) -> Optional[Timer]:
        """Remove and return the earliest timer of ``domain`` with ``fire_at <= up_to``."""
        top = self._clean_top(domain)
        if top is None or top[0] > up_to:
            return None
        heapq.heappop(self._heaps[domain])
        return self._pending.pop(top[2])

    def timers_for(self, key: bytes, namespace: Hashable) -> List[Timer]:
        """Pending timers of one key and namespace (to move them when windows merge)."""
        return [t for t in self._pending.values() if t.key == key and t.namespace == namespace]

    def watermark_hold(self) -> Optional[int]:
        """The earliest output timestamp of a pending event-time timer, or None."""
        times = [t.output_timestamp for t in self._pending.values() if t.domain == EVENT_TIME]
        return min(times) if times else None

    def pending(self) -> List[Timer]:
        return list(self._pending.values())

    def snapshot(self) -> List[Timer]:
        """The pending timers now: timers are immutable, so the list is a consistent snapshot.

        >>> timers = TimerService()
        >>> timers.set(Timer(b"k", None, "flush", "", EVENT_TIME, 10, 10))
        >>> restored = TimerService()
        >>> restored.restore(timers.snapshot(), range(0, 128))
        >>> restored.next_time(EVENT_TIME)
        10
        """
        return list(self._pending.values())

    def restore(self, timers: Iterable[Timer], key_groups: range,
                max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> None:
        """Add those of ``timers`` (from any subtasks' snapshots) with keys in ``key_groups``."""
        for timer in timers:
            if key_group_for(timer.key, max_parallelism) in key_groups:
                self.set(timer)

    def __len__(self) -> int:
        return len(self._pending)
