"""Beam parity for event-time windows: fixed, sliding and sessions.

Window bounds and element timestamps are turned into floats inside the pipeline
(with ``beam.DoFn.WindowParam`` and ``beam.DoFn.TimestampParam``) so that the
outputs compare as plain values.

Timestamps are compared at millisecond precision: the output of a GroupByKey is
stamped with its window's ``max_timestamp()`` (end minus 1 microsecond), but Beam's
portable runners (DirectRunner, FnApiRunner) carry timestamps across a shuffle in
milliseconds, so Beam itself shows end minus 1 millisecond there, and its
BundleBasedDirectRunner shows end minus 1 microsecond. Flooring to milliseconds makes
both of Beam's answers, and headrace's, the same value.
"""
import apache_beam  # noqa: F401  (the reference SDK; harness.py runs it)
import pytest

import headrace  # noqa: F401  (the SDK under test; harness.py runs it)

from .harness import assert_parity

# (key, value, event time in seconds)
EVENTS = [
    ("a", 1, 1.0),
    ("a", 2, 3.5),
    ("b", 3, 4.0),
    ("a", 4, 12.0),
    ("b", 5, 13.0),
    ("b", 6, 14.5),
    ("a", 7, 30.0),
    ("a", 8, 33.0),
    ("b", 9, 47.25),
]

WINDOW_FNS = {
    "fixed": lambda w: w.FixedWindows(10),
    "fixed_offset": lambda w: w.FixedWindows(10, offset=3),
    "sliding": lambda w: w.SlidingWindows(10, 5),
    "sessions": lambda w: w.Sessions(5),
}


def _millis(ts):
    """Seconds, floored to the millisecond (see the module docstring)."""
    return ts.micros // 1000 / 1000


def _window_info(beam):
    class WithWindow(beam.DoFn):
        def process(self, element, window=beam.DoFn.WindowParam, ts=beam.DoFn.TimestampParam):
            yield (element, (float(window.start), float(window.end)), _millis(ts))

    return beam.ParDo(WithWindow())


def _timestamp_info(beam):
    class WithTimestamp(beam.DoFn):
        def process(self, element, ts=beam.DoFn.TimestampParam):
            yield (element, _millis(ts))

    return beam.ParDo(WithTimestamp())


def _stamped(beam, p):
    return (
        p
        | "Events" >> beam.Create(EVENTS)
        | "Stamp" >> beam.Map(lambda e: beam.window.TimestampedValue((e[0], e[1]), e[2]))
    )


def _builder(kind):
    def build(beam, p):
        windowed = _stamped(beam, p) | "Window" >> beam.WindowInto(WINDOW_FNS[kind](beam.window))
        grouped = (
            windowed
            | "GroupByKey" >> beam.GroupByKey()
            | "SortGroups" >> beam.MapTuple(lambda k, vs: (k, sorted(vs)))
        )
        outputs = {
            "grouped": grouped | "GroupedWindows" >> _window_info(beam),
            "summed": (
                windowed
                | "SumPerKey" >> beam.CombinePerKey(sum)
                | "SummedWindows" >> _window_info(beam)
            ),
            "counted": (
                windowed
                | "CountPerKey" >> beam.combiners.Count.PerKey()
                | "CountedWindows" >> _window_info(beam)
            ),
            "values_globally": (
                windowed
                | "Values" >> beam.Values()
                | "SumGlobally" >> beam.CombineGlobally(sum).without_defaults()
                | "GloballyWindows" >> _window_info(beam)
            ),
        }
        if kind != "sessions":
            # Before any grouping, non-merging windows are visible on each element.
            outputs["assigned"] = windowed | "AssignedWindows" >> _window_info(beam)
        return outputs

    build.__qualname__ = f"build_windows_{kind}"
    return build


BUILDERS = {kind: _builder(kind) for kind in WINDOW_FNS}


@pytest.mark.parametrize("kind", sorted(WINDOW_FNS))
def test_windows(kind, runner, tmp_path):
    assert_parity(BUILDERS[kind], runner, tmp_path)


def build_timestamps(beam, p):
    """Timestamps survive element-wise steps; re-windowing into the global window."""

    class Shift(beam.DoFn):
        def process(self, kv, ts=beam.DoFn.TimestampParam):
            yield beam.window.TimestampedValue(kv, ts + 100)

    stamped = _stamped(beam, p)
    return {
        "stamped": stamped | "StampedInfo" >> _timestamp_info(beam),
        "shifted": (
            stamped | "Shift" >> beam.ParDo(Shift()) | "ShiftedInfo" >> _timestamp_info(beam)
        ),
        "regrouped": (
            stamped
            | "Fixed" >> beam.WindowInto(beam.window.FixedWindows(20))
            | "Global" >> beam.WindowInto(beam.window.GlobalWindows())
            | "GroupGlobal" >> beam.GroupByKey()
            | "SortGlobal" >> beam.MapTuple(lambda k, vs: (k, sorted(vs)))
        ),
    }


def test_timestamps(runner, tmp_path):
    assert_parity(build_timestamps, runner, tmp_path)
