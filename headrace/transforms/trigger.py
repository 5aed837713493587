"""Beam's ``transforms.trigger`` module path: triggers and accumulation modes."""
from headrace.sdk.trigger import *  # noqa: F403  (the same names as sdk.trigger)
from headrace.sdk.trigger import __all__  # noqa: F401
