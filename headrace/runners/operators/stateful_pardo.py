"""Running a stateful ``DoFn``: per key and window state, event- and processing-time timers.

Input elements are ``(key, value)`` pairs; ``process`` sees the whole pair,
as in Beam. State lives in a ``KeyedStateBackend`` addressed by
(``user/<state name>``, ``encode_key(key)``, window) and timers in a
``TimerService`` keyed the same way, so an element in several windows
(sliding windows) has separate state in each.

Semantics, matching Beam (measured against Beam's direct runner):

* An event-time timer fires once the input watermark reaches its timestamp
  (``fire_at <= watermark``), a processing-time timer once the clock does;
  due timers fire after each bundle (a timer set in the past fires right
  after the bundle that set it) and when the watermark or clock advances,
  one at a time in timestamp order, so a timer set by a callback fires in
  its place. ``TimestampParam`` in a callback is the firing time; its
  outputs are stamped with the timer's output timestamp (the firing time
  unless ``set(..., output_timestamp=...)`` says otherwise, which also holds
  the output watermark back until the timer fires or is cleared).
* A window's state and timers are deleted once the watermark passes the
  window's end plus the input's allowed lateness, after the timers due by
  then have fired. An event-time timer set beyond that point keeps the
  window alive until it fires (Beam's Python runners fire it, with the state).
  Elements of a window already expired are dropped and counted in the
  ``headrace/dropped_late_elements`` counter, as the grouping operators do.
* Merging windows (sessions): elements keep the window they carry, as on
  Beam's direct runner; after a ``GroupByKey`` those are the merged sessions.
"""
from __future__ import annotations

import heapq
import itertools
import time
import warnings
from typing import Any, Callable, Dict, Hashable, List, Optional, Set, Tuple

from headrace.runners.common.errors import reraise_with_label
from headrace.runners.common.timer_invoker import make_timer_invokers
from headrace.runners.common.user_state import UserStateFactory
from headrace.runners.operators.base import Operator
from headrace.runners.operators.grouping_operators import split_key_value
from headrace.runners.operators.pardo_operator import ParDoOperator
from headrace.runners.operators.stateful_calls import (
    AT_FIRING_TIME,
    UserTimer,
    bind_process,
    bind_timer_callback,
)
from headrace.runners.state.base import (
    EVENT_TIME,
    PROCESSING_TIME,
    Timer,
    TimerService,
    key_group_for,
)
from headrace.runners.state.memory import MemoryStateBackend
from headrace.sdk.coders import decode_key, encode_key
from headrace.sdk.coders.keys import ENCODING_CONSISTENT_KEY_TYPES
from headrace.sdk.metrics import SYSTEM_NAMESPACE, MetricName, metrics_scope
from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS
from headrace.sdk.userstate import TimerSpec, get_dofn_specs, validate_stateful_dofn
from headrace.sdk.windowed_value import WindowedValue
from headrace.sdk.windowing import Windowing

__all__ = ["AT_FIRING_TIME", "DROPPED_LATE", "StatefulParDoOperator", "UserTimer",
           "make_stateful_operator", "split_key_value_for_state"]

DROPPED_LATE = MetricName(SYSTEM_NAMESPACE, "dropped_late_elements")

_DOMAINS = {"WATERMARK": EVENT_TIME, "REAL_TIME": PROCESSING_TIME}
_CACHED_KEY_TYPES = frozenset(ENCODING_CONSISTENT_KEY_TYPES)


class StatefulParDoOperator(ParDoOperator):
    """A ParDo whose DoFn uses state or timers; input 0 carries (key, value) pairs.

    >>> import headrace as beam
    >>> from headrace.sdk.window import GLOBAL_WINDOW
    >>> from headrace.transforms.userstate import CombiningValueStateSpec
    >>> class Count(beam.DoFn):
    ...     N = CombiningValueStateSpec("n", sum)
    ...     def process(self, kv, n=beam.DoFn.StateParam(N)):
    ...         n.add(1)
    >>> p = beam.Pipeline()
    >>> node = (p | beam.Create([("a", 1)]) | beam.ParDo(Count())).producer
    >>> op = make_stateful_operator(node.full_label, node.transform,
    ...                             node.main_inputs[0].windowing, [], [None])
    >>> op.start()
    >>> op.process_batch(0, [WindowedValue(("a", 1), 0, [GLOBAL_WINDOW]),
    ...                      WindowedValue(("a", 2), 0, [GLOBAL_WINDOW])])
    >>> op.states.state(Count.N, encode_key("a"), GLOBAL_WINDOW).read()
    2
    """

    def __init__(self, label: str, transform: Any, input_windowing: Windowing,
                 side_windowings: List[Windowing], output_tags: List[Optional[str]],
                 backend: Any = None, timer_service: Optional[TimerService] = None) -> None:
        super().__init__(label, transform, side_windowings, output_tags, input_windowing)
        # Validate the DoFn as the user built it: unpickling can duplicate a spec object.
        validate_stateful_dofn(getattr(transform, "fn", self.fn), label)
        state_specs, timer_specs = get_dofn_specs(self.fn)
        window_fn = input_windowing.window_fn
        if window_fn.is_merging():
            warnings.warn(
                f"{label!r}: stateful DoFn {type(self.fn).__name__} on merging windows "
                f"({window_fn!r}): as in Beam, state is kept per window an element carries, "
                "which before a GroupByKey is each element's own unmerged window",
                stacklevel=2)
        self.allowed_lateness = int(getattr(input_windowing, "allowed_lateness_micros", 0) or 0)
        self.backend = backend if backend is not None else MemoryStateBackend()
        self.timers = timer_service if timer_service is not None else TimerService()
        self.states = UserStateFactory(self.backend, state_specs, self.now, self._state_written)
        self.timer_specs: Dict[str, TimerSpec] = {spec.name: spec for spec in timer_specs}
        self.timer_invokers = make_timer_invokers(self.fn, label)
        # The calls of process and of each timer callback, bound once (stateful_calls).
        self._call_process = bind_process(self)
        self._timer_calls = {family: bind_timer_callback(self, invoker)
                             for family, invoker in self.timer_invokers.items()}
        self._sequence = itertools.count()
        # window -> {encoded key: key}: the keys and windows that got state objects or timers
        # (every element's, and timers'), for expiry and KeyParam.
        self._live: Dict[Any, Dict[bytes, Any]] = {}
        self._gc_queue: List[Tuple[int, int, Any]] = []
        # (key, window) -> {(timer family, tag)}: so expiry deletes timers without a scan.
        self._timer_index: Dict[Tuple[bytes, Any], Set[Tuple[str, str]]] = {}
        # timer identity -> explicit output timestamp: the holds on the output watermark.
        self._holds: Dict[Tuple, int] = {}
        # TTL cleanup: (expiry, seq, key, window), at most one live entry per key and window.
        self._ttl_queue: List[Tuple[int, int, bytes, Any]] = []
        self._ttl_scheduled: Dict[Tuple[bytes, Any], int] = {}
        self._current: Optional[Tuple[bytes, Any]] = None  # (encoded key, key) being processed
        self._states_set_up = False
        #: The watermark of the last advance, and the one elements are judged late by.
        self._advanced_to = MIN_MICROS
        self._late_horizon: Optional[int] = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        with metrics_scope(self.metrics):
            try:
                self.states.setup()  # the CombineFns of combining states
            except Exception as exc:
                self.close()  # the executor closes only operators that started
                reraise_with_label(exc, self.label)
        self._states_set_up = True

    def close(self) -> None:
        try:
            super().close()
        finally:
            try:
                if self._states_set_up:
                    self._states_set_up = False
                    with metrics_scope(self.metrics):
                        try:
                            self.states.teardown()
                        except Exception as exc:
                            reraise_with_label(exc, self.label)
            finally:
                self.backend.close()

    def now(self) -> int:
        """Processing time, int micros: the runner's clock, or the wall clock without one."""
        if self.clock is not None:
            return self.clock.now()
        return time.time_ns() // 1000

    # -- elements -------------------------------------------------------------------------------
    def _gc_time(self, window: Any) -> int:
        # Expired once the watermark is past end + lateness: the grouping operators' rule.
        return min(window.end_micros + self.allowed_lateness + 1, MAX_MICROS)

    def _process_main(self, batch: List[WindowedValue]) -> None:
        self._ensure_bundle()
        self.outputs = {}
        dropped = 0
        horizon = self.input_watermark if self._late_horizon is None else self._late_horizon
        lateness = self.allowed_lateness + 1
        call, live, sides = self._call_process, self._live, self.sides
        label, fn = self.label, self.fn
        encoded_keys: Dict[Any, bytes] = {}  # keys repeat within a batch
        with metrics_scope(self.metrics):
            try:
                for wv in batch:
                    value = wv.value
                    if type(value) is tuple and len(value) == 2:
                        key = value[0]
                    else:
                        key = split_key_value_for_state(value, label, fn)[0]
                    if type(key) in _CACHED_KEY_TYPES:
                        encoded = encoded_keys.get(key)
                        if encoded is None:
                            encoded = encoded_keys[key] = encode_key(key)
                    else:
                        encoded = encode_key(key)
                    timestamp = wv.timestamp_micros
                    for window in wv.windows:
                        gc_time = window.end_micros + lateness  # as _gc_time
                        if (gc_time if gc_time < MAX_MICROS else MAX_MICROS) <= horizon:
                            dropped += 1  # its state is gone: Beam drops such late data
                            continue
                        keys = live.get(window)
                        if keys is None:
                            keys = self._new_live_window(window)
                        if encoded not in keys:
                            keys[encoded] = key
                        side_values = [side.view_for(side.window_for(window))
                                       for side in sides] if sides else ()
                        results = call(value, timestamp, window, encoded, key, wv.pane_info,
                                       side_values)
                        if results is not None:
                            self._emit_results(results, timestamp, (window,), wv.pane_info)
            except Exception as exc:
                reraise_with_label(exc, self.label)
        if dropped:
            self.metrics.counter(DROPPED_LATE).inc(dropped)
        self._flush_outputs()
        # Beam fires timers between bundles: one set at or before the current time fires now.
        self._fire_due(self.input_watermark, self.now())
        self._collect_garbage(self.input_watermark)

    def _ensure_bundle(self) -> None:
        if not self.in_bundle:
            self._call_bundle_method(self.fn.start_bundle, is_start=True)
            self.in_bundle = True

    # -- timers ---------------------------------------------------------------------------------
    def set_timer(self, timer: Timer, explicit_output: bool = False) -> None:
        """Schedule ``timer`` (replacing a pending one with its identity)."""
        identity = timer.identity
        if self.timers.get(*identity) == timer and (identity in self._holds) == explicit_output:
            # The very timer is pending: setting it again would change nothing (a pending
            # timer keeps its place among timers due at the same time).
            return
        self._holds.pop(identity, None)
        self.timers.set(timer)
        self._timer_index.setdefault((timer.key, timer.namespace), set()).add(
            (timer.family, timer.tag))
        if explicit_output:
            self._holds[identity] = timer.output_timestamp
        self._mark_live(timer.key, timer.namespace)

    def delete_timer(self, key: bytes, window: Any, family: str, tag: str) -> None:
        self.timers.delete(key, window, family, tag)
        self._forget_timer(key, window, family, tag)

    def _forget_timer(self, key: bytes, window: Any, family: str, tag: str) -> None:
        self._holds.pop((key, window, family, tag), None)
        families = self._timer_index.get((key, window))
        if families is not None:
            families.discard((family, tag))
            if not families:
                del self._timer_index[(key, window)]

    def _fire_due(self, watermark: int, now: Optional[int]) -> bool:
        """Fire every event-time timer due by ``watermark`` (and processing-time timer due by
        ``now``), earliest first, including those the callbacks set. Whether any fired."""
        fired = progress = False
        pop_due = self.timers.pop_due
        with metrics_scope(self.metrics):
            try:
                # Until nothing is due: a callback may set a timer of the other domain that
                # is due.
                while True:
                    for domain, up_to in ((EVENT_TIME, watermark), (PROCESSING_TIME, now)):
                        if up_to is None:
                            continue
                        timer = pop_due(domain, up_to)
                        while timer is not None:
                            if not fired:
                                self._ensure_bundle()
                                self.outputs = {}
                                fired = True
                            progress = True
                            self._forget_timer(timer.key, timer.namespace, timer.family,
                                               timer.tag)
                            self._fire(timer)
                            timer = pop_due(domain, up_to)
                    if not progress:
                        break
                    progress = False
            except Exception as exc:
                reraise_with_label(exc, self.label)
            finally:
                self._current = None
        if fired:
            self._flush_outputs()
        return fired

    def _fire(self, timer: Timer) -> None:
        """Call the timer's callback (inside ``_fire_due``'s metrics scope and error label)."""
        window, encoded = timer.namespace, timer.key
        key = self._key_of(encoded, window)
        output_timestamp = (timer.fire_at if timer.output_timestamp == AT_FIRING_TIME
                            else timer.output_timestamp)
        self._current = (encoded, key)
        results = self._timer_calls[timer.family](timer.fire_at, window, encoded, key,
                                                  output_timestamp, timer.tag)
        if results is not None:
            self._emit_results(results, output_timestamp, (window,), None)

    # -- what is live, expiry and TTL cleanup -----------------------------------------------------
    def _key_of(self, encoded: bytes, window: Any) -> Any:
        keys = self._live.get(window)
        if keys is not None and encoded in keys:
            return keys[encoded]
        return decode_key(encoded)

    def _new_live_window(self, window: Any) -> Dict[bytes, Any]:
        keys = self._live[window] = {}
        heapq.heappush(self._gc_queue, (self._gc_time(window), next(self._sequence), window))
        return keys

    def _mark_live(self, encoded: bytes, window: Any) -> None:
        keys = self._live.get(window)
        if keys is None:
            keys = self._new_live_window(window)
        if encoded not in keys:
            current = self._current
            keys[encoded] = current[1] if current and current[0] == encoded \
                else decode_key(encoded)

    def _state_written(self, encoded: bytes, window: Hashable, expires_at: int) -> None:
        """State with a TTL was written: schedule a look at it for when it may expire."""
        self._mark_live(encoded, window)
        scheduled = self._ttl_scheduled.get((encoded, window))
        # Refreshing only moves an expiry later, so the earliest one scheduled stays a
        # valid time to look again; at most one queue entry per key and window.
        if scheduled is None or expires_at < scheduled:
            self._ttl_scheduled[(encoded, window)] = expires_at
            heapq.heappush(self._ttl_queue, (expires_at, next(self._sequence), encoded, window))

    def _pending_event_time(self, encoded: bytes, window: Any) -> Optional[int]:
        """The earliest pending event-time timer of a key and window, or None."""
        earliest = None
        for family, tag in self._timer_index.get((encoded, window), ()):
            timer = self.timers.get(encoded, window, family, tag)
            if timer is not None and timer.domain == EVENT_TIME and (
                    earliest is None or timer.fire_at < earliest):
                earliest = timer.fire_at
        return earliest

    def _collect_garbage(self, watermark: int) -> None:
        """Delete the state and timers of every window that expired by ``watermark``."""
        queue = self._gc_queue
        while queue and queue[0][0] <= watermark:
            _, _, window = heapq.heappop(queue)
            keys = self._live.pop(window, None)
            if not keys:
                continue
            remaining: Dict[bytes, Any] = {}
            recheck = MAX_MICROS
            for encoded, key in keys.items():
                pending = self._pending_event_time(encoded, window)
                if pending is not None and watermark < MAX_MICROS:
                    # A timer set past the expiry keeps the window until it has fired.
                    remaining[encoded] = key
                    recheck = min(recheck, pending)
                    continue
                self._clear(encoded, window)
            if remaining:
                self._live[window] = remaining
                heapq.heappush(queue, (recheck, next(self._sequence), window))

    def _clear(self, encoded: bytes, window: Any) -> None:
        self.backend.clear_namespace(encoded, window)
        for family, tag in list(self._timer_index.get((encoded, window), ())):
            self.delete_timer(encoded, window, family, tag)
        self._ttl_scheduled.pop((encoded, window), None)

    def _cleanup_expired_state(self, now: int) -> None:
        """The TTL cleanup pass: prune state whose earliest expiry has come."""
        queue = self._ttl_queue
        while queue and queue[0][0] <= now:
            expiry, _, encoded, window = heapq.heappop(queue)
            if self._ttl_scheduled.get((encoded, window)) != expiry:
                continue  # superseded by an earlier entry, or the window was cleared
            del self._ttl_scheduled[(encoded, window)]
            with metrics_scope(self.metrics):
                try:
                    next_expiry = self.states.prune_expired(encoded, window, now)
                except Exception as exc:
                    reraise_with_label(exc, self.label)
            if next_expiry is not None:
                self._ttl_scheduled[(encoded, window)] = next_expiry
                heapq.heappush(queue, (next_expiry, next(self._sequence), encoded, window))
            elif (window not in self.backend.namespaces(encoded)
                  and (encoded, window) not in self._timer_index):
                keys = self._live.get(window)
                if keys is not None:
                    keys.pop(encoded, None)  # nothing left to expire for this key

    # -- checkpoints ----------------------------------------------------------------------------
    @property
    def keyed_backend(self) -> Any:
        """The backend of this operator's user state (the engine snapshots it)."""
        return self.backend

    def configure_keyed_state(self, make_backend: Callable[[], Any], key_groups: range,
                              max_parallelism: int) -> None:
        """Keep user state in the backend ``make_backend()`` returns (before any element)."""
        self.backend.close()
        self.backend = make_backend()
        self.states.backend = self.backend

    def snapshot_state(self, checkpoint_id: int) -> Any:
        """Timers and the in-memory indexes that the backend does not hold (which keys
        and windows are live, explicit output holds, TTL expiries), plus the side inputs."""
        return {"timers": self.timers.snapshot(),
                "live": {window: dict(keys) for window, keys in self._live.items()},
                "holds": dict(self._holds), "ttl": dict(self._ttl_scheduled),
                "advanced_to": self._advanced_to, "pardo": super().snapshot_state(checkpoint_id)}

    def restore_state(self, snapshots: List[Any]) -> None:
        """Take this subtask's key groups from ``snapshots`` (any subtasks'), after the
        backend was restored; re-derive the expiry, timer and TTL indexes."""
        key_groups, max_parallelism = self.backend.key_groups, self.backend.max_parallelism

        def mine(encoded: bytes) -> bool:
            return key_group_for(encoded, max_parallelism) in key_groups

        snapshots = [s for s in snapshots if s is not None]
        for snapshot in snapshots:
            self.timers.restore(snapshot["timers"], key_groups, max_parallelism)
            for window, keys in snapshot["live"].items():
                kept = {encoded: key for encoded, key in keys.items() if mine(encoded)}
                if kept:
                    live = self._live.get(window)
                    (live if live is not None else self._new_live_window(window)).update(kept)
            self._holds.update((identity, stamp) for identity, stamp
                               in snapshot["holds"].items() if mine(identity[0]))
            for (encoded, window), expiry in snapshot["ttl"].items():
                if mine(encoded):
                    self._ttl_scheduled[(encoded, window)] = expiry
                    heapq.heappush(self._ttl_queue, (expiry, next(self._sequence), encoded,
                                                     window))
            self._advanced_to = max(self._advanced_to, snapshot["advanced_to"])
        for timer in self.timers.pending():
            self._timer_index.setdefault((timer.key, timer.namespace), set()).add(
                (timer.family, timer.tag))
        super().restore_state([s["pardo"] for s in snapshots])

    # -- time -----------------------------------------------------------------------------------
    def advance(self, watermark: int) -> None:
        if self.pushed_back:
            # Held back for side inputs, they were on time when they came: judge them by the
            # watermark before this advance, not by the one that released them.
            waiting, self.pushed_back = self.pushed_back, []
            self._late_horizon = self._advanced_to
            try:
                self.process_batch(0, waiting)
            finally:
                self._late_horizon = None
        self._advanced_to = watermark
        self._fire_due(watermark, None)
        self._collect_garbage(watermark)
        self._forward(watermark)

    def _forward(self, watermark: int) -> None:
        self.finish_bundle()
        hold = min(self._holds.values(), default=MAX_MICROS)
        held = min((wv.timestamp_micros for wv in self.pushed_back), default=MAX_MICROS)
        self.forward_watermark(min(watermark, hold, held))

    def on_processing_time(self, now: int) -> None:
        fired = self._fire_due(self.input_watermark, now)
        self._cleanup_expired_state(now)
        if fired:
            self._collect_garbage(self.input_watermark)
            self._forward(self.input_watermark)

    def next_processing_time(self) -> Optional[int]:
        times = [t for t in (self.timers.next_time(PROCESSING_TIME),) if t is not None]
        while self._ttl_queue:
            expiry, _, encoded, window = self._ttl_queue[0]
            if self._ttl_scheduled.get((encoded, window)) == expiry:
                times.append(expiry)
                break
            heapq.heappop(self._ttl_queue)
        return min(times) if times else None


def split_key_value_for_state(element: Any, label: str, fn: Any) -> tuple:
    """Unpack the ``(key, value)`` pair a stateful DoFn needs, or say why it cannot."""
    try:
        return split_key_value(element, label)
    except TypeError:
        raise TypeError(
            f"Input elements to the transform {label!r} with stateful DoFn must be key-value "
            f"pairs: {type(fn).__name__} uses state or timers, which are kept per key, but got "
            f"an element of type {type(element).__name__}: {element!r:.200} (state used in a "
            "non-keyed DoFn; key the input first, e.g. with beam.WithKeys or beam.Map(lambda "
            "x: (key, x)))") from None


def make_stateful_operator(label: str, transform: Any, input_windowing: Windowing,
                           side_windowings: List[Windowing],
                           output_tags: List[Optional[str]]) -> Operator:
    """The direct runner's operator for a ParDo whose DoFn ``is_stateful_dofn``."""
    return StatefulParDoOperator(label, transform, input_windowing, side_windowings, output_tags)
