"""Beam's ``transforms.timeutil`` module path: the time domains of timers."""
from headrace.sdk.timeutil import TimeDomain

__all__ = ["TimeDomain"]
