"""Trigger state machines: the runtime side of ``headrace.sdk.trigger``.

A declarative trigger compiles (:func:`compile_trigger`) into a tree of
machines. A machine holds no per-window data itself: everything it remembers
(element counts, whether the on-time pane fired, the deadline of a
processing-time delay, the position in an ``AfterEach``) lives in the
operator's ``KeyedStateBackend`` under ``trigger/<path>`` names, in the
window's namespace, and its timers live in the ``TimerService`` (family
``trigger``). So checkpointing the backend and timers covers triggers, and
merging windows merges their trigger state cell by cell
(:meth:`TriggerMachine.state_cells` says how each cell merges).

The decisions follow Beam's Python ``GeneralTriggerDriver`` (the reference
the direct runner is compared with): ``should_fire`` is evaluated once per
window per bundle and per timer; ``on_fire`` says whether the trigger is
finished; composite triggers evaluate their subtriggers as Beam's do,
including ``AfterAny`` short-circuiting. One deliberate difference, taken
from Beam's Java state machines: ``AfterProcessingTime`` remembers its
deadline and fires only once that deadline has passed, so a timer left over
from before a reset neither fires a pane nor keeps the subtrigger from
finishing inside ``AfterAny``/``AfterAll``.

>>> from headrace.sdk.trigger import AfterWatermark, AfterCount
>>> machine = compile_trigger(AfterWatermark(early=AfterCount(2)))
>>> sorted(name for name, _ in machine.state_cells())
['trigger/early/count', 'trigger/late']
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Iterable, List, Optional, Tuple

from headrace.runners.state.base import EVENT_TIME, PROCESSING_TIME, Timer
from headrace.sdk.timestamp import MAX_MICROS
from headrace.sdk.trigger import (
    AfterAll,
    AfterAny,
    AfterCount,
    AfterEach,
    AfterProcessingTime,
    AfterSynchronizedProcessingTime,
    AfterWatermark,
    Always,
    DefaultTrigger,
    Never,
    Repeatedly,
    TriggerFn,
)

#: The timer family of every timer a trigger sets.
TRIGGER_TIMERS = "trigger"
#: ``Timer.output_timestamp`` of trigger timers: they hold no watermark (the pane's hold does).
_NO_HOLD = MAX_MICROS
#: How a state cell's values from several merged windows become one.
Merge = Callable[[List[Any]], Any]


def merge_sum(values: List[Any]) -> Any:
    return sum(values)


def merge_any(values: List[Any]) -> Any:
    return any(values)


def merge_max(values: List[Any]) -> Any:
    return max(values)


def merge_min(values: List[Any]) -> Any:
    return min(values)


class TriggerContext:
    """One window of one key, as a trigger machine sees it while it is evaluated.

    ``watermark`` is the event time the evaluation happens at (the input
    watermark for a bundle, the timer's time for an event-time timer),
    ``now`` the processing time, and ``domain`` what caused the evaluation:
    ``None`` for elements, or the time domain of the timer that fired.

    >>> from headrace.runners.state.memory import MemoryStateBackend
    >>> from headrace.runners.state.base import TimerService
    >>> from headrace.sdk.window import IntervalWindow
    >>> ctx = TriggerContext(MemoryStateBackend(), TimerService(), b"k", IntervalWindow(0, 10),
    ...                      watermark=0, now=0)
    >>> count = compile_trigger(AfterCount(2))
    >>> count.on_element(ctx, 2); count.should_fire(ctx), ctx.get("trigger/count")
    (True, 2)
    """

    __slots__ = ("backend", "timers", "key", "window", "watermark", "now", "domain")

    def __init__(self, backend: Any, timers: Any, key: bytes, window: Hashable,
                 watermark: int, now: int, domain: Optional[str] = None) -> None:
        self.backend = backend
        self.timers = timers
        self.key = key
        self.window = window
        self.watermark = watermark
        self.now = now
        self.domain = domain

    def get(self, name: str, default: Any = None) -> Any:
        return self.backend.get_value(name, self.key, self.window, default)

    def put(self, name: str, value: Any) -> None:
        self.backend.put_value(name, self.key, self.window, value)

    def clear(self, name: str) -> None:
        self.backend.clear(name, self.key, self.window)

    def set_timer(self, tag: str, domain: str, fire_at: int) -> None:
        pending = self.timers.get(self.key, self.window, TRIGGER_TIMERS, tag)
        if pending is not None and pending.fire_at == fire_at and pending.domain == domain:
            return  # already set: re-setting would only add a stale heap entry
        self.timers.set(Timer(self.key, self.window, TRIGGER_TIMERS, tag, domain, fire_at,
                              _NO_HOLD))

    def clear_timer(self, tag: str) -> None:
        self.timers.delete(self.key, self.window, TRIGGER_TIMERS, tag)


class TriggerMachine:
    """A compiled trigger: decides when one key's window fires (see the module docstring)."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def children(self) -> Iterable["TriggerMachine"]:
        return ()

    def own_cells(self) -> Iterable[Tuple[str, Merge]]:
        return ()

    def own_timers(self) -> Iterable[str]:
        return ()

    def state_cells(self) -> List[Tuple[str, Merge]]:
        """Every state cell of this machine and its children, with how it merges."""
        cells = list(self.own_cells())
        for child in self.children():
            cells.extend(child.state_cells())
        return cells

    def timer_tags(self) -> List[str]:
        """Every timer tag this machine and its children may set."""
        tags = list(self.own_timers())
        for child in self.children():
            tags.extend(child.timer_tags())
        return tags

    def on_element(self, ctx: TriggerContext, count: int) -> None:
        """``count`` elements of one bundle arrived in the window."""

    def on_merge(self, ctx: TriggerContext) -> None:
        """The window was produced by a merge; its state cells are already merged."""
        for child in self.children():
            child.on_merge(ctx)

    def should_fire(self, ctx: TriggerContext) -> bool:
        raise NotImplementedError

    def on_fire(self, ctx: TriggerContext) -> bool:
        """The window fired; return whether this trigger is now finished."""
        raise NotImplementedError

    def reset(self, ctx: TriggerContext) -> None:
        for child in self.children():
            child.reset(ctx)

    def has_ontime_pane(self) -> bool:
        return False

    def is_default(self) -> bool:
        return False


class DefaultMachine(TriggerMachine):
    """``DefaultTrigger``: fire at the end of the window and on every late bundle."""

    __slots__ = ("timer",)

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix)
        self.timer = prefix + "eow"

    def own_timers(self) -> Iterable[str]:
        return (self.timer,)

    def on_element(self, ctx: TriggerContext, count: int) -> None:
        ctx.set_timer(self.timer, EVENT_TIME, ctx.window.end_micros)

    def should_fire(self, ctx: TriggerContext) -> bool:
        if ctx.watermark >= ctx.window.end_micros:
            # So that late elements do not fire the window once more when the timer pops.
            ctx.clear_timer(self.timer)
            return True
        return False

    def on_fire(self, ctx: TriggerContext) -> bool:
        return False

    def reset(self, ctx: TriggerContext) -> None:
        ctx.clear_timer(self.timer)

    def has_ontime_pane(self) -> bool:
        return True

    def is_default(self) -> bool:
        return True


class WatermarkMachine(TriggerMachine):
    """``AfterWatermark(early, late)``: early panes, the on-time pane, then late panes."""

    __slots__ = ("early", "late", "late_cell", "timer")

    def __init__(self, prefix: str, early: Optional[TriggerMachine],
                 late: Optional[TriggerMachine]) -> None:
        super().__init__(prefix)
        self.early = early
        self.late = late
        self.late_cell = "trigger/" + prefix + "late"
        self.timer = prefix + "eow"

    def children(self) -> Iterable[TriggerMachine]:
        return [m for m in (self.early, self.late) if m is not None]

    def own_cells(self) -> Iterable[Tuple[str, Merge]]:
        return ((self.late_cell, merge_any),)

    def own_timers(self) -> Iterable[str]:
        return (self.timer,)

    def _is_late(self, ctx: TriggerContext) -> bool:
        return self.late is not None and bool(ctx.get(self.late_cell))

    def on_element(self, ctx: TriggerContext, count: int) -> None:
        if self._is_late(ctx):
            self.late.on_element(ctx, count)  # type: ignore[union-attr]
            return
        ctx.set_timer(self.timer, EVENT_TIME, ctx.window.end_micros)
        if self.early is not None:
            self.early.on_element(ctx, count)

    def on_merge(self, ctx: TriggerContext) -> None:
        if self._is_late(ctx):
            self.late.on_merge(ctx)  # type: ignore[union-attr]
        elif self.early is not None:
            self.early.on_merge(ctx)

    def should_fire(self, ctx: TriggerContext) -> bool:
        if self._is_late(ctx):
            return self.late.should_fire(ctx)  # type: ignore[union-attr]
        if ctx.watermark >= ctx.window.end_micros:
            ctx.clear_timer(self.timer)
            return True
        if self.early is not None:
            return self.early.should_fire(ctx)
        return False

    def on_fire(self, ctx: TriggerContext) -> bool:
        if self._is_late(ctx):
            return self.late.on_fire(ctx)  # type: ignore[union-attr]
        if ctx.watermark >= ctx.window.end_micros:
            ctx.put(self.late_cell, True)
            return self.late is None
        if self.early is not None:
            self.early.on_fire(ctx)
        return False

    def reset(self, ctx: TriggerContext) -> None:
        # The end-of-window timer stays, as in Beam: the on-time pane still fires.
        if self.late is not None:
            ctx.clear(self.late_cell)
        super().reset(ctx)

    def has_ontime_pane(self) -> bool:
        return True


class CountMachine(TriggerMachine):
    """``AfterCount(n)``."""

    __slots__ = ("count", "cell")

    def __init__(self, prefix: str, count: int) -> None:
        super().__init__(prefix)
        self.count = count
        self.cell = "trigger/" + prefix + "count"

    def own_cells(self) -> Iterable[Tuple[str, Merge]]:
        return ((self.cell, merge_sum),)

    def on_element(self, ctx: TriggerContext, count: int) -> None:
        ctx.put(self.cell, ctx.get(self.cell, 0) + count)

    def should_fire(self, ctx: TriggerContext) -> bool:
        return ctx.get(self.cell, 0) >= self.count

    def on_fire(self, ctx: TriggerContext) -> bool:
        return True

    def reset(self, ctx: TriggerContext) -> None:
        ctx.clear(self.cell)


class ProcessingTimeMachine(TriggerMachine):
    """``AfterProcessingTime(delay)``: fire when a timer ``delay`` after the first element pops.

    The deadline is kept in state (merged windows take the earliest), and the
    trigger fires only on a processing-time timer at or after it.
    """

    __slots__ = ("delay", "cell", "timer")

    def __init__(self, prefix: str, delay: int) -> None:
        super().__init__(prefix)
        self.delay = delay
        self.cell = "trigger/" + prefix + "deadline"
        self.timer = prefix + "delay"

    def own_cells(self) -> Iterable[Tuple[str, Merge]]:
        return ((self.cell, merge_min),)

    def own_timers(self) -> Iterable[str]:
        return (self.timer,)

    def on_element(self, ctx: TriggerContext, count: int) -> None:
        if ctx.get(self.cell) is None:
            deadline = ctx.now + self.delay
            ctx.put(self.cell, deadline)
            ctx.set_timer(self.timer, PROCESSING_TIME, deadline)

    def on_merge(self, ctx: TriggerContext) -> None:
        deadline = ctx.get(self.cell)
        if deadline is not None:
            ctx.set_timer(self.timer, PROCESSING_TIME, deadline)

    def should_fire(self, ctx: TriggerContext) -> bool:
        if ctx.domain != PROCESSING_TIME:
            return False
        deadline = ctx.get(self.cell)
        return deadline is not None and deadline <= ctx.now

    def on_fire(self, ctx: TriggerContext) -> bool:
        return True

    def reset(self, ctx: TriggerContext) -> None:
        ctx.clear(self.cell)
        ctx.clear_timer(self.timer)


class AlwaysMachine(TriggerMachine):
    """``Always`` and ``AfterSynchronizedProcessingTime``: fire on every evaluation."""

    __slots__ = ()

    def should_fire(self, ctx: TriggerContext) -> bool:
        return True

    def on_fire(self, ctx: TriggerContext) -> bool:
        return False


class NeverMachine(TriggerMachine):
    """``Never``: never fires (the window's garbage collection emits what it holds)."""

    __slots__ = ()

    def should_fire(self, ctx: TriggerContext) -> bool:
        return False

    def on_fire(self, ctx: TriggerContext) -> bool:
        return True


class RepeatedlyMachine(TriggerMachine):
    """``Repeatedly(t)``: reset ``t`` whenever it finishes; never finishes itself."""

    __slots__ = ("underlying",)

    def __init__(self, prefix: str, underlying: TriggerMachine) -> None:
        super().__init__(prefix)
        self.underlying = underlying

    def children(self) -> Iterable[TriggerMachine]:
        return (self.underlying,)

    def on_element(self, ctx: TriggerContext, count: int) -> None:
        self.underlying.on_element(ctx, count)

    def should_fire(self, ctx: TriggerContext) -> bool:
        return self.underlying.should_fire(ctx)

    def on_fire(self, ctx: TriggerContext) -> bool:
        if self.underlying.on_fire(ctx):
            self.underlying.reset(ctx)
        return False

    def has_ontime_pane(self) -> bool:
        return self.underlying.has_ontime_pane()


class ParallelMachine(TriggerMachine):
    """``AfterAny``/``AfterAll`` (and ``OrFinally``, an ``AfterAny``)."""

    __slots__ = ("subs", "combine")

    def __init__(self, prefix: str, subs: List[TriggerMachine],
                 combine: Callable[[Iterable[bool]], bool]) -> None:
        super().__init__(prefix)
        self.subs = subs
        self.combine = combine

    def children(self) -> Iterable[TriggerMachine]:
        return self.subs

    def on_element(self, ctx: TriggerContext, count: int) -> None:
        for sub in self.subs:
            sub.on_element(ctx, count)

    def should_fire(self, ctx: TriggerContext) -> bool:
        # A generator, so that any/all stop early exactly as Beam's do: a subtrigger not
        # consulted keeps its timer.
        return self.combine(sub.should_fire(ctx) for sub in self.subs)

    def on_fire(self, ctx: TriggerContext) -> bool:
        finished = [sub.on_fire(ctx) for sub in self.subs if sub.should_fire(ctx)]
        return self.combine(finished)

    def has_ontime_pane(self) -> bool:
        return any(sub.has_ontime_pane() for sub in self.subs)


class SequenceMachine(TriggerMachine):
    """``AfterEach``: the subtriggers in turn; the current index is kept in state."""

    __slots__ = ("subs", "cell")

    def __init__(self, prefix: str, subs: List[TriggerMachine]) -> None:
        super().__init__(prefix)
        self.subs = subs
        self.cell = "trigger/" + prefix + "index"

    def children(self) -> Iterable[TriggerMachine]:
        return self.subs

    def own_cells(self) -> Iterable[Tuple[str, Merge]]:
        # Merged windows continue from the furthest subtrigger, as in Beam.
        return ((self.cell, merge_max),)

    def _current(self, ctx: TriggerContext) -> Optional[TriggerMachine]:
        index = ctx.get(self.cell, 0)
        return self.subs[index] if index < len(self.subs) else None

    def on_element(self, ctx: TriggerContext, count: int) -> None:
        current = self._current(ctx)
        if current is not None:
            current.on_element(ctx, count)

    def on_merge(self, ctx: TriggerContext) -> None:
        current = self._current(ctx)
        if current is not None:
            current.on_merge(ctx)

    def should_fire(self, ctx: TriggerContext) -> bool:
        current = self._current(ctx)
        return current is not None and current.should_fire(ctx)

    def on_fire(self, ctx: TriggerContext) -> bool:
        index = ctx.get(self.cell, 0)
        if index >= len(self.subs):
            return False
        if self.subs[index].on_fire(ctx):
            index += 1
            ctx.put(self.cell, index)
        return index == len(self.subs)

    def reset(self, ctx: TriggerContext) -> None:
        ctx.clear(self.cell)
        super().reset(ctx)

    def has_ontime_pane(self) -> bool:
        return any(sub.has_ontime_pane() for sub in self.subs)


def compile_trigger(trigger: TriggerFn, prefix: str = "") -> TriggerMachine:
    """The state machine of ``trigger``; state and timer names start with ``prefix``."""
    if isinstance(trigger, DefaultTrigger):
        return DefaultMachine(prefix)
    if isinstance(trigger, AfterWatermark):
        early = compile_trigger(trigger.early, prefix + "early/") if trigger.early else None
        late = compile_trigger(trigger.late, prefix + "late/") if trigger.late else None
        return WatermarkMachine(prefix, early, late)
    if isinstance(trigger, AfterCount):
        return CountMachine(prefix, trigger.count)
    if isinstance(trigger, AfterProcessingTime):
        return ProcessingTimeMachine(prefix, trigger.delay_micros)
    if isinstance(trigger, (Always, AfterSynchronizedProcessingTime)):
        return AlwaysMachine(prefix)
    if isinstance(trigger, Never):
        return NeverMachine(prefix)
    if isinstance(trigger, Repeatedly):
        return RepeatedlyMachine(prefix, compile_trigger(trigger.underlying, prefix))
    if isinstance(trigger, (AfterAny, AfterAll)):
        subs = [compile_trigger(t, f"{prefix}{i}/") for i, t in enumerate(trigger.triggers)]
        return ParallelMachine(prefix, subs, any if isinstance(trigger, AfterAny) else all)
    if isinstance(trigger, AfterEach):
        subs = [compile_trigger(t, f"{prefix}{i}/") for i, t in enumerate(trigger.triggers)]
        return SequenceMachine(prefix, subs)
    raise TypeError(f"No runtime for trigger {trigger!r} ({type(trigger).__name__})")
