"""Event-time instants and durations, microsecond precision as in Beam.

Runners carry timestamps as plain ``int`` microseconds (cheap to compare and
hash); :class:`Timestamp` is the user-facing view handed to ``DoFn`` s.
"""
from __future__ import annotations

import datetime
import functools
import numbers
from typing import Union

MIN_MICROS = -0x7FFFFFFFFFFFFFFF - 1
MAX_MICROS = 0x7FFFFFFFFFFFFFFF
#: Beam's end of the global window (exclusive): the maximum timestamp minus one day.
GLOBAL_WINDOW_END_MICROS = 9223371950454775 * 1000

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _to_micros(value: object, what: str) -> int:
    # Plain floats and ints first: the per-element case (e.g. TimestampedValue in a Map).
    kind = type(value)
    if kind is float:
        return round(value * 1_000_000)  # an int already
    if kind is int:
        return value * 1_000_000
    if isinstance(value, (Timestamp, Duration)):
        return value.micros
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number of seconds, a Timestamp or a datetime, not bool")
    if isinstance(value, numbers.Integral):
        return int(value) * 1_000_000
    if isinstance(value, numbers.Real):
        return int(round(float(value) * 1_000_000))
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise TypeError(
        f"{what} must be a number of seconds, a Timestamp or a datetime, "
        f"not {type(value).__name__}: {value!r:.100}")


def to_micros(value: object, what: str = "timestamp") -> int:
    """Convert seconds, a :class:`Timestamp` or a ``datetime`` to int microseconds.

    >>> to_micros(1.5)
    1500000
    """
    kind = type(value)
    if kind is float:
        return round(value * 1_000_000)  # an int already
    if kind is int:
        return value * 1_000_000
    return _to_micros(value, what)


@functools.total_ordering
class Timestamp:
    """An instant in event time, in microseconds since the Unix epoch.

    >>> Timestamp(1.5).micros
    1500000
    >>> Timestamp(10) + Duration(5) == Timestamp(15)
    True
    """

    __slots__ = ("micros",)

    def __init__(self, seconds: Union[int, float] = 0, micros: int = 0) -> None:
        self.micros = _to_micros(seconds, "Timestamp seconds") + int(micros)

    @classmethod
    def of(cls, value: object) -> "Timestamp":
        """Coerce seconds, a datetime or a Timestamp to a Timestamp."""
        if isinstance(value, Timestamp):
            return value
        return cls(micros=_to_micros(value, "timestamp"))

    @classmethod
    def from_micros(cls, micros: int) -> "Timestamp":
        return cls(micros=micros)

    @classmethod
    def from_utc_datetime(cls, dt: datetime.datetime) -> "Timestamp":
        if dt.tzinfo is None:
            raise ValueError("from_utc_datetime needs a timezone-aware datetime")
        return cls(micros=_to_micros(dt, "datetime"))

    @classmethod
    def from_rfc3339(cls, text: str) -> "Timestamp":
        dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return cls.of(dt)

    @classmethod
    def now(cls) -> "Timestamp":
        return cls.of(datetime.datetime.now(datetime.timezone.utc))

    def seconds(self) -> float:
        return self.micros / 1_000_000

    def to_utc_datetime(self) -> datetime.datetime:
        return _EPOCH + datetime.timedelta(microseconds=self.micros)

    def to_rfc3339(self) -> str:
        """``1970-01-01T00:01:00Z``; fractional seconds only when there are any, as in Beam."""
        return self.to_utc_datetime().replace(tzinfo=None).isoformat() + "Z"

    def __float__(self) -> float:
        return self.micros / 1_000_000

    def __int__(self) -> int:
        return self.micros // 1_000_000

    def __repr__(self) -> str:
        if self.micros == MIN_MICROS:
            return "Timestamp(-inf)"
        if self.micros == MAX_MICROS:
            return "Timestamp(inf)"
        sign = "-" if self.micros < 0 else ""
        whole, frac = divmod(abs(self.micros), 1_000_000)
        return f"Timestamp({sign}{whole}.{frac:06d})" if frac else f"Timestamp({sign}{whole})"

    def __eq__(self, other: object) -> bool:
        try:
            return self.micros == _to_micros(other, "timestamp")
        except TypeError:
            return NotImplemented

    def __lt__(self, other: object) -> bool:
        return self.micros < _to_micros(other, "timestamp")

    def __hash__(self) -> int:
        return hash(self.micros)

    def __add__(self, other: object) -> "Timestamp":
        if isinstance(other, Timestamp):
            raise TypeError("cannot add two Timestamps")
        return Timestamp(micros=self.micros + _to_micros(other, "duration"))

    __radd__ = __add__

    def __sub__(self, other: object):
        if isinstance(other, Timestamp):
            return Duration(micros=self.micros - other.micros)
        return Timestamp(micros=self.micros - _to_micros(other, "duration"))

    def __mod__(self, other: object) -> "Duration":
        return Duration(micros=self.micros % _to_micros(other, "duration"))

    def __reduce__(self):
        return (Timestamp, (0, self.micros))


@functools.total_ordering
class Duration:
    """A span of event time in microseconds.

    >>> Duration(seconds=2).micros
    2000000
    """

    __slots__ = ("micros",)

    def __init__(self, seconds: Union[int, float] = 0, micros: int = 0) -> None:
        self.micros = _to_micros(seconds, "Duration seconds") + int(micros)

    @classmethod
    def of(cls, value: object) -> "Duration":
        if isinstance(value, Duration):
            return value
        if isinstance(value, datetime.timedelta):
            return cls(micros=(value.days * 86_400 + value.seconds) * 1_000_000
                       + value.microseconds)
        return cls(micros=_to_micros(value, "duration"))

    def seconds(self) -> float:
        return self.micros / 1_000_000

    def __float__(self) -> float:
        return self.micros / 1_000_000

    def __repr__(self) -> str:
        return f"Duration({self.micros / 1_000_000:g})"

    def __eq__(self, other: object) -> bool:
        try:
            return self.micros == _to_micros(other, "duration")
        except TypeError:
            return NotImplemented

    def __lt__(self, other: object) -> bool:
        return self.micros < _to_micros(other, "duration")

    def __hash__(self) -> int:
        return hash(self.micros)

    def __neg__(self) -> "Duration":
        return Duration(micros=-self.micros)

    def __add__(self, other: object):
        if isinstance(other, Timestamp):
            return Timestamp(micros=self.micros + other.micros)
        return Duration(micros=self.micros + _to_micros(other, "duration"))

    __radd__ = __add__

    def __sub__(self, other: object) -> "Duration":
        return Duration(micros=self.micros - _to_micros(other, "duration"))

    def __mul__(self, factor: Union[int, float]) -> "Duration":
        return Duration(micros=int(self.micros * factor))

    def __reduce__(self):
        return (Duration, (0, self.micros))


MIN_TIMESTAMP = Timestamp(micros=MIN_MICROS)
MAX_TIMESTAMP = Timestamp(micros=MAX_MICROS)
