"""GroupByKey and CombinePerKey: per key and window aggregation, fired by the watermark.

Both keep, per key, a map from window to an aggregate (a list of values for
GroupByKey, an accumulator for CombinePerKey) and the output timestamp chosen
by the windowing's timestamp combiner. Merging window functions (sessions)
merge the windows of a key, and their aggregates, as elements arrive.
"""
from __future__ import annotations

from typing import Any, Dict, List

from headrace.runners.common.errors import reraise_with_label
from headrace.runners.direct.operators import Operator
from headrace.sdk.coders import encode_key
from headrace.sdk.metrics import metrics_scope
from headrace.sdk.serialization import loads_user_code
from headrace.sdk.timestamp import Timestamp
from headrace.sdk.window import TimestampCombiner, merge_windows
from headrace.sdk.windowed_value import WindowedValue
from headrace.sdk.windowing import Windowing


def split_key_value(element: Any, label: str) -> tuple:
    """Unpack a ``(key, value)`` pair, or fail naming the transform and the element."""
    if type(element) is tuple and len(element) == 2:
        return element
    if isinstance(element, (tuple, list)) and len(element) == 2:
        return tuple(element)
    raise TypeError(f"{label!r} expects (key, value) pairs, but got an element of type "
                    f"{type(element).__name__}: {element!r:.200}")


class _KeyedWindowAggregation(Operator):
    """Shared machinery; subclasses define the aggregate."""

    def __init__(self, label: str, windowing: Windowing) -> None:
        super().__init__(label, 1)
        self.window_fn = windowing.window_fn
        self.merging = self.window_fn.is_merging()
        self.combiner = windowing.timestamp_combiner
        self.track_time = self.combiner != TimestampCombiner.OUTPUT_AT_EOW
        # encoded key -> [key, {window: [aggregate, output_timestamp]}]
        self.keys: Dict[bytes, list] = {}

    def new_aggregate(self) -> Any:
        raise NotImplementedError

    def add_value(self, aggregate: Any, value: Any) -> Any:
        raise NotImplementedError

    def merge_aggregates(self, aggregates: List[Any]) -> Any:
        raise NotImplementedError

    def output_value(self, aggregate: Any) -> Any:
        raise NotImplementedError

    def _output_time(self, window: Any, timestamp_micros: int) -> int:
        if not self.track_time:
            return window.max_timestamp_micros
        transformed = self.window_fn.get_transformed_output_time(
            window, Timestamp(micros=timestamp_micros))
        return Timestamp.of(transformed).micros

    def _combine_times(self, times: List[int]) -> int:
        return max(times) if self.combiner == TimestampCombiner.OUTPUT_AT_LATEST else min(times)

    def process_batch(self, index: int, batch: List[WindowedValue]) -> None:
        for wv in batch:
            self._add(wv)

    def _add(self, wv: WindowedValue) -> None:
        key, value = split_key_value(wv.value, self.label)
        try:
            encoded = encode_key(key)
        except Exception as exc:
            reraise_with_label(exc, self.label)
        entry = self.keys.get(encoded)
        if entry is None:
            entry = self.keys[encoded] = [key, {}]
        windows = entry[1]
        for window in wv.windows:
            slot = windows.get(window)
            output_time = self._output_time(window, wv.timestamp_micros)
            if slot is None:
                slot = windows[window] = [self.new_aggregate(), output_time]
            elif self.track_time:
                slot[1] = self._combine_times([slot[1], output_time])
            slot[0] = self.add_value(slot[0], value)
        if self.merging:
            self._merge(windows)

    def _merge(self, windows: Dict[Any, list]) -> None:
        try:
            merges = merge_windows(self.window_fn, list(windows))
        except Exception as exc:
            reraise_with_label(exc, self.label)
        targets: Dict[Any, List[Any]] = {}
        for old, new in merges.items():
            targets.setdefault(new, []).append(old)
        for new, olds in targets.items():
            slots = [windows.pop(old) for old in olds]
            if new in windows:
                slots.append(windows.pop(new))
            times = ([self._output_time(new, s[1]) for s in slots] if self.track_time
                     else [new.max_timestamp_micros])
            windows[new] = [self.merge_aggregates([s[0] for s in slots]),
                            self._combine_times(times)]

    def advance(self, watermark: int) -> None:
        ready = []
        for key, windows in self.keys.values():
            for window in [w for w in windows if w.end_micros <= watermark]:
                aggregate, output_time = windows.pop(window)
                ready.append((window.end_micros, key, window, aggregate, output_time))
        self.keys = {k: e for k, e in self.keys.items() if e[1]}
        ready.sort(key=lambda item: item[0])
        self.emit_batch(None, [
            WindowedValue.of((key, self.output_value(aggregate)), output_time, (window,))
            for _, key, window, aggregate, output_time in ready])
        self.forward_watermark(watermark)


class GroupByKeyOperator(_KeyedWindowAggregation):
    def new_aggregate(self) -> List[Any]:
        return []

    def add_value(self, aggregate: List[Any], value: Any) -> List[Any]:
        aggregate.append(value)
        return aggregate

    def merge_aggregates(self, aggregates: List[List[Any]]) -> List[Any]:
        return [value for aggregate in aggregates for value in aggregate]

    def output_value(self, aggregate: List[Any]) -> List[Any]:
        return aggregate


class CombinePerKeyOperator(_KeyedWindowAggregation):
    """Keeps one accumulator per key and window."""

    def __init__(self, label: str, windowing: Windowing, serialized_fn: bytes) -> None:
        super().__init__(label, windowing)
        self.combine_fn, self.args, self.kwargs = loads_user_code(serialized_fn)
        self.set_up = False

    def start(self) -> None:
        self._call(self.combine_fn.setup)
        self.set_up = True

    def close(self) -> None:
        if self.set_up:
            self.set_up = False
            self._call(self.combine_fn.teardown)

    def _call(self, method: Any, *args: Any) -> Any:
        with metrics_scope(self.metrics):
            try:
                return method(*args, *self.args, **self.kwargs)
            except Exception as exc:
                reraise_with_label(exc, self.label)

    def new_aggregate(self) -> Any:
        return self._call(self.combine_fn.create_accumulator)

    def add_value(self, aggregate: Any, value: Any) -> Any:
        return self._call(self.combine_fn.add_input, aggregate, value)

    def merge_aggregates(self, aggregates: List[Any]) -> Any:
        return self._call(self.combine_fn.merge_accumulators, aggregates)

    def output_value(self, aggregate: Any) -> Any:
        return self._call(self.combine_fn.extract_output,
                          self._call(self.combine_fn.compact, aggregate))
