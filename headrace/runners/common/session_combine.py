"""CombinePerKey over session windows with the default trigger, without the general driver.

:class:`SessionCombiner` keeps, per key, its active sessions sorted by start
(they never overlap: every bundle merges what overlaps), each with one
accumulator, its pane counters, its watermark hold and whether its end-of-window
timer is pending; one heap orders the end-of-window timers of every session
(and the expiry of those that fired before their allowed lateness ran out). A
new element's window is merged into the sessions it overlaps by a sweep over
its neighbours only, not by re-merging every session of the key.

It stands in for :class:`~headrace.runners.common.grouping.TriggeredGrouping`
(same methods, same results) when :func:`supports` says so: the default
trigger, :class:`~headrace.sdk.window.Sessions` and end-of-window timestamps,
with any allowed lateness and accumulation mode. Everything observable is the
general path's, step for step: the merges and their order (so a CombineFn sees
the same ``merge_accumulators`` and ``add_inputs`` calls), pane info (a merge
result that was not an active window restarts its pane index), timestamps,
holds and so the output watermark, late drops, and the order of panes fired
by one watermark (end-of-window timers keep the general path's order). Expiry
needs no timer of its own while the end-of-window timer is pending: that timer
fires first, and a session whose pane is out has nothing left to emit at expiry.
``tests/streaming/test_session_combine.py`` checks all of it against the
general path on random inputs.

>>> from headrace.sdk.combinefn import CombineFn
>>> from headrace.sdk.window import Sessions
>>> from headrace.sdk.windowing import Windowing
>>> combiner = SessionCombiner(Windowing(Sessions(5)), CombineFn.maybe_from_callable(sum))
>>> windows = lambda t: Sessions(5).assign_micros(t * 1_000_000, None, None)
>>> combiner.process_bundle([(b"k", "k", 1, 0, windows(0)), (b"k", "k", 2, 0, windows(3)),
...                          (b"k", "k", 4, 0, windows(20))], 0, 0)
([], 0)
>>> [(wv.value, wv.windows) for wv in combiner.on_watermark(30_000_000)]
[(('k', 3), (IntervalWindow(0, 8),)), (('k', 4), (IntervalWindow(20, 25),))]
"""
from __future__ import annotations

import heapq
import itertools
import pickle
from bisect import bisect_right, insort
from operator import attrgetter, itemgetter
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from headrace.runners.common.triggers import compile_trigger
from headrace.runners.state.base.key_groups import key_group_for
from headrace.runners.state.base.pickling import dumps
from headrace.sdk.timestamp import MAX_MICROS
from headrace.sdk.trigger import AccumulationMode
from headrace.sdk.window import IntervalWindow, Sessions, TimestampCombiner
from headrace.sdk.windowed_value import PaneInfo, PaneInfoTiming, WindowedValue
from headrace.sdk.windowing import Windowing

_EARLY, _ON_TIME, _LATE = PaneInfoTiming.EARLY, PaneInfoTiming.ON_TIME, PaneInfoTiming.LATE
_EOW, _GC = 0, 1  # timer kinds
_START = attrgetter("start")
_WINDOW_START = itemgetter(1)


def supports(windowing: Windowing) -> bool:
    """Whether :class:`SessionCombiner` runs ``windowing`` exactly as the general path does.

    >>> from headrace.sdk.window import FixedWindows
    >>> supports(Windowing(Sessions(5))), supports(Windowing(FixedWindows(5)))
    (True, False)
    """
    return (type(windowing.window_fn) is Sessions
            and compile_trigger(windowing.trigger).is_default()
            and windowing.timestamp_combiner == TimestampCombiner.OUTPUT_AT_EOW)


class _Session:
    """One active session window of one key: what the general path keeps in its cells."""

    __slots__ = ("window", "start", "end", "key", "encoded", "accumulator", "index",
                 "nonspeculative", "pending", "hold", "earliest", "eow", "expiry_set", "alive")

    def __init__(self, window: IntervalWindow, key: Any, encoded: bytes) -> None:
        self.window = window
        self.start = window.start_micros
        self.end = window.end_micros
        self.key = key
        self.encoded = encoded
        self.accumulator: Any = None  # None: no accumulator, as an absent cell
        self.index = 0  # panes fired
        self.nonspeculative = 0  # non-speculative panes fired
        self.pending = False  # elements since the last pane
        self.hold: Optional[int] = None  # the pending pane's timestamp
        self.earliest = MAX_MICROS  # where the hold keeps the output watermark
        self.eow = False  # the end-of-window timer is set
        self.expiry_set = False  # an expiry timer is queued
        self.alive = True


class SessionCombiner:
    """Session windows of a CombinePerKey, fired at the end of each session (see the module).

    ``args`` and ``kwargs`` are the CombineFn's extra arguments, passed to each of its
    methods. The methods and attributes the grouping operators use are
    :class:`~headrace.runners.common.grouping.TriggeredGrouping`'s.
    """

    def __init__(self, windowing: Windowing, combine_fn: Any, args: tuple = (),
                 kwargs: Optional[Dict[str, Any]] = None) -> None:
        if not supports(windowing):
            raise ValueError(f"SessionCombiner cannot run {windowing!r}")

        def bind(method: Callable[..., Any]) -> Callable[..., Any]:
            if not args and not kwargs:
                return method
            return lambda *positional: method(*positional, *args, **(kwargs or {}))

        self._create = bind(combine_fn.create_accumulator)
        self._add_inputs = bind(combine_fn.add_inputs)
        self._merge_accumulators = bind(combine_fn.merge_accumulators)
        self._compact = bind(combine_fn.compact)
        self._extract = bind(combine_fn.extract_output)
        self.lateness = windowing.allowed_lateness_micros
        self.discarding = windowing.accumulation_mode == AccumulationMode.DISCARDING
        self.defer_firing = False
        self.dropped_late = 0
        self.dropped_closed = 0  # the default trigger never finishes a window early
        self.input_watermark = 0
        self.output_watermark = 0
        # encoded key -> its active sessions, sorted by start (and so by end).
        self._sessions: Dict[bytes, List[_Session]] = {}
        self._timers: List[Tuple[int, int, int, _Session]] = []  # (fire_at, seq, kind, session)
        self._sequence = itertools.count()
        self._holds: List[Tuple[int, int, _Session]] = []  # (earliest, n, session), stale too
        self._hold_sequence = itertools.count()
        self._panes: Dict[Tuple, PaneInfo] = {}

    # -- elements -------------------------------------------------------------------------------
    def process_bundle(self, elements: Iterable[Tuple[bytes, Any, Any, int, tuple]],
                       input_watermark: int, output_watermark: int,
                       now: int = 0) -> Tuple[List[WindowedValue], int]:
        """Add a bundle of ``(encoded key, key, value, timestamp, windows)``; the panes it
        fired (late data) and how many (element, window) pairs were dropped as expired."""
        self.input_watermark, self.output_watermark = input_watermark, output_watermark
        horizon = input_watermark - self.lateness
        # (encoded, start, end) -> [key, window, values], in order of first appearance.
        groups: Dict[Tuple[bytes, int, int], list] = {}
        dropped = 0
        for encoded, key, value, _, windows in elements:
            for window in windows:
                end = window.end_micros
                if end < horizon:
                    dropped += 1
                    continue
                start = window.start_micros
                if end <= start:
                    # Two such windows could share a start, which the sorted sessions assume
                    # they cannot; Sessions never assigns one.
                    raise ValueError(f"{window!r} is empty: session windows must not be")
                group = groups.get((encoded, start, end))
                if group is None:
                    groups[(encoded, start, end)] = [key, window, [value]]
                else:
                    group[2].append(value)
        self.dropped_late += dropped
        if not groups:
            return [], dropped
        by_key: Dict[bytes, Any] = {}
        for group_key in groups:
            windows = by_key.get(group_key[0])
            if windows is None:
                by_key[group_key[0]] = group_key
            elif type(windows) is list:
                windows.append(group_key)
            else:
                by_key[group_key[0]] = [windows, group_key]
        # Group key -> the active session its values go to (None: a new one), and the
        # bounds of the merged window for those merged.
        targets: Dict[Tuple[bytes, int, int], _Session] = {}
        renamed: Dict[Tuple[bytes, int, int], Tuple[bytes, int, int]] = {}
        sessions = self._sessions
        for encoded, windows in by_key.items():
            active = sessions.get(encoded)
            if type(windows) is tuple:  # one window: merges only with its neighbours
                if active is None:
                    continue
                _, start, end = windows
                i = bisect_right(active, start, key=_START) - 1
                if i >= 0:
                    before = active[i]
                    if before.start == start and before.end == end:
                        targets[windows] = before
                        continue
                    if before.end > start:
                        self._merge_key(encoded, [windows], active, targets, renamed)
                        continue
                if i + 1 < len(active) and active[i + 1].start < end:
                    self._merge_key(encoded, [windows], active, targets, renamed)
            else:
                self._merge_key(encoded, windows, active or [], targets, renamed)
        out: List[WindowedValue] = []
        if renamed:
            # The merged windows, each with every value that went into it, in the general
            # path's order: first appearance of the (renamed) window, values in group order.
            merged: Dict[Tuple[bytes, int, int], list] = {}
            for group_key, (key, window, values) in groups.items():
                renamed_to = renamed.get(group_key)
                if renamed_to is not None:
                    group_key, window = renamed_to, None
                target = merged.get(group_key)
                if target is None:
                    merged[group_key] = [key, window, values]
                else:
                    target[2] = target[2] + values
            groups = merged
        add = self._add
        for group_key, (key, window, values) in groups.items():
            add(group_key, targets.get(group_key), key, window, values, out)
        return out, dropped

    def _merge_key(self, encoded: bytes, windows: List[Tuple[bytes, int, int]],
                   active: List[_Session], targets: Dict[Tuple[bytes, int, int], _Session],
                   renamed: Dict[Tuple[bytes, int, int], Tuple[bytes, int, int]]) -> None:
        """Merge the key's new windows with each other and its active sessions, as
        ``Sessions.merge`` over all of them would: a sweep in start order (active sessions
        before new windows on a tie) that groups what overlaps the group so far."""
        if active:
            new = []
            for window in windows:
                i = bisect_right(active, window[1], key=_START) - 1
                if i >= 0 and active[i].start == window[1] and active[i].end == window[2]:
                    targets[window] = active[i]  # no candidate: its own session
                else:
                    new.append(window)
            windows = new
            if not windows:
                return
        elif len(windows) == 1:
            return
        windows.sort(key=_WINDOW_START)  # stable: ties keep first appearance
        n_active, n_new = len(active), len(windows)
        i = j = 0
        group: List[Any] = []  # _Session (active) or group key (new)
        group_end = 0
        merges: List[Tuple[List[Any], int]] = []  # applied after the sweep, which they change
        while True:
            if (j < n_new and i < n_active and active[i].start < windows[j][1]
                    and not (group and active[i].start < group_end)):
                # Sessions that start before the next new window and join no group stay
                # alone, except the last one, which the new window may overlap: skip to it.
                last = bisect_right(active, windows[j][1], key=_START) - 1
                if last > i:
                    if len(group) > 1:
                        merges.append((group, group_end))
                    group, i = [], last
            if j < n_new and (i >= n_active or windows[j][1] < active[i].start):
                candidate: Any = windows[j]
                start, end = candidate[1], candidate[2]
                j += 1
            elif i < n_active and (j < n_new or (group and active[i].start < group_end)):
                candidate = active[i]
                start, end = candidate.start, candidate.end
                i += 1
            else:
                break
            if group and start < group_end:
                group.append(candidate)
                if end > group_end:
                    group_end = end
                continue
            if len(group) > 1:
                merges.append((group, group_end))
            group, group_end = [candidate], end
        if len(group) > 1:
            merges.append((group, group_end))
        for group, group_end in merges:
            self._merge(encoded, group, group_end, targets, renamed)

    def _merge(self, encoded: bytes, group: List[Any], group_end: int,
               targets: Dict[Tuple[bytes, int, int], _Session],
               renamed: Dict[Tuple[bytes, int, int], Tuple[bytes, int, int]]) -> None:
        """One merge of ``group`` (sorted as ``Sessions.merge`` sees it) into one window."""
        first = group[0]
        start = first.start if type(first) is _Session else first[1]
        result = (encoded, start, group_end)
        for window in group:
            # An active session's bounds too: this bundle's values for it go to the result.
            renamed[(encoded, window.start, window.end) if type(window) is _Session
                    else window] = result
        sources = [s for s in group if type(s) is _Session]
        if not sources:
            return  # new windows only: the merged window is created when values are added
        target = next((s for s in sources if s.start == start and s.end == group_end), None)
        target_active = target is not None
        if target is None:
            # As Beam: a merged window that was not active starts its panes over.
            target = _Session(IntervalWindow.from_micros(start, group_end), sources[0].key,
                              encoded)
        targets[result] = target
        pending = any(s.pending for s in sources)
        accumulators = [s.accumulator for s in sources if s.accumulator is not None]
        for source in sources:
            source.accumulator = None
        if accumulators:
            target.accumulator = self._merge_accumulators(accumulators)
        holds = [(s.hold, s.earliest) for s in sources if s.hold is not None]
        for source in sources:
            if source is not target:
                self._forget(source)
        if holds:
            self._put_hold(target, max(h[0] for h in holds), min(h[1] for h in holds))
        target.pending = pending
        if not target_active:
            insort(self._sessions.setdefault(encoded, []), target, key=_START)

    def _add(self, group_key: Tuple[bytes, int, int], session: Optional[_Session], key: Any,
             window: Optional[IntervalWindow], values: List[Any],
             out: List[WindowedValue]) -> None:
        """Add one bundle's values to a (merged) window, as the general path does."""
        end = group_key[2]
        if session is None:
            encoded = group_key[0]
            session = _Session(window if window is not None
                               else IntervalWindow.from_micros(group_key[1], end), key, encoded)
            sessions = self._sessions.get(encoded)
            if sessions is None:
                self._sessions[encoded] = [session]
            elif sessions[-1].start < session.start:
                sessions.append(session)
            else:
                insort(sessions, session, key=_START)
        # The hold: end-of-window timestamps, unless already behind the output watermark.
        max_timestamp = end - 1
        if max_timestamp >= self.output_watermark:
            hold = session.hold
            if hold is None:
                self._put_hold(session, max_timestamp, max_timestamp)
            elif max_timestamp > hold or max_timestamp < session.earliest:
                self._put_hold(session, max(hold, max_timestamp),
                               min(session.earliest, max_timestamp))
        accumulator = session.accumulator
        if accumulator is None:
            accumulator = self._create()
        session.accumulator = self._add_inputs(accumulator, values)
        session.pending = True
        if not session.eow:
            session.eow = True
            heapq.heappush(self._timers, (end, next(self._sequence), _EOW, session))
        if not self.defer_firing and self.input_watermark >= end:
            session.eow = False  # a late bundle fires at once
            out.append(self._output(session, False, self.output_watermark, False))
            self._expire_later(session)

    # -- checkpoints ----------------------------------------------------------------------------
    def snapshot_tables(self) -> bytes:
        """Every key's active sessions, pickled; timers and holds follow from them."""
        return dumps(self._sessions)

    def restore_tables(self, snapshots: List[bytes], key_groups: range,
                       max_parallelism: int) -> None:
        """Add the keys of ``key_groups`` from :meth:`snapshot_tables` of any subtasks, with
        their end-of-window and expiry timers and holds (before any element)."""
        for blob in snapshots:
            for encoded, sessions in pickle.loads(blob).items():
                if key_group_for(encoded, max_parallelism) not in key_groups:
                    continue
                self._sessions[encoded] = sessions
                for session in sessions:
                    if session.eow:
                        heapq.heappush(self._timers, (session.end, next(self._sequence), _EOW,
                                                      session))
                    if session.expiry_set:
                        heapq.heappush(self._timers, (self._expiry(session),
                                                      next(self._sequence), _GC, session))
                    if session.hold is not None:
                        heapq.heappush(self._holds, (session.earliest,
                                                     next(self._hold_sequence), session))

    # -- timers and holds -----------------------------------------------------------------------
    def _expiry(self, session: _Session) -> int:
        return min(session.end + self.lateness + 1, MAX_MICROS)

    def _expire_later(self, session: _Session) -> None:
        """Queue the session's expiry: no end-of-window timer will see to it."""
        if not session.expiry_set:
            session.expiry_set = True
            heapq.heappush(self._timers,
                           (self._expiry(session), next(self._sequence), _GC, session))

    def _put_hold(self, session: _Session, stamp: int, earliest: int) -> None:
        session.hold, session.earliest = stamp, earliest
        heapq.heappush(self._holds, (earliest, next(self._hold_sequence), session))

    def _forget(self, session: _Session) -> None:
        session.alive = False
        session.hold = None
        session.eow = False
        sessions = self._sessions[session.encoded]
        sessions.remove(session)
        if not sessions:
            del self._sessions[session.encoded]

    def watermark_hold(self) -> Optional[int]:
        """The earliest time a pending pane holds the output watermark at, or None."""
        holds = self._holds
        while holds:
            earliest, _, session = holds[0]
            if session.hold is not None and session.earliest == earliest:
                return earliest
            heapq.heappop(holds)
        return None

    def output_watermark_for(self, input_watermark: int) -> int:
        """The output watermark: the input's, held 1µs before the earliest pending pane."""
        hold = self.watermark_hold()
        return input_watermark if hold is None else min(input_watermark, hold - 1)

    def on_watermark(self, input_watermark: int, now: int = 0) -> List[WindowedValue]:
        """Fire the timers due at ``input_watermark``: on-time panes, then expiry."""
        self.input_watermark = input_watermark
        out: List[WindowedValue] = []
        timers, pop, output = self._timers, heapq.heappop, self._output
        while timers and timers[0][0] <= input_watermark:
            fire_at, _, kind, session = pop(timers)
            if not session.alive:
                continue
            if kind == _EOW:
                if session.eow:
                    session.eow = False
                    out.append(output(session, False, fire_at, True))
                    if self._expiry(session) <= input_watermark:
                        self._forget(session)
                    else:
                        self._expire_later(session)
            else:
                if session.pending:  # the end-of-window timer fires first: never so
                    out.append(output(session, True, fire_at, self.lateness == 0))
                self._forget(session)
        return out

    def fire_deferred(self) -> List[WindowedValue]:
        return []  # the default trigger cannot fire before the end of the window

    def on_processing_time(self, now: int, input_watermark: int,
                           output_watermark: int) -> List[WindowedValue]:
        return []

    def next_processing_time(self) -> Optional[int]:
        return None

    # -- panes ----------------------------------------------------------------------------------
    def _output(self, session: _Session, finished: bool, output_watermark: int,
                maybe_on_time: bool) -> WindowedValue:
        """The session's pane, with the general path's pane info, timestamp and holds."""
        index = session.index
        session.index = index + 1
        if output_watermark <= session.end - 1:
            timing, nonspeculative = _EARLY, -1
            if session.nonspeculative:
                timing, nonspeculative = _LATE, session.nonspeculative
                session.nonspeculative += 1
        else:
            nonspeculative = session.nonspeculative
            session.nonspeculative = nonspeculative + 1
            timing = _ON_TIME if maybe_on_time and nonspeculative == 0 else _LATE
        shape = (index == 0, finished, timing, index, nonspeculative)
        info = self._panes.get(shape)
        if info is None:
            info = self._panes[shape] = PaneInfo(*shape)
        accumulator = session.accumulator
        if accumulator is None:
            accumulator = self._create()
        value = self._extract(self._compact(accumulator))
        if finished or self.discarding:
            session.accumulator = None
        session.pending = False
        if session.hold is None:
            timestamp = session.end - 1
        else:
            timestamp = session.hold
            # Before the end of the window the hold stays for the on-time pane.
            if finished or output_watermark >= session.end:
                session.hold = None
        if finished:
            session.eow = False
        return WindowedValue.of((session.key, value), timestamp, (session.window,), info)
