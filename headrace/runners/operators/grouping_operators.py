"""GroupByKey and CombinePerKey on the direct runner: triggered grouping per key and window.

Both operators run a :class:`~headrace.runners.common.grouping.TriggeredGrouping`
over a ``MemoryStateBackend`` and a ``TimerService``: every batch is one
bundle, watermarks fire on-time panes and garbage-collect expired windows,
processing time fires processing-time triggers. GroupByKey keeps a bag of
values per key and window, CombinePerKey one accumulator. Elements that
arrive for a window already past its allowed lateness are dropped and
counted (``dropped_late_elements``; those for a window whose trigger has
finished in ``dropped_closed_window_elements``), in the ``headrace``
namespace of the step's metrics.

The runner chooses the backend (``--state_backend``, one per subtask and its key
groups) with :meth:`_GroupingOperator.configure_keyed_state`; for checkpoints an
operator's :meth:`~Operator.snapshot_state` holds its timers (and a fast path's
tables), while the engine snapshots the backend itself (``keyed_backend``).

For the common windowing (default trigger, non-merging windows, end-of-window
timestamps) CombinePerKey runs a
:class:`~headrace.runners.common.windowed_combine.WindowedCombineTable` instead,
which emits the same panes from a dict of accumulators per window and takes
column batches and pre-combined partial accumulators (``process_partials``).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from headrace.runners.common.errors import reraise_with_label
from headrace.runners.common.grouping import (
    BufferAggregation,
    CombiningAggregation,
    TriggeredGrouping,
)
from headrace.runners.common.windowed_combine import WindowedCombineTable, supports
from headrace.runners.operators.base import Operator
from headrace.runners.state.base import KeyedStateBackend, TimerService
from headrace.runners.state.memory import MemoryStateBackend
from headrace.sdk.coders import encode_key
from headrace.sdk.coders.keys import ENCODING_CONSISTENT_KEY_TYPES
from headrace.sdk.metrics import SYSTEM_NAMESPACE, MetricName, metrics_scope
from headrace.sdk.serialization import loads_user_code
from headrace.sdk.windowed_value import WindowedValue
from headrace.sdk.windowing import Windowing

#: Elements (counted once per window) dropped because the window was past allowed lateness.
DROPPED_LATE = MetricName(SYSTEM_NAMESPACE, "dropped_late_elements")
#: Elements dropped because their window's trigger had finished (Beam: droppedDueToClosedWindow).
DROPPED_CLOSED = MetricName(SYSTEM_NAMESPACE, "dropped_closed_window_elements")


def split_key_value(element: Any, label: str) -> tuple:
    """Unpack a ``(key, value)`` pair, or fail naming the transform and the element."""
    if type(element) is tuple and len(element) == 2:
        return element
    if isinstance(element, (tuple, list)) and len(element) == 2:
        return tuple(element)
    raise TypeError(f"{label!r} expects (key, value) pairs, but got an element of type "
                    f"{type(element).__name__}: {element!r:.200}")


class _GroupingOperator(Operator):
    """Shared driving of a ``TriggeredGrouping``; subclasses choose the aggregation."""

    def __init__(self, label: str, windowing: Windowing) -> None:
        super().__init__(label, 1)
        self.windowing = windowing
        self.backend: KeyedStateBackend = MemoryStateBackend()
        self.timers = TimerService()
        self.grouping = self.make_grouping()
        #: The grouping takes whole batches (``process``), not keyed tuples.
        self.columnar = isinstance(self.grouping, WindowedCombineTable)

    @property
    def keyed_backend(self) -> Optional[KeyedStateBackend]:
        """The backend holding this operator's keyed state; None for the fast paths, which
        keep it in their own tables (snapshotted by :meth:`snapshot_state`)."""
        return self.backend if isinstance(self.grouping, TriggeredGrouping) else None

    def configure_keyed_state(self, make_backend: Callable[[], KeyedStateBackend],
                              key_groups: range, max_parallelism: int) -> None:
        """Own ``key_groups`` and keep keyed state in the backend ``make_backend()`` returns
        (called before any element; the fast paths, which need no backend, do not call it)."""
        self.backend.close()
        if isinstance(self.grouping, TriggeredGrouping):
            self.backend = make_backend()
            defer = self.grouping.defer_firing
            self.grouping = TriggeredGrouping(self.windowing, self.make_aggregation(),
                                              self.backend, self.timers)
            self.grouping.defer_firing = defer
        else:
            self.backend = MemoryStateBackend(key_groups, max_parallelism)

    def close(self) -> None:
        self.backend.close()

    def snapshot_state(self, checkpoint_id: int) -> Any:
        """The timers, and a fast path's tables (pickled now: they change in place)."""
        grouping = self.grouping
        tables = None if isinstance(grouping, TriggeredGrouping) else grouping.snapshot_tables()
        return {"timers": self.timers.snapshot(), "tables": tables}

    def restore_state(self, snapshots: List[Any]) -> None:
        """Take the timers and table entries of this operator's key groups from
        ``snapshots`` (any subtasks'), after the backend was restored."""
        key_groups = self.backend.key_groups
        max_parallelism = self.backend.max_parallelism
        for snapshot in snapshots:
            if snapshot is not None:
                self.timers.restore(snapshot["timers"], key_groups, max_parallelism)
        if isinstance(self.grouping, TriggeredGrouping):
            self.grouping.rebuild_indexes()
        else:
            self.grouping.restore_tables([s["tables"] for s in snapshots
                                          if s is not None and s["tables"] is not None],
                                         key_groups, max_parallelism)

    def make_grouping(self) -> Any:
        return TriggeredGrouping(self.windowing, self.make_aggregation(), self.backend,
                                 self.timers)

    def make_aggregation(self) -> Any:
        raise NotImplementedError

    def _now(self) -> int:
        return self.clock.now() if self.clock is not None else 0

    def _keyed(self, batch: List[WindowedValue]) -> List[Tuple[bytes, Any, Any, int, tuple]]:
        """``(encoded key, key, value, timestamp, windows)`` for each element."""
        label = self.label
        keyed = []
        append = keyed.append
        # Keys repeat within a batch; these types' equality matches their encoding's.
        encoded: Dict[Any, bytes] = {}
        try:
            for wv in batch:
                element = wv.value
                if type(element) is tuple and len(element) == 2:
                    key, value = element
                else:
                    key, value = split_key_value(element, label)
                if type(key) in ENCODING_CONSISTENT_KEY_TYPES:
                    code = encoded.get(key)
                    if code is None:
                        code = encoded[key] = encode_key(key)
                else:
                    code = encode_key(key)
                append((code, key, value, wv.timestamp_micros, wv.windows))
        except Exception as exc:
            reraise_with_label(exc, label)
        return keyed

    def process_batch(self, index: int, batch: List[WindowedValue]) -> None:
        self._process(batch, False)

    def process_partials(self, batch: Any) -> None:
        """A batch of partial accumulators from a pre-combiner (combiner lifting)."""
        self._process(batch, True)

    def _process(self, batch: Any, partial: bool) -> None:
        grouping = self.grouping
        closed_before = grouping.dropped_closed
        with metrics_scope(self.metrics):
            try:
                if self.columnar:
                    out, dropped = grouping.process(batch, self.input_watermark,
                                                    self.output_watermark, partial)
                else:
                    out, dropped = grouping.process_bundle(self._keyed(batch),
                                                           self.input_watermark,
                                                           self.output_watermark, self._now())
            except Exception as exc:
                reraise_with_label(exc, self.label)
        if dropped:
            self.metrics.counter(DROPPED_LATE).inc(dropped)
        if grouping.dropped_closed != closed_before:
            self.metrics.counter(DROPPED_CLOSED).inc(grouping.dropped_closed - closed_before)
        self.emit_batch(None, out)
        # Firing may have released holds.
        self.forward_watermark(grouping.output_watermark_for(self.input_watermark))

    @property
    def bundle_per_batch(self) -> bool:
        """Streaming: each batch is a bundle. Batch execution (False): triggers are asked once
        all input is in, as Beam's batch runners process each key's input as one bundle."""
        return not self.grouping.defer_firing

    @bundle_per_batch.setter
    def bundle_per_batch(self, value: bool) -> None:
        self.grouping.defer_firing = not value

    def advance(self, watermark: int) -> None:
        with metrics_scope(self.metrics):
            try:
                out = self.grouping.fire_deferred() if self.grouping.defer_firing else []
                fired = self.grouping.on_watermark(watermark, self._now())
                out = out + list(fired) if out else fired
            except Exception as exc:
                reraise_with_label(exc, self.label)
        self.emit_batch(None, out)
        self.forward_watermark(self.grouping.output_watermark_for(watermark))

    def on_processing_time(self, now: int) -> None:
        with metrics_scope(self.metrics):
            try:
                out = self.grouping.on_processing_time(now, self.input_watermark,
                                                       self.output_watermark)
            except Exception as exc:
                reraise_with_label(exc, self.label)
        self.emit_batch(None, out)
        self.forward_watermark(self.grouping.output_watermark_for(self.input_watermark))

    def next_processing_time(self) -> Any:
        return self.grouping.next_processing_time()


class GroupByKeyOperator(_GroupingOperator):
    """Emits ``(key, [values])`` panes; the values wait in a bag per key and window.

    >>> from headrace.sdk.windowing import DEFAULT_WINDOWING
    >>> from headrace.sdk.window import GLOBAL_WINDOW
    >>> from headrace.sdk.timestamp import MAX_MICROS
    >>> op = GroupByKeyOperator("GBK", DEFAULT_WINDOWING)
    >>> op.process_batch(0, [WindowedValue.of(("a", 1), 0, (GLOBAL_WINDOW,))])
    >>> panes = []
    >>> op.emit_batch = lambda tag, batch: panes.extend(batch)
    >>> op.on_watermark(0, MAX_MICROS); [wv.value for wv in panes]
    [('a', [1])]
    """

    def make_aggregation(self) -> BufferAggregation:
        return BufferAggregation()


class CombinePerKeyOperator(_GroupingOperator):
    """Emits ``(key, combined)`` panes; keeps one accumulator per key and window.

    ``serialized_fn`` is ``CombinePerKey.serialized_fn``: the pickled
    ``(combine_fn, args, kwargs)``.
    """

    def __init__(self, label: str, windowing: Windowing, serialized_fn: bytes) -> None:
        self.serialized_fn = serialized_fn
        self.combine_fn, self.args, self.kwargs = loads_user_code(serialized_fn)
        self.set_up = False
        super().__init__(label, windowing)

    def make_grouping(self) -> Any:
        if supports(self.windowing):
            label = self.label
            return WindowedCombineTable(self.windowing, self.combine_fn, self.args, self.kwargs,
                                        lambda element: split_key_value(element, label))
        return super().make_grouping()

    def make_aggregation(self) -> CombiningAggregation:
        return CombiningAggregation(self.combine_fn, self._call)

    def _call(self, method: Any, *args: Any) -> Any:
        return method(*args, *self.args, **self.kwargs)

    def start(self) -> None:
        self._guarded(self.combine_fn.setup)
        self.set_up = True

    def close(self) -> None:
        try:
            if self.set_up:
                self.set_up = False
                self._guarded(self.combine_fn.teardown)
        finally:
            super().close()

    def _guarded(self, method: Any) -> None:
        with metrics_scope(self.metrics):
            try:
                self._call(method)
            except Exception as exc:
                reraise_with_label(exc, self.label)
