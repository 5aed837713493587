"""CombinePerKey's fast path: one accumulator per key and window in a dict, fired by window end.

For the common windowing (the default trigger, windows that never merge, output
timestamps at the end of the window) a
:class:`~headrace.runners.common.grouping.TriggeredGrouping` spends its time on
per-element bookkeeping it does not need: state cells, a timer per key and window,
a hold per key and window. :class:`WindowedCombineTable` keeps, per window, a dict
from key to ``[key, accumulator, panes, non-speculative panes, pending, timer set,
holding]`` and fires every key of a window when the watermark passes its end (a
heap of window ends). What it emits is exactly what the general path emits for that
windowing: the same panes (timing, indexes, first/last), timestamps, output
watermark holds, late-data dropping and garbage collection; the general path stays
the reference (see its module docstring for the semantics).
"""
from __future__ import annotations

import heapq
import itertools
import pickle
from typing import Any, Callable, Dict, List, Optional, Tuple

from headrace.runners.common.batch_combining import (
    BatchCombiner,
    bucket_by_windows,
    plain_pairs,
)
from headrace.runners.common.triggers import compile_trigger
from headrace.runners.operators.batch import Batch, ColumnBatch, as_columns
from headrace.runners.state.base.key_groups import key_group_for
from headrace.runners.state.base.pickling import dumps
from headrace.sdk.coders import encode_key
from headrace.sdk.timestamp import MAX_MICROS
from headrace.sdk.trigger import AccumulationMode
from headrace.sdk.window import TimestampCombiner
from headrace.sdk.windowed_value import PaneInfo, PaneInfoTiming, WindowedValue
from headrace.sdk.windowing import Windowing

_EARLY, _ON_TIME, _LATE = PaneInfoTiming.EARLY, PaneInfoTiming.ON_TIME, PaneInfoTiming.LATE
# Positions in a key's state.
_KEY, _ACC, _INDEX, _NONSPEC, _PENDING, _TIMER, _HELD = range(7)


def supports(windowing: Windowing) -> bool:
    """Whether :class:`WindowedCombineTable` runs ``windowing`` exactly as the general path."""
    return (compile_trigger(windowing.trigger).is_default()
            and not windowing.window_fn.is_merging()
            and windowing.timestamp_combiner == TimestampCombiner.OUTPUT_AT_EOW)


class WindowedCombineTable(BatchCombiner):
    """Accumulators per window and key, fired when the watermark passes the window's end.

    ``args`` and ``kwargs`` are the CombineFn's extra arguments; ``split(element)``
    returns its ``(key, value)`` or raises naming the transform. Panes come out as
    a :class:`ColumnBatch`.

    >>> from headrace.sdk.combinefn import CombineFn
    >>> from headrace.sdk.window import FixedWindows, IntervalWindow
    >>> from headrace.runners.operators.batch import ColumnBatch
    >>> total = CombineFn.maybe_from_callable(sum)
    >>> table = WindowedCombineTable(Windowing(FixedWindows(10)), total, (), {}, tuple)
    >>> out, dropped = table.process(
    ...     ColumnBatch([("k", 1), ("k", 2)], 3_000_000, (IntervalWindow(0, 10),)), 0, 0)
    >>> len(out), dropped
    (0, 0)
    >>> [(wv.value, wv.pane_info.timing) for wv in table.on_watermark(10_000_000)]
    [(('k', 3), 1)]
    """

    def __init__(self, windowing: Windowing, combine_fn: Any, args: tuple, kwargs: dict,
                 split: Callable[[Any], tuple]) -> None:
        super().__init__(combine_fn, args, kwargs, split)
        self.lateness = windowing.allowed_lateness_micros
        self.discarding = windowing.accumulation_mode == AccumulationMode.DISCARDING
        self.only_firing = windowing.is_default()
        self.defer_firing = False
        self.dropped_closed = 0  # the default trigger never finishes a window early
        self.tables: Dict[Any, Dict[Any, list]] = {}
        self._due: List[Tuple[int, int, Any]] = []  # (end, seq, window) with timers set
        self._due_windows: set = set()
        self._gc: List[Tuple[int, int, Any]] = []  # (end + lateness + 1, seq, window)
        self._held: Dict[Any, int] = {}  # window -> keys holding the watermark
        self._hold_heap: List[Tuple[int, int, Any]] = []
        self._sequence = itertools.count()
        self._panes: Dict[tuple, PaneInfo] = {}

    # -- elements -------------------------------------------------------------------------------
    def process(self, batch: Batch, input_watermark: int, output_watermark: int,
                partial: bool = False) -> Tuple[ColumnBatch, int]:
        """Add a batch; returns the panes it fired (late data) and the elements dropped.

        With ``partial``, the batch holds partial accumulators (see ``PartialCombiner``).
        """
        if self.reduce is not None and not partial:
            batch = self._add_in_place(batch, input_watermark, output_watermark)
        by_window, dropped = self.group_by_window(batch, input_watermark - self.lateness,
                                                  partial)
        out = _Panes()
        for window, (groups, owned) in by_window.items():
            self._add(window, groups, input_watermark, output_watermark, out, owned, partial)
        return out.batch(), dropped

    def _add_in_place(self, batch: Batch, input_watermark: int,
                      output_watermark: int) -> Batch:
        """Add the values of windows that cannot fire yet straight into their buffers.

        The common case of a wrapped callable (e.g. ``sum``) on time: one pass per
        element, no grouping. Before the end of a window (``input_watermark < end``)
        every key already in it is pending, holds the watermark and has its timer set,
        so only new keys need that bookkeeping. Returns the elements left for
        :meth:`_add` (other windows, several windows, or not plain pairs).
        """
        columns = as_columns(batch)
        if columns.shared_windows:
            buckets = [(columns.windows, columns.values)]
        else:
            buckets = bucket_by_windows(columns.values, columns.windows)
        rest: List[Any] = []
        rest_windows: List[tuple] = []
        for windows, values in buckets:
            if (len(windows) == 1 and input_watermark < windows[0].end_micros
                    and windows[0].end_micros - 1 >= output_watermark and plain_pairs(values)):
                self._buffer(windows[0], values)
            else:
                rest.extend(values)
                rest_windows.extend([windows] * len(values))
        return ColumnBatch(rest, 0, rest_windows)  # the timestamps do not matter (end of window)

    def _buffer(self, window: Any, pairs: List[Tuple[Any, Any]]) -> None:
        table = self.tables.get(window)
        if table is None:
            table = self.tables[window] = {}
            heapq.heappush(self._gc, (min(window.end_micros + self.lateness + 1, MAX_MICROS),
                                      next(self._sequence), window))
        get, reduce, limit = table.get, self.reduce, self.buffer_limit
        new = 0
        for key, value in pairs:
            state = get(key)
            if state is None:
                table[key] = [key, [value], 0, 0, True, True, True]
                new += 1
            else:
                buffer = state[_ACC]
                buffer.append(value)
                if len(buffer) > limit:
                    buffer[:] = [reduce(buffer)]
        if new:
            self._hold(window, new)
            if window not in self._due_windows:
                self._due_windows.add(window)
                heapq.heappush(self._due, (window.end_micros, next(self._sequence), window))

    def _add(self, window: Any, groups: Dict[Any, list], input_watermark: int,
             output_watermark: int, out: "_Panes", owns_values: bool, partial: bool) -> None:
        """Add each key's values to its accumulator in ``window``; ``owns_values``: the
        value lists are not shared with another window (a buffer may take them over)."""
        table = self.tables.get(window)
        if table is None:
            table = self.tables[window] = {}
            heapq.heappush(self._gc, (min(window.end_micros + self.lateness + 1, MAX_MICROS),
                                      next(self._sequence), window))
        accumulate, reduce, limit = self.accumulate, self.reduce, self.buffer_limit
        inline = reduce is not None
        end = window.end_micros
        holds = window.end_micros - 1 >= output_watermark
        immediate = input_watermark >= end and not self.defer_firing
        new_holds = 0
        set_timer = False
        for code, (key, values) in groups.items():
            state = table.get(code)
            if state is None:
                state = table[code] = [key, None, 0, 0, False, False, False]
            accumulator = state[_ACC]
            if inline:
                # CallableWrapperCombineFn.add_inputs, inlined: the accumulator is a buffer
                # of inputs, reduced by the function once it is longer than its limit.
                if partial:  # the partials are buffers too: concatenate them
                    if accumulator is None:
                        state[_ACC] = accumulator = []
                    for _, part in values:
                        accumulator.extend(part)
                elif accumulator is None:
                    state[_ACC] = accumulator = values if owns_values else list(values)
                else:
                    accumulator.extend(values)
                if len(accumulator) > limit:
                    accumulator[:] = [reduce(accumulator)]
            else:
                state[_ACC] = accumulate(accumulator, values, partial)
            state[_PENDING] = True
            if holds and not state[_HELD]:
                state[_HELD] = True
                if immediate:
                    self._hold(window, 1)
                else:
                    new_holds += 1
            if immediate:
                state[_TIMER] = False
                if self._output(window, state, False, output_watermark, False, out):
                    self._release(window)
            elif not state[_TIMER]:
                state[_TIMER] = set_timer = True
        if new_holds:
            self._hold(window, new_holds)
        if set_timer and window not in self._due_windows:
            self._due_windows.add(window)
            heapq.heappush(self._due, (end, next(self._sequence), window))

    # -- holds ----------------------------------------------------------------------------------
    def _hold(self, window: Any, count: int) -> None:
        held = self._held.get(window, 0)
        self._held[window] = held + count
        if not held:
            heapq.heappush(self._hold_heap, (window.end_micros - 1, next(self._sequence), window))

    def _release(self, window: Any, count: int = 1) -> None:
        if not count:
            return
        left = self._held.get(window, 0) - count
        if left > 0:
            self._held[window] = left
        else:
            self._held.pop(window, None)

    def output_watermark_for(self, input_watermark: int) -> int:
        """The input watermark, held 1µs before the end of the earliest window still held."""
        heap, held = self._hold_heap, self._held
        while heap and heap[0][2] not in held:
            heapq.heappop(heap)
        return min(input_watermark, heap[0][0] - 1) if heap else input_watermark

    # -- panes ----------------------------------------------------------------------------------
    def _output(self, window: Any, state: list, finished: bool, output_watermark: int,
                maybe_on_time: bool, out: "_Panes") -> bool:
        """As ``TriggeredGrouping._output`` for the default trigger and end-of-window times.

        Returns whether the key released its hold on the window (for the caller to count).
        """
        index = state[_INDEX]
        state[_INDEX] = index + 1
        max_timestamp = window.end_micros - 1
        if output_watermark <= max_timestamp:
            timing, nonspeculative = _EARLY, -1
            if state[_NONSPEC]:
                timing, nonspeculative = _LATE, state[_NONSPEC]
                state[_NONSPEC] += 1
        else:
            nonspeculative = state[_NONSPEC]
            state[_NONSPEC] += 1
            timing = _ON_TIME if maybe_on_time and nonspeculative == 0 else _LATE
        is_last = finished or (self.only_firing and timing == _ON_TIME)
        info = self._pane(index == 0, is_last, timing, index, nonspeculative)
        accumulator = state[_ACC]
        if accumulator is None:  # an empty pane after a discarding one
            accumulator = self.create()
        reduce = self.reduce
        if reduce is None:
            value = self.extract(accumulator)
        else:  # CallableWrapperCombineFn's compact, then extract_output
            value = reduce([reduce(accumulator)] if len(accumulator) > 1 else accumulator)
        if finished or self.discarding:
            state[_ACC] = None
        state[_PENDING] = False
        out.add((state[_KEY], value), max_timestamp, window, info)
        if state[_HELD] and (finished or output_watermark >= window.end_micros):
            state[_HELD] = False
            return True
        return False

    def _pane(self, *fields: Any) -> PaneInfo:
        """The PaneInfo with ``fields`` (shared: panes are compared, never changed)."""
        info = self._panes.get(fields)
        if info is None:
            info = self._panes[fields] = PaneInfo(*fields)
        return info

    def _fire_on_time(self, window: Any, out: "_Panes") -> None:
        """The window's end timer fired: each key whose timer is set emits a pane.

        This is :meth:`_output` with the output watermark at the end of the window
        (never early, possibly on time), inlined: it runs once per key and window.
        """
        table = self.tables.get(window)
        if not table:
            return
        reduce, extract, create = self.reduce, self.extract, self.create
        discarding, only_firing = self.discarding, self.only_firing
        first = self._pane(True, only_firing, _ON_TIME, 0, 0)
        values: List[Any] = []
        panes: List[PaneInfo] = []
        released = 0
        for state in table.values():
            if not state[_TIMER]:
                continue
            state[_TIMER] = False
            index, nonspeculative = state[_INDEX], state[_NONSPEC]
            state[_INDEX], state[_NONSPEC] = index + 1, nonspeculative + 1
            if index == 0 and nonspeculative == 0:
                panes.append(first)
            else:
                timing = _ON_TIME if nonspeculative == 0 else _LATE
                panes.append(self._pane(index == 0, only_firing and timing == _ON_TIME, timing,
                                        index, nonspeculative))
            accumulator = state[_ACC]
            if accumulator is None:
                accumulator = create()
            if reduce is None:
                values.append((state[_KEY], extract(accumulator)))
            else:
                values.append((state[_KEY], reduce([reduce(accumulator)]
                                                   if len(accumulator) > 1 else accumulator)))
            if discarding:
                state[_ACC] = None
            state[_PENDING] = False
            if state[_HELD]:
                state[_HELD] = False
                released += 1
        self._release(window, released)
        out.extend(values, window.end_micros - 1, window, panes)

    # -- checkpoints ----------------------------------------------------------------------------
    def snapshot_tables(self) -> bytes:
        """Every window's table, pickled (the states are lists changed in place); the
        timers, holds and expiry heaps follow from them."""
        return dumps(self.tables)

    def restore_tables(self, snapshots: List[bytes], key_groups: range,
                       max_parallelism: int) -> None:
        """Add the keys of ``key_groups`` from :meth:`snapshot_tables` of any subtasks, and
        re-derive the end-of-window timers, holds and expiries (before any element)."""
        for blob in snapshots:
            for window, table in pickle.loads(blob).items():
                for code, state in table.items():
                    if key_group_for(encode_key(state[_KEY]), max_parallelism) in key_groups:
                        self.tables.setdefault(window, {})[code] = state
        for window, table in self.tables.items():
            heapq.heappush(self._gc, (min(window.end_micros + self.lateness + 1, MAX_MICROS),
                                      next(self._sequence), window))
            if any(state[_TIMER] for state in table.values()):
                self._due_windows.add(window)
                heapq.heappush(self._due, (window.end_micros, next(self._sequence), window))
            held = sum(1 for state in table.values() if state[_HELD])
            if held:
                self._hold(window, held)

    # -- watermarks -----------------------------------------------------------------------------
    def fire_deferred(self) -> List[WindowedValue]:
        """The default trigger cannot fire before the watermark: nothing to evaluate."""
        return []

    def on_watermark(self, input_watermark: int, now: int = 0) -> ColumnBatch:
        """Fire the windows whose end the watermark passed (on time), then collect expired ones."""
        out = _Panes()
        due, gc = self._due, self._gc
        while True:
            next_due = due[0][0] if due else MAX_MICROS + 1
            next_gc = gc[0][0] if gc else MAX_MICROS + 1
            if min(next_due, next_gc) > input_watermark:
                return out.batch()
            if next_due <= next_gc:
                _, _, window = heapq.heappop(due)
                self._due_windows.discard(window)
                self._fire_on_time(window, out)
            else:
                gc_time, _, window = heapq.heappop(gc)
                table = self.tables.pop(window, {})
                on_time = self.lateness == 0
                for state in table.values():
                    if state[_PENDING]:
                        self._output(window, state, True, gc_time, on_time, out)
                self._held.pop(window, None)

    def on_processing_time(self, now: int, input_watermark: int,
                           output_watermark: int) -> List[WindowedValue]:
        return []

    def next_processing_time(self) -> Optional[int]:
        return None


class _Panes:
    """Fired panes collected in columns; a window's tuple is built once per window."""

    __slots__ = ("values", "timestamps", "windows", "panes", "_window", "_windows")

    def __init__(self) -> None:
        self.values: List[Any] = []
        self.timestamps: List[int] = []
        self.windows: List[tuple] = []
        self.panes: List[PaneInfo] = []
        self._window: Any = None
        self._windows: tuple = ()

    def add(self, value: Any, timestamp: int, window: Any, pane: PaneInfo) -> None:
        if window is not self._window:
            self._window, self._windows = window, (window,)
        self.values.append(value)
        self.timestamps.append(timestamp)
        self.windows.append(self._windows)
        self.panes.append(pane)

    def extend(self, values: List[Any], timestamp: int, window: Any,
               panes: List[PaneInfo]) -> None:
        """Panes of one window, all at ``timestamp``."""
        self.values.extend(values)
        self.timestamps.extend([timestamp] * len(values))
        self.windows.extend([(window,)] * len(values))
        self.panes.extend(panes)

    def batch(self) -> ColumnBatch:
        return ColumnBatch(self.values, self.timestamps, self.windows, self.panes)
