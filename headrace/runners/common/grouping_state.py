"""The per-key, per-window state of a triggered grouping, and the in-memory indexes derived
from it: the base of :class:`~headrace.runners.common.grouping.TriggeredGrouping`.

Everything a grouping knows about a key's window lives in the ``KeyedStateBackend``
(namespace = the window) and the ``TimerService``:

====================  =====  ===========================================================
cell                  kind   contents
====================  =====  ===========================================================
``pane``              value  ``[key, panes fired, non-speculative panes fired, finished,
                             elements since the last pane]``: the window is active while
                             this cell exists
``buffer``            bag    the values (GroupByKey, :class:`BufferAggregation`)
``accumulator``       value  one accumulator (CombinePerKey, :class:`CombiningAggregation`)
``hold``              value  ``(timestamp of the next pane, earliest time held)``
``trigger/...``       value  the trigger's own state (``runners/common/triggers.py``)
====================  =====  ===========================================================

Timers: the trigger's (family ``trigger``) and one garbage-collection timer
per window (family ``gc``) at ``end + allowed lateness + 1µs``.

Holds: a window holds the output watermark at its pending pane's timestamp
minus 1µs (as Beam's direct runner does), so no pane is late downstream.
An index of the holds (a heap) lives in memory; it is derived from the
``hold`` cells and can be rebuilt from the backend with
:meth:`GroupingState.rebuild_indexes`.

:class:`GroupingState` owns this layout: the holds and their index, the index of open
windows, the garbage-collection timer, forgetting a window, and merging windows' state.
"""
from __future__ import annotations

import heapq
import itertools
from typing import Any, Dict, Hashable, List, Optional, Tuple

from headrace.runners.common.aggregations import Aggregation
from headrace.runners.common.triggers import TRIGGER_TIMERS, TriggerContext, compile_trigger
from headrace.runners.state.base import EVENT_TIME, Timer
from headrace.sdk.timestamp import MAX_MICROS, Timestamp
from headrace.sdk.window import TimestampCombiner, WindowFn
from headrace.sdk.windowing import Windowing

PANE = "pane"
HOLD = "hold"
GC_TIMERS = "gc"
# Positions in the ``pane`` cell.
KEY, INDEX, NONSPECULATIVE, FINISHED, PENDING = range(5)


class GroupingState:
    """The state of every key's windows in a grouping, kept in ``backend`` and ``timers``.

    It holds what the state depends on: the window function, the compiled trigger (its
    cells and timers are cleared and merged with the window's), the allowed lateness,
    the timestamp combiner and the aggregation.
    """

    def __init__(self, windowing: Windowing, aggregation: Aggregation, backend: Any,
                 timers: Any) -> None:
        self.window_fn: WindowFn = windowing.window_fn
        self.merging = self.window_fn.is_merging()
        self.trigger = compile_trigger(windowing.trigger)
        self.fast_default = self.trigger.is_default() and not self.merging
        self.lateness = windowing.allowed_lateness_micros
        combiner = windowing.timestamp_combiner
        self.combiner = combiner
        self.eow = combiner == TimestampCombiner.OUTPUT_AT_EOW
        # How holds (and so pane timestamps) of several elements or windows combine.
        self.combine_holds = (min if combiner in (TimestampCombiner.OUTPUT_AT_EARLIEST,
                                                  TimestampCombiner.OUTPUT_AT_EARLIEST_TRANSFORMED)
                              else max)
        self.aggregation = aggregation
        self.backend = backend
        self.timers = timers
        self.trigger_cells = self.trigger.state_cells()
        self.trigger_timer_tags = self.trigger.timer_tags()
        # In-memory indexes derived from the backend (``rebuild_indexes`` re-derives them):
        # the windows the fast path may add to (default trigger, non-merging), and the holds:
        # (key, window) -> earliest held time, with a heap over it that has stale entries.
        self._open: set = set()
        self._holds: Dict[Tuple[bytes, Hashable], int] = {}
        self._hold_heap: List[Tuple[int, int, bytes, Hashable]] = []
        self._sequence = itertools.count()
        # Set at each call: the watermarks and processing time the evaluation happens at.
        self.input_watermark = 0
        self.output_watermark = 0
        self.now = 0

    # -- holds ----------------------------------------------------------------------------------
    def _add_hold(self, encoded: bytes, window: Any, timestamps: List[int]) -> None:
        """Hold the output watermark for the elements not already behind it (as Beam)."""
        floor = self.output_watermark
        if self.eow:
            if window.max_timestamp_micros < floor:
                return
            stamp = earliest = window.max_timestamp_micros
        else:
            if self.combiner == TimestampCombiner.OUTPUT_AT_EARLIEST_TRANSFORMED:
                timestamps = [self._transformed(window, t) for t in timestamps]
            times = [t for t in timestamps if t >= floor]
            if not times:
                return
            # Beam's driver adds one hold per bundle (the bundle's combined time); the
            # watermark is held at the earliest of those.
            stamp = earliest = self.combine_holds(times)
        old = self.backend.get_value(HOLD, encoded, window)
        if old is not None:
            new = (self.combine_holds(old[0], stamp), min(old[1], earliest))
            if new == old:
                return
            stamp, earliest = new
        self._put_hold(encoded, window, stamp, earliest)

    def _transformed(self, window: Any, micros: int) -> int:
        return Timestamp.of(self.window_fn.get_transformed_output_time(
            window, Timestamp(micros=micros))).micros

    def _put_hold(self, encoded: bytes, window: Any, stamp: int, earliest: int) -> None:
        """Record the pending pane's timestamp and the earliest time it holds the watermark at.

        They differ only for OUTPUT_AT_LATEST: the pane is stamped with the latest element,
        but the watermark is held at the earliest bundle's latest element (as Beam's direct
        runner does).
        """
        self.backend.put_value(HOLD, encoded, window, (stamp, earliest))
        self._holds[(encoded, window)] = earliest
        heapq.heappush(self._hold_heap, (earliest, next(self._sequence), encoded, window))

    def _clear_hold(self, encoded: bytes, window: Any) -> None:
        self.backend.clear(HOLD, encoded, window)
        self._holds.pop((encoded, window), None)

    def watermark_hold(self) -> Optional[int]:
        """The earliest pending pane timestamp, or None: the output watermark stays below it."""
        heap, holds = self._hold_heap, self._holds
        while heap:
            hold, _, encoded, window = heap[0]
            if holds.get((encoded, window)) == hold:
                return hold
            heapq.heappop(heap)
        return None

    def output_watermark_for(self, input_watermark: int) -> int:
        """The output watermark: the input's, held 1µs before the earliest pending pane."""
        hold = self.watermark_hold()
        return input_watermark if hold is None else min(input_watermark, hold - 1)

    def rebuild_indexes(self) -> None:
        """Re-derive the in-memory indexes (holds, open windows) from the backend (restore)."""
        self._holds.clear()
        self._hold_heap.clear()
        self._open.clear()
        for encoded in self.backend.keys():
            for window in self.backend.namespaces(encoded):
                pane = self.backend.get_value(PANE, encoded, window)
                if self.fast_default and pane is not None and not pane[FINISHED]:
                    self._open.add((encoded, window))
                hold = self.backend.get_value(HOLD, encoded, window)
                if hold is not None:
                    self._holds[(encoded, window)] = hold[1]
                    self._hold_heap.append((hold[1], next(self._sequence), encoded, window))
        heapq.heapify(self._hold_heap)

    # -- forgetting a window --------------------------------------------------------------------
    def _clear_trigger(self, encoded: bytes, window: Any) -> None:
        backend, timers = self.backend, self.timers
        for cell, _ in self.trigger_cells:
            backend.clear(cell, encoded, window)
        for tag in self.trigger_timer_tags:
            timers.delete(encoded, window, TRIGGER_TIMERS, tag)

    def _gc_time(self, window: Any) -> int:
        # Expired once the watermark is past end + lateness; timers fire at fire_at <= watermark.
        return min(window.end_micros + self.lateness + 1, MAX_MICROS)

    def _set_gc_timer(self, encoded: bytes, window: Any) -> None:
        self.timers.set(Timer(encoded, window, GC_TIMERS, "", EVENT_TIME, self._gc_time(window),
                              MAX_MICROS))

    def _forget(self, encoded: bytes, window: Any) -> None:
        self.backend.clear_namespace(encoded, window)
        self._holds.pop((encoded, window), None)
        self._open.discard((encoded, window))
        for tag in self.trigger_timer_tags:
            self.timers.delete(encoded, window, TRIGGER_TIMERS, tag)
        self.timers.delete(encoded, window, GC_TIMERS, "")

    # -- merging windows ------------------------------------------------------------------------
    def _merge_windows(self, groups: Dict[Tuple[bytes, Hashable], list]
                       ) -> Dict[Tuple[bytes, Hashable], list]:
        """Merge each key's new windows with its active ones, moving state; remap the groups."""
        new_by_key: Dict[bytes, List[Hashable]] = {}
        for encoded, window in groups:
            new_by_key.setdefault(encoded, []).append(window)
        renamed: Dict[Tuple[bytes, Hashable], Hashable] = {}
        for encoded, new_windows in new_by_key.items():
            for old, merged in self._merge_key(encoded, new_windows).items():
                renamed[(encoded, old)] = merged
        if not renamed:
            return groups
        remapped: Dict[Tuple[bytes, Hashable], list] = {}
        for (encoded, window), (key, values, timestamps) in groups.items():
            window = renamed.get((encoded, window), window)
            group = remapped.get((encoded, window))
            if group is None:
                remapped[(encoded, window)] = [key, values, timestamps]
            else:
                group[1].extend(values)
                group[2].extend(timestamps)
        return remapped

    def _merge_key(self, encoded: bytes, new_windows: List[Hashable]) -> Dict[Hashable, Hashable]:
        backend = self.backend
        active = [w for w in backend.namespaces(encoded)
                  if backend.get_value(PANE, encoded, w) is not None]
        known = set(active)
        candidates = active + [w for w in dict.fromkeys(new_windows) if w not in known]
        if len(candidates) == len(active):
            return {}
        context = WindowFn.MergeContext(candidates)
        self.window_fn.merge(context)
        renamed: Dict[Hashable, Hashable] = {}
        for to_be_merged, result in context.merges:
            for window in to_be_merged:
                if window != result:
                    renamed[window] = result
            with_state = [w for w in to_be_merged if w in known]
            if with_state:
                self._merge_state(encoded, with_state, result, result in known)
                known.add(result)
        # Beam follows chains of merges; a window function may merge a result again.
        for window, result in list(renamed.items()):
            while result in renamed and renamed[result] != result:
                result = renamed[result]
            renamed[window] = result
        return renamed

    def _merge_state(self, encoded: bytes, sources: List[Hashable], target: Hashable,
                     target_active: bool) -> None:
        """Fold the state of ``sources`` (active windows) into ``target``; forget the others."""
        backend = self.backend
        panes = [backend.get_value(PANE, encoded, w) for w in sources]
        if target_active:
            pane = backend.get_value(PANE, encoded, target)
        else:
            # Beam does not carry pane indices across a merge: the merged window starts over.
            pane = [panes[0][KEY], 0, 0, False, False]
        pane[FINISHED] = any(p[FINISHED] for p in panes)
        pane[PENDING] = any(p[PENDING] for p in panes)
        self.aggregation.merge(backend, encoded, sources, target)
        holds = [h for h in (backend.get_value(HOLD, encoded, w) for w in sources)
                 if h is not None]
        cells = {}
        for cell, merge in self.trigger_cells:
            values = [v for v in (backend.get_value(cell, encoded, w) for w in sources)
                      if v is not None]
            if values:
                cells[cell] = merge(values)
        for window in sources:
            if window != target:
                self._forget(encoded, window)
        for cell, value in cells.items():
            backend.put_value(cell, encoded, target, value)
        if holds:
            self._put_hold(encoded, target, self.combine_holds(h[0] for h in holds),
                           min(h[1] for h in holds))
        backend.put_value(PANE, encoded, target, pane)
        if not target_active:
            self._set_gc_timer(encoded, target)
        if not pane[FINISHED]:
            self.trigger.on_merge(TriggerContext(backend, self.timers, encoded, target,
                                                 self.input_watermark, self.now))
