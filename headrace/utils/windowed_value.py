"""Beam's ``utils.windowed_value`` module path."""
from headrace.sdk.windowed_value import WindowedValue

__all__ = ["WindowedValue"]
