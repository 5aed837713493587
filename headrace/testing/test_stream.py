"""Beam's ``testing.test_stream`` module path."""
from headrace.sdk.test_stream import ElementEvent, ProcessingTimeEvent, TestStream, WatermarkEvent

__all__ = ["ElementEvent", "ProcessingTimeEvent", "TestStream", "WatermarkEvent"]
