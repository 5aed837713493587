"""Triggers: when a window's contents are emitted as panes (Beam's ``transforms.trigger``).

Triggers here are plain declarative values: they compare equal by content,
pickle, and know nothing about how a runner evaluates them. Each runner
compiles them into state machines (``headrace/runners/common/triggers.py``)
that keep their state in the runner's keyed state backend.

>>> from headrace.sdk.trigger import AfterWatermark, AfterCount, AfterProcessingTime
>>> AfterWatermark(early=AfterProcessingTime(60), late=AfterCount(1))
AfterWatermark(early=AfterProcessingTime(delay=60), late=AfterCount(1))
>>> AfterCount(2) == AfterCount(2), AccumulationMode.DISCARDING
(True, <AccumulationMode.DISCARDING: 1>)
"""
from __future__ import annotations

import enum
import numbers
from typing import Any, Optional, Tuple

from headrace.sdk.timestamp import Duration

__all__ = [
    "AccumulationMode", "AfterAll", "AfterAny", "AfterCount", "AfterEach",
    "AfterProcessingTime", "AfterSynchronizedProcessingTime", "AfterWatermark", "Always",
    "DataLossReason", "DefaultTrigger", "Never", "OrFinally", "Repeatedly", "TriggerFn",
]


class AccumulationMode(enum.IntEnum):
    """What a window keeps after a pane fires.

    ``DISCARDING`` starts the next pane empty; ``ACCUMULATING`` makes every
    pane contain all the window's elements so far. The values are Beam's
    (its portable protocol's numbers), so translating to Beam is an identity.

    >>> AccumulationMode.ACCUMULATING == 2
    True
    """

    DISCARDING = 1
    ACCUMULATING = 2


class DataLossReason(enum.Flag):
    """Why a trigger may lose data (``TriggerFn.may_lose_data``), as Beam reports it."""

    NO_POTENTIAL_LOSS = 0
    #: The trigger may finish: elements arriving afterwards are dropped.
    MAY_FINISH = enum.auto()


class TriggerFn:
    """Base class of triggers.

    Subclasses are immutable descriptions: ``_key()`` gives what equality,
    hashing and pickling are based on.
    """

    def _key(self) -> tuple:
        return ()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._key() == other._key()  # type: ignore

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def has_ontime_pane(self) -> bool:
        """Whether the trigger always fires once when the watermark passes the window's end."""
        return False

    def may_lose_data(self, windowing: Any) -> DataLossReason:
        """Whether the trigger can finish, dropping what arrives later (Beam's check)."""
        return DataLossReason.NO_POTENTIAL_LOSS

    def get_continuation_trigger(self) -> "TriggerFn":
        """The trigger a GroupByKey's output gets, keeping this one's intent downstream."""
        return self

    def orfinally(self, until: "TriggerFn") -> "OrFinally":
        """Fire as this trigger does, but finish for good once ``until`` fires (Java's orFinally).

        >>> Repeatedly(AfterCount(2)).orfinally(AfterCount(5))
        OrFinally(Repeatedly(AfterCount(2)), AfterCount(5))
        """
        return OrFinally(self, until)

    # Beam's Java spelling, for users porting pipelines.
    orFinally = orfinally  # noqa: N815


def _check_trigger(owner: str, trigger: Any) -> "TriggerFn":
    if isinstance(trigger, type) and issubclass(trigger, TriggerFn):
        raise TypeError(f"{owner}: needs a trigger instance, got the class {trigger.__name__} "
                        f"(write {trigger.__name__}(...))")
    if not isinstance(trigger, TriggerFn):
        raise TypeError(f"{owner}: expected a trigger such as AfterCount(1), "
                        f"got {trigger!r:.100}")
    return trigger


def _may_finish(reason: DataLossReason) -> bool:
    return bool(reason & DataLossReason.MAY_FINISH)


class DefaultTrigger(TriggerFn):
    """Fire when the watermark passes the end of the window, then once per late element.

    Semantically ``Repeatedly(AfterWatermark())``; what ``WindowInto`` uses by default.

    >>> DefaultTrigger() == DefaultTrigger()
    True
    """

    def __repr__(self) -> str:
        return "DefaultTrigger()"

    def has_ontime_pane(self) -> bool:
        return True


class AfterWatermark(TriggerFn):
    """Fire once when the watermark passes the end of the window.

    ``early`` fires speculative panes before that, ``late`` fires panes for
    late data after it; both repeat (they are wrapped in ``Repeatedly``).

    >>> AfterWatermark(early=AfterCount(10)).early
    Repeatedly(AfterCount(10))
    """

    def __init__(self, early: Optional[TriggerFn] = None,
                 late: Optional[TriggerFn] = None) -> None:
        self.early = self._repeated("early", early)
        self.late = self._repeated("late", late)

    @staticmethod
    def _repeated(what: str, trigger: Optional[TriggerFn]) -> Optional["Repeatedly"]:
        if trigger is None:
            return None
        _check_trigger(f"AfterWatermark({what}=...)", trigger)
        return trigger if isinstance(trigger, Repeatedly) else Repeatedly(trigger)

    def _key(self) -> tuple:
        return (self.early, self.late)

    def __repr__(self) -> str:
        parts = []
        if self.early is not None:
            parts.append(f"early={self.early.underlying!r}")
        if self.late is not None:
            parts.append(f"late={self.late.underlying!r}")
        return f"AfterWatermark({', '.join(parts)})"

    def has_ontime_pane(self) -> bool:
        return True

    def may_lose_data(self, windowing: Any) -> DataLossReason:
        if not getattr(windowing, "allowed_lateness_micros", 0):
            return DataLossReason.NO_POTENTIAL_LOSS
        if self.late is None:
            return DataLossReason.MAY_FINISH
        return self.late.may_lose_data(windowing)

    def get_continuation_trigger(self) -> "AfterWatermark":
        return AfterWatermark(
            self.early.get_continuation_trigger() if self.early else None,
            self.late.get_continuation_trigger() if self.late else None)


class AfterProcessingTime(TriggerFn):
    """Fire once, ``delay`` seconds of processing time after the pane's first element.

    >>> AfterProcessingTime(30).delay_micros
    30000000
    """

    def __init__(self, delay: Any = 0) -> None:
        if isinstance(delay, bool) or not isinstance(delay, (numbers.Real, Duration)):
            raise TypeError(f"AfterProcessingTime: delay must be a number of seconds or a "
                            f"Duration, got {delay!r:.100}")
        self.delay_micros = Duration.of(delay).micros
        if self.delay_micros < 0:
            raise ValueError(f"AfterProcessingTime: delay must not be negative, got {delay!r}")

    @property
    def delay(self) -> float:
        """The delay in seconds (Beam's attribute)."""
        seconds = self.delay_micros / 1_000_000
        return int(seconds) if seconds == int(seconds) else seconds

    def _key(self) -> tuple:
        return (self.delay_micros,)

    def __repr__(self) -> str:
        return f"AfterProcessingTime(delay={self.delay})"

    def may_lose_data(self, windowing: Any) -> DataLossReason:
        return DataLossReason.MAY_FINISH

    def get_continuation_trigger(self) -> "AfterSynchronizedProcessingTime":
        return AfterSynchronizedProcessingTime()


class AfterSynchronizedProcessingTime(TriggerFn):
    """The continuation of ``AfterProcessingTime`` downstream of a GroupByKey.

    Fires whenever data arrives (the upstream processing-time trigger already
    decided when the data moves), as Beam's Python runners do.
    """

    def __repr__(self) -> str:
        return "AfterSynchronizedProcessingTime()"


class Always(TriggerFn):
    """Fire after every bundle of elements, forever.

    >>> Always().may_lose_data(None)
    <DataLossReason.NO_POTENTIAL_LOSS: 0>
    """

    def __repr__(self) -> str:
        return "Always"


class Never(TriggerFn):
    """Never fire: a window's elements are emitted once, when the window is garbage-collected
    (after the watermark passes its end plus the allowed lateness). Beam's ``_Never``.

    >>> Never().may_lose_data(None)
    <DataLossReason.NO_POTENTIAL_LOSS: 0>
    """

    def __repr__(self) -> str:
        return "Never"


class AfterCount(TriggerFn):
    """Fire once the pane has at least ``count`` elements.

    >>> AfterCount(3).count
    3
    """

    def __init__(self, count: int) -> None:
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
            raise ValueError(f"AfterCount: count must be a positive integer, got {count!r}")
        self.count = int(count)

    def _key(self) -> tuple:
        return (self.count,)

    def __repr__(self) -> str:
        return f"AfterCount({self.count})"

    def may_lose_data(self, windowing: Any) -> DataLossReason:
        return DataLossReason.MAY_FINISH

    def get_continuation_trigger(self) -> "AfterCount":
        return AfterCount(1)


class Repeatedly(TriggerFn):
    """Fire every time ``underlying`` fires, starting it afresh each time; never finishes.

    >>> Repeatedly(AfterCount(100)).underlying
    AfterCount(100)
    """

    def __init__(self, underlying: TriggerFn) -> None:
        self.underlying = _check_trigger("Repeatedly", underlying)

    def _key(self) -> tuple:
        return (self.underlying,)

    def __repr__(self) -> str:
        return f"Repeatedly({self.underlying!r})"

    def has_ontime_pane(self) -> bool:
        return self.underlying.has_ontime_pane()

    def get_continuation_trigger(self) -> "Repeatedly":
        return Repeatedly(self.underlying.get_continuation_trigger())


class _ParallelTrigger(TriggerFn):
    """Subtriggers evaluated side by side (``AfterAny``, ``AfterAll``)."""

    def __init__(self, *triggers: TriggerFn) -> None:
        name = type(self).__name__
        if not triggers:
            raise ValueError(f"{name}: needs at least one subtrigger")
        self.triggers: Tuple[TriggerFn, ...] = tuple(_check_trigger(name, t) for t in triggers)

    def _key(self) -> tuple:
        return self.triggers

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(t) for t in self.triggers)})"

    def has_ontime_pane(self) -> bool:
        return any(t.has_ontime_pane() for t in self.triggers)

    def get_continuation_trigger(self) -> "TriggerFn":
        return type(self)(*(t.get_continuation_trigger() for t in self.triggers))


class AfterAny(_ParallelTrigger):
    """Fire when any subtrigger fires; finished when any subtrigger is.

    >>> AfterAny(AfterCount(100), AfterProcessingTime(60))
    AfterAny(AfterCount(100), AfterProcessingTime(delay=60))
    """

    def may_lose_data(self, windowing: Any) -> DataLossReason:
        if any(_may_finish(t.may_lose_data(windowing)) for t in self.triggers):
            return DataLossReason.MAY_FINISH
        return DataLossReason.NO_POTENTIAL_LOSS


class AfterAll(_ParallelTrigger):
    """Fire when all subtriggers are ready to fire; finished when all of them are.

    >>> AfterAll(AfterCount(2), AfterWatermark()).has_ontime_pane()
    True
    """

    def may_lose_data(self, windowing: Any) -> DataLossReason:
        if all(_may_finish(t.may_lose_data(windowing)) for t in self.triggers):
            return DataLossReason.MAY_FINISH
        return DataLossReason.NO_POTENTIAL_LOSS


class OrFinally(AfterAny):
    """Fire as ``trigger`` does until ``until`` fires, which finishes the window.

    >>> OrFinally(Repeatedly(AfterCount(2)), AfterCount(5)).triggers[1]
    AfterCount(5)
    """

    def __init__(self, trigger: TriggerFn, until: TriggerFn) -> None:
        super().__init__(trigger, until)


class AfterEach(TriggerFn):
    """Fire as each subtrigger does, one after the other; finished after the last.

    >>> AfterEach(AfterCount(1), AfterWatermark()).triggers[0]
    AfterCount(1)
    """

    def __init__(self, *triggers: TriggerFn) -> None:
        if not triggers:
            raise ValueError("AfterEach: needs at least one subtrigger")
        self.triggers: Tuple[TriggerFn, ...] = tuple(_check_trigger("AfterEach", t)
                                                     for t in triggers)

    def _key(self) -> tuple:
        return self.triggers

    def __repr__(self) -> str:
        return f"AfterEach({', '.join(repr(t) for t in self.triggers)})"

    def has_ontime_pane(self) -> bool:
        return any(t.has_ontime_pane() for t in self.triggers)

    def may_lose_data(self, windowing: Any) -> DataLossReason:
        if all(_may_finish(t.may_lose_data(windowing)) for t in self.triggers):
            return DataLossReason.MAY_FINISH
        return DataLossReason.NO_POTENTIAL_LOSS

    def get_continuation_trigger(self) -> Repeatedly:
        return Repeatedly(AfterAny(*(t.get_continuation_trigger() for t in self.triggers)))


def check_trigger(owner: str, trigger: Any) -> TriggerFn:
    """Validate that ``trigger`` is a trigger instance; errors name ``owner``."""
    return _check_trigger(owner, trigger)
