"""The windowing strategy a PCollection carries: window function and grouping policy.

>>> from headrace.sdk.window import FixedWindows
>>> from headrace.sdk.trigger import AfterCount, Repeatedly, AccumulationMode
>>> w = Windowing(FixedWindows(60), trigger=Repeatedly(AfterCount(10)),
...               accumulation_mode=AccumulationMode.ACCUMULATING)
>>> w.with_continuation().trigger
Repeatedly(AfterCount(1))
"""
from __future__ import annotations

from typing import Any, Optional

from headrace.sdk.trigger import AccumulationMode, DefaultTrigger, TriggerFn
from headrace.sdk.window import GlobalWindows, TimestampCombiner, WindowFn

_DEFAULT_TRIGGER = DefaultTrigger()


class Windowing:
    """Which windows elements go to, when grouped windows fire, and how outputs are stamped.

    ``trigger`` defaults to ``DefaultTrigger()``; ``accumulation_mode`` must be
    given with any other trigger (as in Beam) and defaults to DISCARDING.
    ``late_data_tag`` names the output of ``WindowInto(...).with_late_data_output``
    (it describes that transform, so it is not part of equality).
    """

    __slots__ = ("window_fn", "timestamp_combiner", "allowed_lateness_micros", "trigger",
                 "accumulation_mode", "late_data_tag")

    def __init__(self, window_fn: WindowFn,
                 timestamp_combiner: str = TimestampCombiner.OUTPUT_AT_EOW,
                 allowed_lateness_micros: int = 0, trigger: Optional[TriggerFn] = None,
                 accumulation_mode: Optional[int] = None,
                 late_data_tag: Optional[str] = None) -> None:
        if trigger is None:
            trigger = _DEFAULT_TRIGGER
        if accumulation_mode is None:
            if trigger != _DEFAULT_TRIGGER:
                # Beam refuses this in batch and streaming alike: the choice changes results.
                raise ValueError(f"accumulation_mode must be provided for non-trivial triggers "
                                 f"(trigger {trigger!r}): pass AccumulationMode.DISCARDING or "
                                 "AccumulationMode.ACCUMULATING")
            accumulation_mode = AccumulationMode.DISCARDING
        self.window_fn = window_fn
        self.timestamp_combiner = timestamp_combiner
        self.allowed_lateness_micros = allowed_lateness_micros
        self.trigger = trigger
        self.accumulation_mode = AccumulationMode(accumulation_mode)
        self.late_data_tag = late_data_tag

    def is_global(self) -> bool:
        return isinstance(self.window_fn, GlobalWindows)

    def is_default(self) -> bool:
        """Global windows, default trigger, discarding, end-of-window stamps, no lateness."""
        return (self.is_global() and self.trigger == _DEFAULT_TRIGGER
                and self.accumulation_mode == AccumulationMode.DISCARDING
                and self.timestamp_combiner == TimestampCombiner.OUTPUT_AT_EOW
                and self.allowed_lateness_micros == 0)

    @property
    def is_accumulating(self) -> bool:
        return self.accumulation_mode == AccumulationMode.ACCUMULATING

    def with_continuation(self) -> "Windowing":
        """The windowing of a GroupByKey's output: the trigger's continuation, as in Beam."""
        return Windowing(self.window_fn, self.timestamp_combiner, self.allowed_lateness_micros,
                         self.trigger.get_continuation_trigger(), self.accumulation_mode)

    def _key(self) -> tuple:
        return (self.window_fn, self.timestamp_combiner, self.allowed_lateness_micros,
                self.trigger, int(self.accumulation_mode))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Windowing) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self.window_fn), self.timestamp_combiner, self.trigger))

    def __repr__(self) -> str:
        extra = ""
        if self.trigger != _DEFAULT_TRIGGER:
            extra += f", {self.trigger!r}, {self.accumulation_mode.name}"
        if self.allowed_lateness_micros:
            extra += f", allowed_lateness={self.allowed_lateness_micros / 1e6:g}s"
        return f"Windowing({self.window_fn!r}, {self.timestamp_combiner}{extra})"

    def __getstate__(self) -> tuple:
        return (self.window_fn, self.timestamp_combiner, self.allowed_lateness_micros,
                self.trigger, int(self.accumulation_mode), self.late_data_tag)

    def __setstate__(self, state: tuple) -> None:
        (self.window_fn, self.timestamp_combiner, self.allowed_lateness_micros, self.trigger,
         mode, self.late_data_tag) = state
        self.accumulation_mode = AccumulationMode(mode)


DEFAULT_WINDOWING = Windowing(GlobalWindows())
