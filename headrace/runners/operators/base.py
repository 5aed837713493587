"""The direct runner's operators: one per primitive, pushing elements and watermarks downstream.

Every operator keeps the watermark of each of its inputs; when their minimum
advances it fires what became complete (grouped windows, held-back elements)
and then forwards the watermark, so outputs always precede the watermark that
would make them late.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from headrace.runners.common.errors import reraise_with_label
from headrace.runners.operators.batch import ColumnBatch
from headrace.sdk.metrics import SYSTEM_NAMESPACE, MetricName, MetricsContainer
from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS
from headrace.sdk.window import (
    GLOBAL_WINDOW,
    FixedWindows,
    GlobalWindows,
    SlidingWindows,
    TimestampedValue,
)
from headrace.sdk.windowed_value import WindowedValue

#: The gauge (int micros) through which every step reports its output watermark.
OUTPUT_WATERMARK = MetricName(SYSTEM_NAMESPACE, "output_watermark")

Receiver = Tuple["Operator", int]
Batch = Union[List[WindowedValue], ColumnBatch]
#: Window tuples kept per window start by the column fast path of WindowInto.
_WINDOW_CACHE_LIMIT = 4096


class Operator:
    """A node of the running graph with ``num_inputs`` inputs.

    Elements arrive in batches (a batch is evaluated as one bundle, e.g. by
    triggers); watermarks, input idleness and processing time arrive between
    batches. An idle input does not hold the combined watermark back.
    """

    #: Set on every operator of a job that takes checkpoints (by the engine).
    checkpointing = False

    def __init__(self, label: str, num_inputs: int) -> None:
        self.label = label
        self.receivers: Dict[Optional[str], List[Receiver]] = {}
        self.input_watermarks = [MIN_MICROS] * num_inputs
        self.input_idle = [False] * num_inputs
        self.input_watermark = MIN_MICROS if num_inputs else MAX_MICROS
        self.output_watermark = MIN_MICROS
        self.output_idle = False
        self.metrics = MetricsContainer(label)
        #: Elements emitted so far, over all outputs (progress figures).
        self.records_out = 0
        #: The runner's clock (processing time, int micros); set by the executor.
        self.clock: Any = None

    def start(self) -> None:
        """Acquire resources (DoFn.setup, open writers) before any element."""

    def close(self) -> None:
        """Release resources; called once, also after a failure."""

    def snapshot_state(self, checkpoint_id: int) -> Any:
        """Snapshot this operator's state for checkpoint ``checkpoint_id``.

        Called when barrier ``checkpoint_id`` has arrived on every input, after
        everything before it was processed and before the barrier is forwarded.
        It must be cheap (copy-on-write, a RocksDB checkpoint): uploading happens
        later, on another thread. Returns something picklable, or None when the
        operator holds no state.
        """
        return None

    def restore_state(self, snapshots: List[Any]) -> None:
        """Restore, before any input, from snapshots taken by :meth:`snapshot_state`.

        ``snapshots`` are those of the old subtasks assigned to this one: one, its
        own, when the parallelism is unchanged; after rescaling, keyed state is
        handed over by key group and other state by the operator's own rule.
        """

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` is complete: publish what waited for it
        (two-phase-commit sinks commit, sources commit offsets as progress)."""

    def emit_batch(self, tag: Optional[str], batch: Batch) -> None:
        if not batch:
            return
        self.records_out += len(batch)
        for receiver, index in self.receivers.get(tag, ()):
            receiver.process_batch(index, batch)

    def process_batch(self, index: int, batch: Batch) -> None:
        raise NotImplementedError

    def on_watermark(self, index: int, watermark: int) -> None:
        if watermark <= self.input_watermarks[index]:
            return
        self.input_watermarks[index] = watermark
        if self.input_idle[index]:
            self.input_idle[index] = False
            self._idle_changed()
        self._recompute_watermark()

    def set_input_idle(self, index: int, idle: bool) -> None:
        """An idle input stops holding the watermark back until it sends data or a watermark."""
        if self.input_idle[index] != idle:
            self.input_idle[index] = idle
            self._idle_changed()
            self._recompute_watermark()

    def _idle_changed(self) -> None:
        self._set_output_idle(all(self.input_idle) if self.input_idle else False)

    def _set_output_idle(self, idle: bool) -> None:
        if idle != self.output_idle:
            self.output_idle = idle
            for receivers in self.receivers.values():
                for receiver, index in receivers:
                    receiver.set_input_idle(index, idle)

    def _recompute_watermark(self) -> None:
        active = [wm for wm, idle in zip(self.input_watermarks, self.input_idle) if not idle]
        if not active:
            return
        combined = min(active)
        if combined == MAX_MICROS and len(active) < len(self.input_watermarks):
            # Finished inputs must not let the watermark reach the end while an idle input
            # may still send data: hold at the furthest point an idle input has promised.
            combined = max(wm for wm, idle in zip(self.input_watermarks, self.input_idle)
                           if idle)
        if combined > self.input_watermark:
            self.input_watermark = combined
            self.advance(combined)

    def advance(self, watermark: int) -> None:
        """React to a higher input watermark; by default just forward it."""
        self.forward_watermark(watermark)

    def forward_watermark(self, watermark: int) -> None:
        if watermark <= self.output_watermark:
            return
        self.output_watermark = watermark
        self.metrics.gauge(OUTPUT_WATERMARK).set(watermark)
        for receivers in self.receivers.values():
            for receiver, index in receivers:
                receiver.on_watermark(index, watermark)

    def on_processing_time(self, now: int) -> None:
        """Fire what is due at processing time ``now`` (int micros)."""

    def next_processing_time(self) -> Optional[int]:
        """When this operator next needs ``on_processing_time``, or None."""
        return None


#: Processing-time timers may set further due timers; this bounds one round of firing.
MAX_TIMER_ROUNDS = 10_000


def fire_processing_time(operators: Iterable[Operator], clock: Any) -> None:
    """Fire every operator's processing-time work that is due by ``clock``, until none is."""
    operators = list(operators)
    for _ in range(MAX_TIMER_ROUNDS):
        now = clock.now()
        due = [op for op in operators
               if (t := op.next_processing_time()) is not None and t <= now]
        if not due:
            return
        for operator in due:
            operator.on_processing_time(now)
    raise RuntimeError("Processing-time timers kept setting timers that were already due; "
                       f"gave up after {MAX_TIMER_ROUNDS} rounds")


def next_processing_time(operators: Iterable[Operator]) -> Optional[int]:
    """The earliest time any of ``operators`` needs ``on_processing_time``, or None."""
    times = [t for op in operators if (t := op.next_processing_time()) is not None]
    return min(times) if times else None


def close_all(operators: Iterable[Operator]) -> None:
    """Close every operator; raise the first failure after trying them all."""
    error = None
    for operator in operators:
        try:
            operator.close()
        except Exception as exc:
            error = error or exc
    if error is not None:
        raise error


class FlattenOperator(Operator):
    def process_batch(self, index: int, batch: Batch) -> None:
        self.emit_batch(None, batch)


class WindowIntoOperator(Operator):
    """Assigns windows; with a late-data tag, diverts elements already too late for all of them.

    Built from the transform's ``Windowing`` (a bare ``WindowFn`` is accepted
    too, meaning no late-data output). An element goes to the late-data
    output, unchanged, when the input watermark is past ``end + allowed
    lateness`` of every window it is assigned to: exactly the elements a
    grouping downstream would drop (``TriggeredGrouping``'s rule, Beam's).
    """

    def __init__(self, label: str, windowing: Any) -> None:
        super().__init__(label, 1)
        if hasattr(windowing, "late_data_tag"):  # a Windowing
            self.window_fn = windowing.window_fn
            self.late_tag = windowing.late_data_tag
            self.lateness = windowing.allowed_lateness_micros
        else:
            self.window_fn, self.late_tag, self.lateness = windowing, None, 0
        self._windows_by_start: Dict[int, tuple] = {}

    def process_batch(self, index: int, batch: Batch) -> None:
        if type(batch) is ColumnBatch and self.late_tag is None:
            columns = self._assign_columns(batch)
            if columns is not None:
                self.emit_batch(None, columns)
                return
        assign = self.window_fn.assign_micros
        out = []
        late = []
        # A window is expired once its end is before this (see TriggeredGrouping).
        horizon = self.input_watermark - self.lateness if self.late_tag is not None else None
        try:
            for wv in batch:
                # As Beam: an element in several windows is several elements, each assigned
                # windows on its own (so rewindowing keeps the duplication).
                for old in wv.windows:
                    windows = tuple(assign(wv.timestamp_micros, wv.value, old))
                    if horizon is not None and windows and all(w.end_micros < horizon
                                                               for w in windows):
                        late.append(wv if len(wv.windows) == 1 else
                                    WindowedValue.of(wv.value, wv.timestamp_micros, (old,),
                                                     wv.pane_info))
                        continue
                    out.append(WindowedValue.of(wv.value, wv.timestamp_micros, windows,
                                                wv.pane_info))
        except Exception as exc:
            reraise_with_label(exc, self.label)
        self.emit_batch(None, out)
        if late:
            self.emit_batch(self.late_tag, late)


    def _assign_columns(self, batch: ColumnBatch) -> Optional[ColumnBatch]:
        """Assign the built-in window functions by arithmetic on the timestamp column.

        Only for elements in one window each (several windows mean duplication, done
        element by element); windows are shared by every element of the same start.
        """
        fn = self.window_fn
        kind = type(fn)
        if kind not in (FixedWindows, SlidingWindows, GlobalWindows) or (
                kind is SlidingWindows and fn.size_micros % fn.period_micros):
            # Sliding windows whose size is not a multiple of the period: an element's
            # windows depend on more than the start of its last window.
            return None
        if batch.shared_windows:
            if len(batch.windows) != 1:
                return None
        elif set(map(len, batch.windows)) != {1}:
            return None
        if kind is GlobalWindows:
            return ColumnBatch(batch.values, batch.timestamps, (GLOBAL_WINDOW,), batch.pane_info)
        timestamps = batch.timestamps
        if batch.shared_timestamp:
            windows = tuple(fn.assign_micros(timestamps, None, None))
            return ColumnBatch(batch.values, timestamps, windows, batch.pane_info)
        period = fn.size_micros if kind is FixedWindows else fn.period_micros
        offset = fn.offset_micros
        cache = self._windows_by_start
        if len(cache) > _WINDOW_CACHE_LIMIT:
            cache.clear()
        starts = [t - (t - offset) % period for t in timestamps]
        column = list(map(cache.get, starts))
        if None in column:
            # Assigned once per start: every element of that start shares the tuple.
            for start, t in zip(starts, timestamps):
                if start not in cache:
                    cache[start] = tuple(fn.assign_micros(t, None, None))
            column = list(map(cache.__getitem__, starts))
        return ColumnBatch(batch.values, timestamps, column, batch.pane_info)


def to_windowed_values(elements: List[Any]) -> Batch:
    """Wrap source elements; a ``TimestampedValue`` sets the element's event time."""
    global_windows = (GLOBAL_WINDOW,)
    return [WindowedValue.of(e.value, e.timestamp_micros, global_windows)
            if type(e) is TimestampedValue else WindowedValue.of(e, MIN_MICROS, global_windows)
            for e in elements]
