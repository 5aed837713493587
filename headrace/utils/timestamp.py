"""Beam's ``utils.timestamp`` module path."""
from headrace.sdk.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP, Duration, Timestamp

__all__ = ["Duration", "MAX_TIMESTAMP", "MIN_TIMESTAMP", "Timestamp"]
