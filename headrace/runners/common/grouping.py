"""Grouping per key and window, fired by triggers: what GroupByKey and CombinePerKey run.

:class:`TriggeredGrouping` is runner-agnostic: it is handed bundles of
elements, watermarks and processing times, and returns the panes to emit.
Everything it knows about a key's window lives in the ``KeyedStateBackend``
and the ``TimerService``, laid out by its base class
:class:`~headrace.runners.common.grouping_state.GroupingState` (cells, timers, holds,
merging), and its values are kept by an
:class:`~headrace.runners.common.aggregations.Aggregation`. This module owns the firing
loop: adding elements, asking the trigger, emitting panes, and firing timers.

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
"""
from __future__ import annotations

from typing import Any, Dict, Hashable, Iterable, List, Optional, Tuple

from headrace.runners.common.aggregations import (
    Aggregation,
    BufferAggregation,
    CombiningAggregation,
)
from headrace.runners.common.grouping_state import (
    FINISHED,
    GC_TIMERS,
    HOLD,
    INDEX,
    KEY,
    NONSPECULATIVE,
    PANE,
    PENDING,
    GroupingState,
)
from headrace.runners.common.triggers import TRIGGER_TIMERS, TriggerContext
from headrace.runners.state.base import EVENT_TIME, PROCESSING_TIME, Timer
from headrace.sdk.trigger import AccumulationMode
from headrace.sdk.windowed_value import PaneInfo, PaneInfoTiming, WindowedValue
from headrace.sdk.windowing import Windowing

__all__ = [
    "GC_TIMERS",
    "HOLD",
    "PANE",
    "Aggregation",
    "BufferAggregation",
    "CombiningAggregation",
    "TriggeredGrouping",
]

_EARLY, _ON_TIME, _LATE = PaneInfoTiming.EARLY, PaneInfoTiming.ON_TIME, PaneInfoTiming.LATE


class TriggeredGrouping(GroupingState):
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
        super().__init__(windowing, aggregation, backend, timers)
        self.has_ontime_pane = self.trigger.has_ontime_pane()
        self.discarding = windowing.accumulation_mode == AccumulationMode.DISCARDING
        # Beam's batch driver emits the single pane of default windowing as the last one.
        self.only_firing = windowing.is_default()
        #: Elements dropped because a window was already expired / finished (for metrics).
        self.dropped_late = 0
        self.dropped_closed = 0
        #: Batch execution: ask the trigger only once all input is in (``fire_deferred``), as
        #: Beam's batch runners do by processing each key's whole input as one bundle.
        self.defer_firing = False

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
        elif pane[FINISHED]:
            self.dropped_closed += len(values)
            return
        self._add_hold(encoded, window, timestamps)
        self.aggregation.add(backend, encoded, window, values)
        pane[PENDING] = True
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
                if pane is None or pane[FINISHED] or not pane[PENDING]:
                    continue
                ctx = TriggerContext(backend, self.timers, encoded, window,
                                     self.input_watermark, self.now)
                if trigger.should_fire(ctx):
                    finished = trigger.on_fire(ctx)
                    out.append(self._output(encoded, window, pane, finished,
                                            self.output_watermark, False))
                    backend.put_value(PANE, encoded, window, pane)
        return out

    # -- panes ----------------------------------------------------------------------------------
    def _output(self, encoded: bytes, window: Any, pane: list, finished: bool,
                output_watermark: int, maybe_on_time: bool) -> WindowedValue:
        """Emit the window's pane (Beam's pane bookkeeping) and update its state."""
        backend = self.backend
        index = pane[INDEX]
        pane[INDEX] = index + 1
        if output_watermark <= window.max_timestamp_micros:
            timing, nonspeculative = _EARLY, -1
            if pane[NONSPECULATIVE]:
                # A non-speculative pane already fired, yet the output watermark (held back by
                # other windows) is not past the end: Beam's Python driver logs a warning and
                # calls this pane EARLY; as Beam's model (and Java runners) say, every pane
                # after the on-time one is LATE.
                timing, nonspeculative = _LATE, pane[NONSPECULATIVE]
                pane[NONSPECULATIVE] += 1
        else:
            nonspeculative = pane[NONSPECULATIVE]
            pane[NONSPECULATIVE] += 1
            timing = _ON_TIME if maybe_on_time and nonspeculative == 0 else _LATE
        is_last = finished or (self.only_firing and timing == _ON_TIME)
        info = PaneInfo(index == 0, is_last, timing, index, nonspeculative)
        value = self.aggregation.extract(backend, encoded, window)
        if finished or self.discarding:
            self.aggregation.clear(backend, encoded, window)
        pane[PENDING] = False
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
            pane[FINISHED] = True
            self._open.discard((encoded, window))
            self._clear_trigger(encoded, window)
        return WindowedValue.of((pane[KEY], value), timestamp, (window,), info)

    # -- timers ---------------------------------------------------------------------------------
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
        if pane is None or pane[FINISHED]:
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
        if pane is not None and pane[PENDING] and not pane[FINISHED]:
            out.append(self._output(encoded, window, pane, True, gc_time, self.lateness == 0))
        self._forget(encoded, window)
