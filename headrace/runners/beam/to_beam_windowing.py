"""Translating headrace windowing (window functions, triggers, strategies) to Apache Beam's.

Built-in window functions and every headrace trigger have a Beam counterpart
and are translated to it, so that Beam's runners can recognise and optimise
them. A user-defined headrace ``WindowFn`` runs inside Beam through
:class:`BeamWindowFnAdapter`, which converts timestamps and windows at the
boundary.

>>> from headrace.sdk.trigger import AfterWatermark, AfterCount
>>> to_beam_trigger(AfterWatermark(early=AfterCount(2)))
AfterWatermark(early=AfterCount(2))
"""
from __future__ import annotations

from typing import Any, Dict

import apache_beam as beam
from apache_beam.coders import coders as beam_coders
from apache_beam.transforms import trigger as bt
from apache_beam.transforms import window as bw

from headrace.runners.beam.to_beam_values import (
    to_beam_duration,
    to_beam_timestamp,
    to_beam_window,
    to_headrace_timestamp,
    to_headrace_window,
    user_time_to_beam,
)
from headrace.sdk import trigger as ht
from headrace.sdk import window as hw
from headrace.sdk.windowing import Windowing

# -- window functions ---------------------------------------------------------------------------

class _AdapterMixin:
    """Runs a headrace ``WindowFn`` where Beam expects a Beam one."""

    def __init__(self, window_fn: hw.WindowFn) -> None:
        self.window_fn = window_fn

    def assign(self, context: Any) -> Any:
        window = context.window
        hr_context = hw.WindowFn.AssignContext(
            to_headrace_timestamp(context.timestamp), context.element,
            to_headrace_window(window) if window is not None else None)
        return [to_beam_window(w) for w in self.window_fn.assign(hr_context)]

    def get_window_coder(self) -> Any:
        # Adapted functions may return global or interval windows: pickling covers both.
        return beam_coders.PickleCoder()

    def get_transformed_output_time(self, window: Any, input_timestamp: Any) -> Any:
        result = self.window_fn.get_transformed_output_time(
            to_headrace_window(window), to_headrace_timestamp(input_timestamp))
        return user_time_to_beam(result)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.window_fn == other.window_fn  # type: ignore

    def __hash__(self) -> int:
        return hash((type(self), type(self.window_fn)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.window_fn!r})"


class BeamWindowFnAdapter(_AdapterMixin, bw.WindowFn):
    """A merging headrace ``WindowFn`` as a Beam ``WindowFn``.

    >>> from headrace.sdk.window import Sessions
    >>> BeamWindowFnAdapter(Sessions(5)).is_merging()
    True
    """

    def merge(self, merge_context: Any) -> None:
        by_hr = {}
        for window in merge_context.windows:
            by_hr[to_headrace_window(window)] = window
        hr_context = hw.WindowFn.MergeContext(list(by_hr))
        self.window_fn.merge(hr_context)
        for to_be_merged, result in hr_context.merges:
            merge_context.merge([by_hr[w] for w in to_be_merged], to_beam_window(result))

    def is_merging(self) -> bool:
        return True


class BeamNonMergingWindowFnAdapter(_AdapterMixin, bw.NonMergingWindowFn):
    """A non-merging headrace ``WindowFn`` as a Beam ``NonMergingWindowFn``."""


def to_beam_window_fn(window_fn: hw.WindowFn) -> bw.WindowFn:
    """The Beam window function for a headrace one (an adapter for user-defined ones)."""
    kind = type(window_fn)
    if kind is hw.GlobalWindows:
        return bw.GlobalWindows()
    if kind is hw.FixedWindows:
        return bw.FixedWindows(to_beam_duration(window_fn.size_micros),
                               to_beam_timestamp(window_fn.offset_micros))
    if kind is hw.SlidingWindows:
        return bw.SlidingWindows(to_beam_duration(window_fn.size_micros),
                                 to_beam_duration(window_fn.period_micros),
                                 to_beam_timestamp(window_fn.offset_micros))
    if kind is hw.Sessions:
        return bw.Sessions(to_beam_duration(window_fn.gap_size_micros))
    if window_fn.is_merging():
        return BeamWindowFnAdapter(window_fn)
    return BeamNonMergingWindowFnAdapter(window_fn)


# -- triggers -----------------------------------------------------------------------------------

def to_beam_trigger(trigger: ht.TriggerFn) -> bt.TriggerFn:
    """The Beam trigger equivalent to a headrace trigger (every headrace trigger has one)."""
    kind = type(trigger)
    if kind is ht.DefaultTrigger:
        return bt.DefaultTrigger()
    if kind is ht.AfterWatermark:
        # Beam wraps early/late in Repeatedly itself: hand it the underlying triggers.
        early = to_beam_trigger(trigger.early.underlying) if trigger.early else None
        late = to_beam_trigger(trigger.late.underlying) if trigger.late else None
        return bt.AfterWatermark(early=early, late=late)
    if kind is ht.AfterProcessingTime:
        # Beam takes the delay in seconds (and ships it in milliseconds).
        return bt.AfterProcessingTime(trigger.delay)
    if kind is ht.AfterSynchronizedProcessingTime:
        return bt._AfterSynchronizedProcessingTime()
    if kind is ht.Always:
        return bt.Always()
    if kind is ht.Never:
        return bt._Never()
    if kind is ht.AfterCount:
        return bt.AfterCount(trigger.count)
    if kind is ht.Repeatedly:
        return bt.Repeatedly(to_beam_trigger(trigger.underlying))
    if kind is ht.OrFinally:
        return bt.OrFinally(*(to_beam_trigger(t) for t in trigger.triggers))
    if kind is ht.AfterAny:
        return bt.AfterAny(*(to_beam_trigger(t) for t in trigger.triggers))
    if kind is ht.AfterAll:
        return bt.AfterAll(*(to_beam_trigger(t) for t in trigger.triggers))
    if kind is ht.AfterEach:
        return bt.AfterEach(*(to_beam_trigger(t) for t in trigger.triggers))
    raise NotImplementedError(f"trigger {trigger!r} ({kind.__name__}) has no Beam translation")


_COMBINERS: Dict[str, Any] = {
    hw.TimestampCombiner.OUTPUT_AT_EOW: bw.TimestampCombiner.OUTPUT_AT_EOW,
    hw.TimestampCombiner.OUTPUT_AT_EARLIEST: bw.TimestampCombiner.OUTPUT_AT_EARLIEST,
    hw.TimestampCombiner.OUTPUT_AT_LATEST: bw.TimestampCombiner.OUTPUT_AT_LATEST,
    hw.TimestampCombiner.OUTPUT_AT_EARLIEST_TRANSFORMED:
        bw.TimestampCombiner.OUTPUT_AT_EARLIEST_TRANSFORMED,
}


def to_beam_window_into(windowing: Windowing, label: str) -> beam.WindowInto:
    """Beam's ``WindowInto`` for a headrace strategy; refuses what Beam cannot express."""
    if windowing.late_data_tag is not None:
        raise NotImplementedError(
            f"{label}: WindowInto(...).with_late_data_output({windowing.late_data_tag!r}) "
            "(late-data side output) has no Apache Beam counterpart; it cannot run with "
            "--runner=beam")
    try:
        trigger = to_beam_trigger(windowing.trigger)
    except NotImplementedError as exc:
        raise NotImplementedError(f"{label}: {exc}") from None
    return beam.WindowInto(
        to_beam_window_fn(windowing.window_fn),
        trigger=trigger,
        accumulation_mode=(bt.AccumulationMode.ACCUMULATING if windowing.is_accumulating
                           else bt.AccumulationMode.DISCARDING),
        timestamp_combiner=_COMBINERS[windowing.timestamp_combiner],
        allowed_lateness=to_beam_duration(windowing.allowed_lateness_micros))
