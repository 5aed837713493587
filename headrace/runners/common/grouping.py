"""Grouping per key and window, fired by triggers: what GroupByKey and CombinePerKey run.

:class:`TriggeredGrouping` is runner-agnostic: it is handed bundles of
elements, watermarks and processing times, and returns the panes to emit.
Everything it knows about a key's window lives in the ``KeyedStateBackend``
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

Semantics are Beam's Python ``GeneralTriggerDriver``, the reference the
direct runner is compared with: a bundle's elements are added per window,
then the trigger is asked once per window whether to fire; pane info
(first/last, EARLY/ON_TIME/LATE, index, non-speculative index), the
timestamps given by the timestamp combiner and the holds are computed as it
does, merged windows merge their state (and restart their pane index).
An element is dropped for a window once the input watermark is past
``window.end + allowed_lateness``. Where the Python driver has no behaviour
(it never garbage-collects) Beam's model, as its Java runners implement it,
is followed: at the garbage-collection time a window that still holds
elements not yet emitted fires a final pane, then its state and timers are
deleted and its hold released.

Holds: a window holds the output watermark at its pending pane's timestamp
minus 1µs (as Beam's direct runner does), so no pane is late downstream.
An index of the holds (a heap) lives in memory; it is derived from the
``hold`` cells and can be rebuilt from the backend with
:meth:`TriggeredGrouping.rebuild_indexes`.
"""
from __future__ import annotations

import heapq
import itertools
from typing import Any, Callable, Dict, Hashable, Iterable, List, Optional, Tuple

from headrace.runners.common.triggers import TRIGGER_TIMERS, TriggerContext, compile_trigger
from headrace.runners.state.base import EVENT_TIME, PROCESSING_TIME, Timer
from headrace.sdk.timestamp import MAX_MICROS, Timestamp
from headrace.sdk.trigger import AccumulationMode
from headrace.sdk.window import TimestampCombiner, WindowFn
from headrace.sdk.windowed_value import PaneInfo, PaneInfoTiming, WindowedValue
from headrace.sdk.windowing import Windowing

PANE = "pane"
HOLD = "hold"
GC_TIMERS = "gc"
# Positions in the ``pane`` cell.
_KEY, _INDEX, _NONSPECULATIVE, _FINISHED, _PENDING = range(5)

_EARLY, _ON_TIME, _LATE = PaneInfoTiming.EARLY, PaneInfoTiming.ON_TIME, PaneInfoTiming.LATE


class Aggregation:
    """How a window's values are kept: a bag of them, or one accumulator."""

    def add(self, backend: Any, key: bytes, window: Hashable, values: List[Any]) -> None:
        raise NotImplementedError

    def extract(self, backend: Any, key: bytes, window: Hashable) -> Any:
        raise NotImplementedError

    def clear(self, backend: Any, key: bytes, window: Hashable) -> None:
        raise NotImplementedError

    def merge(self, backend: Any, key: bytes, sources: List[Hashable], target: Hashable) -> None:
        """Fold the contents of ``sources`` (which may include ``target``) into ``target``."""
        raise NotImplementedError


class BufferAggregation(Aggregation):
    """GroupByKey: the values in a bag; a pane is the list of them.

    >>> from headrace.runners.state.memory import MemoryStateBackend
    >>> backend = MemoryStateBackend()
    >>> BufferAggregation().add(backend, b"k", None, [1, 2])
    >>> BufferAggregation().extract(backend, b"k", None)
    [1, 2]
    """

    CELL = "buffer"

    def add(self, backend: Any, key: bytes, window: Hashable, values: List[Any]) -> None:
        add = backend.add_to_bag
        for value in values:
            add(self.CELL, key, window, value)

    def extract(self, backend: Any, key: bytes, window: Hashable) -> Any:
        return backend.read_bag(self.CELL, key, window)

    def clear(self, backend: Any, key: bytes, window: Hashable) -> None:
        backend.clear(self.CELL, key, window)

    def merge(self, backend: Any, key: bytes, sources: List[Hashable], target: Hashable) -> None:
        for source in sources:
            if source != target:
                self.add(backend, key, target, backend.read_bag(self.CELL, key, source))
                backend.clear(self.CELL, key, source)


class CombiningAggregation(Aggregation):
    """CombinePerKey: one accumulator per key and window, never the elements themselves.

    ``call(method, *args)`` invokes a ``CombineFn`` method (the operator adds
    the CombineFn's extra arguments and labels its errors).

    >>> from headrace.runners.state.memory import MemoryStateBackend
    >>> from headrace.sdk.combinefn import CombineFn
    >>> backend, total = MemoryStateBackend(), CombineFn.maybe_from_callable(sum)
    >>> aggregation = CombiningAggregation(total, lambda method, *args: method(*args))
    >>> aggregation.add(backend, b"k", None, [1, 2]); aggregation.add(backend, b"k", None, [3])
    >>> aggregation.extract(backend, b"k", None)
    6
    """

    CELL = "accumulator"

    def __init__(self, combine_fn: Any, call: Callable[..., Any]) -> None:
        self.fn = combine_fn
        self.call = call

    def add(self, backend: Any, key: bytes, window: Hashable, values: List[Any]) -> None:
        accumulator = backend.get_value(self.CELL, key, window)
        if accumulator is None:
            accumulator = self.call(self.fn.create_accumulator)
        backend.put_value(self.CELL, key, window,
                          self.call(self.fn.add_inputs, accumulator, values))

    def extract(self, backend: Any, key: bytes, window: Hashable) -> Any:
        accumulator = backend.get_value(self.CELL, key, window)
        if accumulator is None:  # an empty pane, e.g. on time after discarding early panes
            accumulator = self.call(self.fn.create_accumulator)
        return self.call(self.fn.extract_output, self.call(self.fn.compact, accumulator))

    def clear(self, backend: Any, key: bytes, window: Hashable) -> None:
        backend.clear(self.CELL, key, window)

    def merge(self, backend: Any, key: bytes, sources: List[Hashable], target: Hashable) -> None:
        accumulators = [a for a in (backend.get_value(self.CELL, key, w) for w in sources)
                        if a is not None]
        for source in sources:
            backend.clear(self.CELL, key, source)
        if accumulators:
            backend.put_value(self.CELL, key, target,
                              self.call(self.fn.merge_accumulators, accumulators))


class TriggeredGrouping:
    """Groups ``(key, value)`` elements per key and window and emits panes as triggers fire.

    ``process_bundle``, ``on_watermark`` and ``on_processing_time`` return
    the panes to emit, as ``WindowedValue`` s of ``(key, aggregate)``.

    >>> from headrace.runners.state.memory import MemoryStateBackend
    >>> from headrace.runners.state.base import TimerService
    >>> from headrace.sdk.window import FixedWindows, IntervalWindow
    >>> g = TriggeredGrouping(Windowing(FixedWindows(10)), BufferAggregation(),
    ...                       MemoryStateBackend(), TimerService())
    >>> g.process_bundle([(b"k", "k", 1, 3_000_000, (IntervalWindow(0, 10),))], 0, 0)
    ([], 0)
    >>> [(wv.value, wv.pane_info.timing) for wv in g.on_watermark(10_000_000, 0)]
    [(('k', [1]), 1)]
    """

    def __init__(self, windowing: Windowing, aggregation: Aggregation, backend: Any,
                 timers: Any) -> None:
        self.window_fn: WindowFn = windowing.window_fn
        self.merging = self.window_fn.is_merging()
        self.trigger = compile_trigger(windowing.trigger)
        self.fast_default = self.trigger.is_default() and not self.merging
        self.has_ontime_pane = self.trigger.has_ontime_pane()
        self.discarding = windowing.accumulation_mode == AccumulationMode.DISCARDING
        self.lateness = windowing.allowed_lateness_micros
        # Beam's batch driver emits the single pane of default windowing as the last one.
        self.only_firing = windowing.is_default()
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
        #: Elements dropped because a window was already expired / finished (for metrics).
        self.dropped_late = 0
        self.dropped_closed = 0
        #: Batch execution: ask the trigger only once all input is in (``fire_deferred``), as
        #: Beam's batch runners do by processing each key's whole input as one bundle.
        self.defer_firing = False
        # Set at each call: the watermarks and processing time the evaluation happens at.
        self.input_watermark = 0
        self.output_watermark = 0
        self.now = 0

    # -- elements -------------------------------------------------------------------------------
    def process_bundle(self, elements: Iterable[Tuple[bytes, Any, Any, int, tuple]],
                       input_watermark: int, output_watermark: int,
                       now: int = 0) -> Tuple[List[WindowedValue], int]:
        """Add one bundle of ``(encoded key, key, value, timestamp, windows)`` elements.

        Returns the panes it fired and the number of (element, window) pairs
        dropped because the window had expired.
        """
        self.input_watermark, self.output_watermark, self.now = (input_watermark,
                                                                  output_watermark, now)
        horizon = input_watermark - self.lateness  # expired iff window.end < horizon
        track_times = not self.eow
        groups: Dict[Tuple[bytes, Hashable], list] = {}
        dropped = 0
        for encoded, key, value, timestamp, windows in elements:
            for window in windows:
                if window.end_micros < horizon:
                    dropped += 1
                    continue
                group = groups.get((encoded, window))
                if group is None:
                    groups[(encoded, window)] = group = [key, [], []]
                group[1].append(value)
                if track_times:
                    group[2].append(timestamp)
        self.dropped_late += dropped
        if self.merging and groups:
            groups = self._merge_windows(groups)
        out: List[WindowedValue] = []
        backend, aggregation = self.backend, self.aggregation
        fast = self._open if self.fast_default else ()
        for group_key, (key, values, timestamps) in groups.items():
            if group_key in fast and input_watermark < group_key[1].end_micros:
                # The default trigger cannot fire before the end of the window, and its timer
                # is set once the window exists: only the values (and hold) change.
                aggregation.add(backend, group_key[0], group_key[1], values)
                if track_times:
                    self._add_hold(group_key[0], group_key[1], timestamps)
                continue
            self._add_to_window(group_key[0], key, group_key[1], values, timestamps, out)
        return out, dropped

    def _add_to_window(self, encoded: bytes, key: Any, window: Any, values: List[Any],
                       timestamps: List[int], out: List[WindowedValue]) -> None:
        backend = self.backend
        pane = backend.get_value(PANE, encoded, window)
        if pane is None:
            pane = [key, 0, 0, False, False]
            self._set_gc_timer(encoded, window)
            if self.fast_default:
                self._open.add((encoded, window))
        elif pane[_FINISHED]:
            self.dropped_closed += len(values)
            return
        self._add_hold(encoded, window, timestamps)
        self.aggregation.add(backend, encoded, window, values)
        pane[_PENDING] = True
        ctx = TriggerContext(backend, self.timers, encoded, window, self.input_watermark,
                             self.now)
        trigger = self.trigger
        trigger.on_element(ctx, len(values))
        if not self.defer_firing and trigger.should_fire(ctx):
            finished = trigger.on_fire(ctx)
            out.append(self._output(encoded, window, pane, finished, self.output_watermark,
                                    False))
        backend.put_value(PANE, encoded, window, pane)

    def fire_deferred(self) -> List[WindowedValue]:
        """Evaluate the trigger once for every window that got elements (``defer_firing``).

        The evaluation happens at the watermarks of the last bundle, as if all the
        elements had come in that one bundle.
        """
        out: List[WindowedValue] = []
        if self.trigger.is_default():
            return out  # it cannot fire before the end of the window
        backend, trigger = self.backend, self.trigger
        for encoded in list(backend.keys()):
            for window in backend.namespaces(encoded):
                pane = backend.get_value(PANE, encoded, window)
                if pane is None or pane[_FINISHED] or not pane[_PENDING]:
                    continue
                ctx = TriggerContext(backend, self.timers, encoded, window,
                                     self.input_watermark, self.now)
                if trigger.should_fire(ctx):
                    finished = trigger.on_fire(ctx)
                    out.append(self._output(encoded, window, pane, finished,
                                            self.output_watermark, False))
                    backend.put_value(PANE, encoded, window, pane)
        return out

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
                if self.fast_default and pane is not None and not pane[_FINISHED]:
                    self._open.add((encoded, window))
                hold = self.backend.get_value(HOLD, encoded, window)
                if hold is not None:
                    self._holds[(encoded, window)] = hold[1]
                    self._hold_heap.append((hold[1], next(self._sequence), encoded, window))
        heapq.heapify(self._hold_heap)

    # -- panes ----------------------------------------------------------------------------------
    def _output(self, encoded: bytes, window: Any, pane: list, finished: bool,
                output_watermark: int, maybe_on_time: bool) -> WindowedValue:
        """Emit the window's pane (Beam's pane bookkeeping) and update its state."""
        backend = self.backend
        index = pane[_INDEX]
        pane[_INDEX] = index + 1
        if output_watermark <= window.max_timestamp_micros:
            timing, nonspeculative = _EARLY, -1
            if pane[_NONSPECULATIVE]:
                # A non-speculative pane already fired, yet the output watermark (held back by
                # other windows) is not past the end: Beam's Python driver logs a warning and
                # calls this pane EARLY; as Beam's model (and Java runners) say, every pane
                # after the on-time one is LATE.
                timing, nonspeculative = _LATE, pane[_NONSPECULATIVE]
                pane[_NONSPECULATIVE] += 1
        else:
            nonspeculative = pane[_NONSPECULATIVE]
            pane[_NONSPECULATIVE] += 1
            timing = _ON_TIME if maybe_on_time and nonspeculative == 0 else _LATE
        is_last = finished or (self.only_firing and timing == _ON_TIME)
        info = PaneInfo(index == 0, is_last, timing, index, nonspeculative)
        value = self.aggregation.extract(backend, encoded, window)
        if finished or self.discarding:
            self.aggregation.clear(backend, encoded, window)
        pane[_PENDING] = False
        hold = backend.get_value(HOLD, encoded, window)
        if hold is None:
            timestamp = window.max_timestamp_micros
        else:
            timestamp = hold[0]
            # Before the end of the window a trigger with an on-time pane keeps the hold for
            # it (Beam's driver does); otherwise the pane takes the hold with it.
            if finished or not (output_watermark < window.end_micros and self.has_ontime_pane):
                self._clear_hold(encoded, window)
        if finished:
            pane[_FINISHED] = True
            self._open.discard((encoded, window))
            self._clear_trigger(encoded, window)
        return WindowedValue.of((pane[_KEY], value), timestamp, (window,), info)

    def _clear_trigger(self, encoded: bytes, window: Any) -> None:
        backend, timers = self.backend, self.timers
        for cell, _ in self.trigger_cells:
            backend.clear(cell, encoded, window)
        for tag in self.trigger_timer_tags:
            timers.delete(encoded, window, TRIGGER_TIMERS, tag)

    # -- timers ---------------------------------------------------------------------------------
    def _gc_time(self, window: Any) -> int:
        # Expired once the watermark is past end + lateness; timers fire at fire_at <= watermark.
        return min(window.end_micros + self.lateness + 1, MAX_MICROS)

    def _set_gc_timer(self, encoded: bytes, window: Any) -> None:
        self.timers.set(Timer(encoded, window, GC_TIMERS, "", EVENT_TIME, self._gc_time(window),
                              MAX_MICROS))

    def on_watermark(self, input_watermark: int, now: int = 0) -> List[WindowedValue]:
        """Fire the event-time timers due at ``input_watermark``: on-time panes and GC."""
        self.input_watermark, self.now = input_watermark, now
        out: List[WindowedValue] = []
        pop = self.timers.pop_due
        while True:
            timer = pop(EVENT_TIME, input_watermark)
            if timer is None:
                break
            if timer.family == GC_TIMERS:
                self._collect(timer.key, timer.namespace, timer.fire_at, out)
            elif timer.family == TRIGGER_TIMERS:
                self._on_trigger_timer(timer, timer.fire_at, EVENT_TIME, timer.fire_at, True,
                                       out)
        return out

    def on_processing_time(self, now: int, input_watermark: int,
                           output_watermark: int) -> List[WindowedValue]:
        """Fire the processing-time trigger timers due at ``now``."""
        self.input_watermark, self.output_watermark, self.now = (input_watermark,
                                                                  output_watermark, now)
        out: List[WindowedValue] = []
        pop = self.timers.pop_due
        while True:
            timer = pop(PROCESSING_TIME, now)
            if timer is None:
                break
            if timer.family == TRIGGER_TIMERS:
                self._on_trigger_timer(timer, input_watermark, PROCESSING_TIME,
                                       output_watermark, False, out)
        return out

    def next_processing_time(self) -> Optional[int]:
        return self.timers.next_time(PROCESSING_TIME)

    def _on_trigger_timer(self, timer: Timer, watermark: int, domain: str,
                          output_watermark: int, maybe_on_time: bool,
                          out: List[WindowedValue]) -> None:
        encoded, window = timer.key, timer.namespace
        pane = self.backend.get_value(PANE, encoded, window)
        if pane is None or pane[_FINISHED]:
            return
        ctx = TriggerContext(self.backend, self.timers, encoded, window, watermark, self.now,
                             domain)
        if self.trigger.should_fire(ctx):
            finished = self.trigger.on_fire(ctx)
            out.append(self._output(encoded, window, pane, finished, output_watermark,
                                    maybe_on_time))
            self.backend.put_value(PANE, encoded, window, pane)

    def _collect(self, encoded: bytes, window: Any, gc_time: int,
                 out: List[WindowedValue]) -> None:
        """Garbage-collect an expired window, first firing what it has not emitted yet."""
        pane = self.backend.get_value(PANE, encoded, window)
        if pane is not None and pane[_PENDING] and not pane[_FINISHED]:
            out.append(self._output(encoded, window, pane, True, gc_time, self.lateness == 0))
        self._forget(encoded, window)

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
            pane = [panes[0][_KEY], 0, 0, False, False]
        pane[_FINISHED] = any(p[_FINISHED] for p in panes)
        pane[_PENDING] = any(p[_PENDING] for p in panes)
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
        if not pane[_FINISHED]:
            self.trigger.on_merge(TriggerContext(backend, self.timers, encoded, target,
                                                 self.input_watermark, self.now))
