"""Time domains for timers, as Beam's ``apache_beam.transforms.timeutil``.

A timer is set in one of two domains: event time (it fires when the input
watermark reaches its timestamp) or processing time (it fires when the
runner's clock does).

>>> TimeDomain.is_event_time(TimeDomain.WATERMARK)
True
>>> TimeDomain.from_string("REAL_TIME")
'REAL_TIME'
"""
from __future__ import annotations

__all__ = ["TimeDomain"]


class TimeDomain:
    """The clock a timer follows; the values are Beam's strings.

    >>> TimeDomain.is_event_time(TimeDomain.REAL_TIME)
    False
    """

    #: Event time: the timer fires once the input watermark reaches its timestamp.
    WATERMARK = "WATERMARK"
    #: Processing time: the timer fires once the runner's clock reaches its timestamp.
    REAL_TIME = "REAL_TIME"
    #: Beam's synchronized processing time; no user timer may use it (as in Beam).
    DEPENDENT_REAL_TIME = "DEPENDENT_REAL_TIME"

    @staticmethod
    def from_string(domain: str) -> str:
        """Validate a domain name and return it."""
        if domain in (TimeDomain.WATERMARK, TimeDomain.REAL_TIME,
                      TimeDomain.DEPENDENT_REAL_TIME):
            return domain
        raise ValueError(f"Unknown time domain: {domain!r}")

    @staticmethod
    def is_event_time(domain: str) -> bool:
        """Whether ``domain`` is event time (the watermark)."""
        return TimeDomain.from_string(domain) == TimeDomain.WATERMARK
