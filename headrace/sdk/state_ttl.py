"""State time-to-live, Flink's ``StateTtlConfig`` in Beam's style.

A state spec given ``ttl=StateTtl(...)`` forgets what was stored in it once
that much *processing time* has passed since it was last written (or, with
``ON_READ_AND_WRITE``, last read or written), as Flink does. Expired state is
never returned (Flink's ``NeverReturnExpired``). A value and a combining
state expire as a whole; bags and sets expire per element, maps per entry.

>>> from headrace.sdk.timestamp import Duration
>>> ttl = StateTtl(Duration(60), update=StateTtl.ON_READ_AND_WRITE)
>>> ttl.ttl_micros, ttl.refresh_on_read
(60000000, True)
>>> StateTtl(60).expired(written_at=0, now=60_000_000)
True
"""
from __future__ import annotations

import enum
from typing import Any

from headrace.sdk.timestamp import Duration

__all__ = ["StateTtl", "TtlUpdate"]


class TtlUpdate(enum.IntFlag):
    """Which accesses restart an entry's time to live (Flink's ``UpdateType``).

    ``ON_READ_AND_WRITE`` includes the write bit, so ``A | B`` of the two is
    ``ON_READ_AND_WRITE``: the union of what refreshes.

    >>> TtlUpdate.ON_CREATE_AND_WRITE | TtlUpdate.ON_READ_AND_WRITE
    <TtlUpdate.ON_READ_AND_WRITE: 3>
    """

    ON_CREATE_AND_WRITE = 1
    ON_READ_AND_WRITE = 3


class StateTtl:
    """Time to live of a state cell's contents, measured in processing time.

    ``ttl`` is a :class:`Duration` or a number of seconds. ``update`` says
    whether reads also restart the time to live. An entry written at ``t``
    is expired from ``t + ttl`` on (Flink's rule: expired when
    ``last_access + ttl <= now``). Expired state is removed lazily when it
    is accessed and by the runner's periodic cleanup pass.

    >>> from headrace.sdk.userstate import BagStateSpec
    >>> spec = BagStateSpec("seen", ttl=StateTtl(Duration(60)))
    >>> spec.ttl.update is StateTtl.ON_CREATE_AND_WRITE
    True
    """

    ON_CREATE_AND_WRITE = TtlUpdate.ON_CREATE_AND_WRITE
    ON_READ_AND_WRITE = TtlUpdate.ON_READ_AND_WRITE
    #: Flink's ``StateVisibility.NeverReturnExpired``: the only visibility supported.
    NEVER_RETURN_EXPIRED = "NEVER_RETURN_EXPIRED"

    __slots__ = ("ttl_micros", "update", "visibility")

    def __init__(self, ttl: Any, update: Any = TtlUpdate.ON_CREATE_AND_WRITE,
                 visibility: str = NEVER_RETURN_EXPIRED) -> None:
        micros = Duration.of(ttl).micros
        if micros <= 0:
            raise ValueError(f"StateTtl needs a positive time to live, got {ttl!r}")
        # IntFlag would accept any int; only the two update types mean something.
        if update not in (TtlUpdate.ON_CREATE_AND_WRITE, TtlUpdate.ON_READ_AND_WRITE):
            raise ValueError(f"StateTtl update must be StateTtl.ON_CREATE_AND_WRITE or "
                             f"StateTtl.ON_READ_AND_WRITE, got {update!r}")
        update = TtlUpdate(update)
        if visibility != StateTtl.NEVER_RETURN_EXPIRED:
            # Returning expired-but-not-yet-cleaned state would make results depend on
            # when cleanup happened to run, which a reference runner must not.
            raise ValueError(f"StateTtl supports only visibility=StateTtl.NEVER_RETURN_EXPIRED, "
                             f"got {visibility!r}")
        self.ttl_micros = micros
        self.update = update
        self.visibility = visibility

    @property
    def ttl(self) -> Duration:
        return Duration(micros=self.ttl_micros)

    @property
    def refresh_on_read(self) -> bool:
        """Whether a read restarts the time to live of what it returns."""
        return bool(self.update & TtlUpdate.ON_READ_AND_WRITE & ~TtlUpdate.ON_CREATE_AND_WRITE)

    def expired(self, written_at: int, now: int) -> bool:
        """Whether an entry last refreshed at ``written_at`` (micros) is expired at ``now``."""
        return written_at + self.ttl_micros <= now

    def expires_at(self, written_at: int) -> int:
        return written_at + self.ttl_micros

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, StateTtl) and self.ttl_micros == other.ttl_micros
                and self.update == other.update and self.visibility == other.visibility)

    def __hash__(self) -> int:
        return hash((self.ttl_micros, int(self.update)))

    def __repr__(self) -> str:
        return f"StateTtl({self.ttl!r}, update={self.update.name})"

    def __reduce__(self):
        return (StateTtl, (Duration(micros=self.ttl_micros), int(self.update), self.visibility))
