"""Translating Beam's windowing strategies (WindowFns, triggers, modes) into headrace's.

Beam's built-in window functions and triggers map one to one onto headrace's
(the semantics were built to match); any other Beam ``WindowFn`` runs through
:class:`BeamWindowFnAdapter`, which calls the user's Beam code with Beam's
windows and contexts.
"""
from __future__ import annotations

from typing import Any, Iterable, List

from apache_beam.transforms import trigger as bt
from apache_beam.transforms import window as bw

from headrace.runners.beam.from_beam_values import (
    beam_micros,
    beam_timestamp_of,
    headrace_duration,
    to_beam_window,
    to_headrace_window,
)
from headrace.sdk import trigger as ht
from headrace.sdk import window as hw
from headrace.sdk.timestamp import Timestamp
from headrace.sdk.windowing import Windowing


class UnsupportedBeamFeature(NotImplementedError):
    """A Beam transform or setting headrace cannot run; the message says which."""


class BeamWindowFnAdapter(hw.WindowFn):
    """Runs a user-defined Beam ``WindowFn`` inside headrace's operators."""

    def __init__(self, beam_fn: Any) -> None:
        self.beam_fn = beam_fn

    def assign(self, assign_context: hw.WindowFn.AssignContext) -> List[Any]:
        window = assign_context.window
        context = bw.WindowFn.AssignContext(
            beam_timestamp_of(assign_context.timestamp.micros), assign_context.element,
            to_beam_window(window) if window is not None else None)
        return [to_headrace_window(w) for w in self.beam_fn.assign(context)]

    def merge(self, merge_context: hw.WindowFn.MergeContext) -> None:
        by_beam = {to_beam_window(w): w for w in merge_context.windows}

        class _Context(bw.WindowFn.MergeContext):
            def merge(self, to_be_merged: Iterable[Any], merge_result: Any) -> None:
                merge_context.merge([by_beam.get(w, to_headrace_window(w)) for w in to_be_merged],
                                    to_headrace_window(merge_result))

        self.beam_fn.merge(_Context(list(by_beam)))

    def is_merging(self) -> bool:
        return bool(self.beam_fn.is_merging())

    def get_transformed_output_time(self, window: Any, input_timestamp: Any) -> Any:
        result = self.beam_fn.get_transformed_output_time(
            to_beam_window(window), beam_timestamp_of(Timestamp.of(input_timestamp).micros))
        return Timestamp(micros=beam_micros(result))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BeamWindowFnAdapter) and self.beam_fn == other.beam_fn

    def __hash__(self) -> int:
        return hash(type(self.beam_fn))

    def __repr__(self) -> str:
        return f"BeamWindowFn({self.beam_fn!r})"


def translate_window_fn(fn: Any) -> hw.WindowFn:
    """Headrace's WindowFn for a Beam one (exact built-in types only: subclasses may
    override assignment, so they go through the adapter)."""
    kind = type(fn)
    if kind is bw.GlobalWindows:
        return hw.GlobalWindows()
    if kind is bw.FixedWindows:
        return hw.FixedWindows(headrace_duration(fn.size), headrace_duration(fn.offset))
    if kind is bw.SlidingWindows:
        return hw.SlidingWindows(headrace_duration(fn.size), headrace_duration(fn.period),
                                 headrace_duration(fn.offset))
    if kind is bw.Sessions:
        return hw.Sessions(headrace_duration(fn.gap_size))
    return BeamWindowFnAdapter(fn)


def translate_trigger(trigger: Any) -> ht.TriggerFn:
    """Headrace's trigger for a Beam trigger, recursively."""
    kind = type(trigger)
    if kind is bt.DefaultTrigger:
        return ht.DefaultTrigger()
    if kind is bt.AfterWatermark:
        return ht.AfterWatermark(
            early=translate_trigger(trigger.early) if trigger.early else None,
            late=translate_trigger(trigger.late) if trigger.late else None)
    if kind is bt.AfterProcessingTime:
        return ht.AfterProcessingTime(headrace_duration(trigger.delay))
    if kind is bt.AfterCount:
        return ht.AfterCount(trigger.count)
    if kind is bt.Repeatedly:
        return ht.Repeatedly(translate_trigger(trigger.underlying))
    if kind is bt.Always:
        return ht.Always()
    if kind is bt.OrFinally:
        return ht.OrFinally(translate_trigger(trigger.triggers[0]),
                            translate_trigger(trigger.triggers[1]))
    if kind is bt.AfterAny:
        return ht.AfterAny(*[translate_trigger(t) for t in trigger.triggers])
    if kind is bt.AfterAll:
        return ht.AfterAll(*[translate_trigger(t) for t in trigger.triggers])
    if kind is bt.AfterEach:
        return ht.AfterEach(*[translate_trigger(t) for t in trigger.triggers])
    if kind is bt._AfterSynchronizedProcessingTime:
        return ht.AfterSynchronizedProcessingTime()
    if kind is bt._Never:
        return ht.Never()
    raise UnsupportedBeamFeature(f"the Beam trigger {trigger!r} ({kind.__module__}."
                                 f"{kind.__qualname__}) has no headrace translation")


_TIMESTAMP_COMBINERS = {
    bw.TimestampCombiner.OUTPUT_AT_EOW: hw.TimestampCombiner.OUTPUT_AT_EOW,
    bw.TimestampCombiner.OUTPUT_AT_EARLIEST: hw.TimestampCombiner.OUTPUT_AT_EARLIEST,
    bw.TimestampCombiner.OUTPUT_AT_LATEST: hw.TimestampCombiner.OUTPUT_AT_LATEST,
    bw.TimestampCombiner.OUTPUT_AT_EARLIEST_TRANSFORMED:
        hw.TimestampCombiner.OUTPUT_AT_EARLIEST_TRANSFORMED,
}


def translate_windowing(windowing: Any) -> Windowing:
    """Headrace's ``Windowing`` for a Beam ``Windowing`` (the strategy of a WindowInto)."""
    combiner = _TIMESTAMP_COMBINERS.get(windowing.timestamp_combiner)
    if combiner is None:
        raise UnsupportedBeamFeature(
            f"the Beam timestamp combiner {windowing.timestamp_combiner!r} is not supported")
    trigger = translate_trigger(windowing.triggerfn)
    mode = int(windowing.accumulation_mode) if windowing.accumulation_mode else None
    if mode is None and not isinstance(trigger, ht.DefaultTrigger):
        mode = int(ht.AccumulationMode.DISCARDING)
    return Windowing(translate_window_fn(windowing.windowfn), combiner,
                     beam_micros(windowing.allowed_lateness), trigger, mode)
