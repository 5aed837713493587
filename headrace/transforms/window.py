"""Beam's ``transforms.window`` module path: windows and window functions."""
from headrace.sdk.window import (
                                 BoundedWindow,
                                 FixedWindows,
                                 GlobalWindow,
                                 GlobalWindows,
                                 IntervalWindow,
                                 NonMergingWindowFn,
                                 Sessions,
                                 SlidingWindows,
                                 TimestampCombiner,
                                 TimestampedValue,
                                 WindowFn,
)

__all__ = ["BoundedWindow", "FixedWindows", "GlobalWindow", "GlobalWindows", "IntervalWindow",
           "NonMergingWindowFn", "Sessions", "SlidingWindows", "TimestampCombiner",
           "TimestampedValue", "WindowFn"]
