"""Triggers on GroupByKey and CombinePerKey: panes identical to Beam's, scenario by scenario.

Every test replays one TestStream script on Beam (BundleBasedDirectRunner,
streaming) and on headrace, and compares every pane: values, window,
timestamp, timing, index, non-speculative index, first/last
(``pane_parity.py``). Processing-time scenarios keep processing time below
the windows' ends: Beam's Python driver compares a processing-time timer's
time with the window's end to decide on-time-ness, which only agrees with
the model (and with headrace) while the two clocks cannot be confused.
"""
import apache_beam.transforms.trigger  # noqa: F401  (so beam.transforms.trigger resolves)
import pytest

import headrace.transforms.trigger  # noqa: F401

from .pane_parity import assert_same_panes, system_counter

MODES = ["DISCARDING", "ACCUMULATING"]


def _kv(key, *pairs):
    """``[((key, value), time), ...]`` from ``(value, time)`` pairs."""
    return [((key, value), t) for value, t in pairs]


def windowed(window_fn, trigger=None, mode="DISCARDING", lateness=0, combiner=None,
             combine=False):
    """A builder: WindowInto(window_fn(beam.window), trigger(t), ...) | GroupByKey/CombinePerKey."""
    def build(beam):
        t = beam.transforms.trigger
        kwargs = {}
        if trigger is not None:
            kwargs["trigger"] = trigger(t)
            kwargs["accumulation_mode"] = getattr(t.AccumulationMode, mode)
        if combiner is not None:
            kwargs["timestamp_combiner"] = getattr(beam.window.TimestampCombiner, combiner)
        grouping = beam.CombinePerKey(sum) if combine else beam.GroupByKey()
        return (beam.WindowInto(window_fn(beam.window), allowed_lateness=lateness, **kwargs)
                | grouping)
    return build


def fixed(size):
    return lambda w: w.FixedWindows(size)


# ------------------------------------------------------------------- early and late firings

EARLY_LATE = [
    ("elements", _kv("k", (1, 1), (2, 2), (3, 3))),
    ("elements", _kv("k", (4, 4))),
    ("elements", _kv("j", (10, 7))),
    ("watermark", 10),
    ("elements", _kv("k", (5, 5))),
    ("elements", _kv("k", (6, 6), (7, 12))),
    ("watermark", 25),
    ("elements", _kv("k", (8, 8))),
    ("infinity",),
]


@pytest.mark.parametrize("mode", MODES)
def test_early_count_and_late_firings(mode, runner, tmp_path):
    build = windowed(fixed(10), lambda t: t.AfterWatermark(early=t.AfterCount(2),
                                                           late=t.AfterCount(1)),
                     mode, lateness=20)
    rows, _ = assert_same_panes(EARLY_LATE, build, runner=runner, tmp_path=tmp_path)
    timings = [r[4] for r in rows if r[0] == "k" and r[2] == (0, 10_000_000)]
    assert sorted(timings) == ["EARLY", "LATE", "LATE", "LATE", "ON_TIME"]


@pytest.mark.parametrize("mode", MODES)
def test_early_count_and_late_firings_combined(mode, runner, tmp_path):
    build = windowed(fixed(10), lambda t: t.AfterWatermark(early=t.AfterCount(2),
                                                           late=t.AfterCount(1)),
                     mode, lateness=20, combine=True)
    assert_same_panes(EARLY_LATE, build, runner=runner, tmp_path=tmp_path)


# Processing time starts at 0 on both; the windows, [100, 200), end long after it.
PROCESSING = [
    ("elements", _kv("k", (1, 101), (2, 102))),
    ("processing", 2),
    ("elements", _kv("k", (3, 103))),
    ("processing", 4),  # t=6: the first delay (5 s from t=0) has passed
    ("elements", _kv("k", (4, 104))),
    ("elements", _kv("j", (9, 150))),
    ("processing", 3),  # t=9
    ("processing", 3),  # t=12: the second delay (from t=6) has passed
    ("elements", _kv("k", (5, 105))),
]
PROCESSING_THEN_LATE = PROCESSING + [
    ("watermark", 200),
    ("elements", _kv("k", (6, 106))),
    ("processing", 1),
    ("elements", _kv("k", (7, 107))),
    ("infinity",),
]


@pytest.mark.parametrize("mode", MODES)
def test_early_processing_time_firings(mode, runner, tmp_path):
    build = windowed(fixed(100), lambda t: t.AfterWatermark(early=t.AfterProcessingTime(5),
                                                            late=t.AfterCount(1)),
                     mode, lateness=300)
    rows, _ = assert_same_panes(PROCESSING_THEN_LATE, build, runner=runner, tmp_path=tmp_path)
    assert [r[4] for r in rows if r[0] == "k"].count("EARLY") == 2


@pytest.mark.parametrize("mode", MODES)
def test_repeated_processing_time(mode, runner, tmp_path):
    build = windowed(fixed(100), lambda t: t.Repeatedly(t.AfterProcessingTime(5)), mode)
    script = PROCESSING + [("processing", 10), ("infinity",)]
    rows, _ = assert_same_panes(script, build, runner=runner, tmp_path=tmp_path)
    assert len(rows) == 4  # k at t=6, 12 and 22; j at t=12


# --------------------------------------------------------------------------- lateness

LATENESS = [
    ("elements", _kv("k", (1, 3))),
    ("watermark", 10),         # [0, 10) fires on time
    ("elements", _kv("k", (2, 7))),   # late, within lateness: a LATE pane
    ("watermark", 15),          # exactly end + lateness: still accepted (as in Beam)
    ("elements", _kv("k", (3, 8), (30, 12))),
    ("watermark", 16),          # past end + lateness: [0, 10) is expired
    ("elements", _kv("k", (4, 8), (40, 14))),  # 4 is dropped, 40 goes to [10, 20)
    ("infinity",),
]


@pytest.mark.parametrize("mode", MODES)
def test_allowed_lateness_expiry(mode, runner, tmp_path):
    build = windowed(fixed(10), lambda t: t.DefaultTrigger(), mode, lateness=5)
    rows, result = assert_same_panes(LATENESS, build, runner=runner, tmp_path=tmp_path)
    first = [(r[1], r[4]) for r in sorted(rows, key=lambda r: r[5]) if r[2][0] == 0]
    if mode == "DISCARDING":
        assert first == [([1], "ON_TIME"), ([2], "LATE"), ([3], "LATE")]
    else:
        assert first == [([1], "ON_TIME"), ([1, 2], "LATE"), ([1, 2, 3], "LATE")]
    assert system_counter(result, "dropped_late_elements") == 1  # 4, at watermark 16


def test_late_elements_into_a_window_seen_only_late(runner, tmp_path):
    script = [("watermark", 20), ("elements", _kv("k", (1, 3), (2, 12))),
              ("elements", _kv("k", (3, 4))), ("watermark", 40), ("infinity",)]
    assert_same_panes(script, windowed(fixed(10), None, lateness=30), runner=runner,
                      tmp_path=tmp_path)


# ---------------------------------------------------------------------------- sessions

SESSIONS_LATE_MERGE = [
    ("elements", _kv("k", (1, 1))),
    ("elements", _kv("k", (2, 12))),
    ("elements", _kv("j", (3, 2))),
    ("watermark", 30),           # [1, 6) and [12, 17) fire on time
    ("elements", _kv("k", (4, 8))),   # [8, 13) merges with [12, 17), late
    ("elements", _kv("k", (5, 4))),   # [4, 9) bridges [1, 6) and [8, 17)
    ("watermark", 40),
    ("infinity",),
]


@pytest.mark.parametrize("mode", MODES)
def test_sessions_late_element_merges_sessions(mode, runner, tmp_path):
    build = windowed(lambda w: w.Sessions(5), lambda t: t.DefaultTrigger(), mode, lateness=30)
    rows, _ = assert_same_panes(SESSIONS_LATE_MERGE, build, runner=runner, tmp_path=tmp_path)
    assert ("k", (1_000_000, 17_000_000)) in [(r[0], r[2]) for r in rows]


@pytest.mark.parametrize("mode", MODES)
def test_sessions_early_firings_then_merge(mode, runner, tmp_path):
    script = [("elements", _kv("k", (1, 1))), ("elements", _kv("k", (2, 12))),
              ("elements", _kv("k", (3, 8))), ("elements", _kv("k", (4, 9), (5, 30))),
              ("watermark", 20), ("elements", _kv("k", (6, 18))), ("infinity",)]
    build = windowed(lambda w: w.Sessions(5),
                     lambda t: t.AfterWatermark(early=t.AfterCount(1), late=t.AfterCount(1)),
                     mode, lateness=20)
    assert_same_panes(script, build, runner=runner, tmp_path=tmp_path)


@pytest.mark.parametrize("mode", MODES)
def test_sessions_combine_per_key_with_earliest_timestamps(mode, runner, tmp_path):
    build = windowed(lambda w: w.Sessions(5), lambda t: t.DefaultTrigger(), mode, lateness=30,
                     combiner="OUTPUT_AT_EARLIEST", combine=True)
    assert_same_panes(SESSIONS_LATE_MERGE, build, runner=runner, tmp_path=tmp_path)


# --------------------------------------------------------------------- composite triggers

COUNTED = [("elements", _kv("k", (i, i))) for i in range(1, 11)] + [
    ("elements", _kv("k", (11, 11), (12, 12), (13, 13)))] + [("watermark", 100), ("infinity",)]


@pytest.mark.parametrize("mode", MODES)
def test_repeatedly_after_count(mode, runner, tmp_path):
    assert_same_panes(COUNTED[:-3] + [("watermark", 100), ("infinity",)],
                      windowed(fixed(100), lambda t: t.Repeatedly(t.AfterCount(2)), mode),
                      runner=runner, tmp_path=tmp_path)


def test_repeatedly_after_count_one_pane_per_bundle(runner, tmp_path):
    # The bundle of three fires once with all three: triggers are evaluated per bundle.
    script = COUNTED[:2] + COUNTED[-3:]
    rows, _ = assert_same_panes(script, windowed(fixed(100),
                                                 lambda t: t.Repeatedly(t.AfterCount(2))),
                                runner=runner, tmp_path=tmp_path)
    assert [r[1] for r in rows] == [[1, 2], [11, 12, 13]]


@pytest.mark.parametrize("mode", MODES)
def test_after_each(mode, runner, tmp_path):
    build = windowed(fixed(100), lambda t: t.Repeatedly(t.AfterEach(t.AfterCount(2),
                                                                     t.AfterCount(3))), mode)
    assert_same_panes(COUNTED[:10] + [("watermark", 100), ("infinity",)], build,
                      runner=runner, tmp_path=tmp_path)


def test_after_each_then_watermark(runner, tmp_path):
    build = windowed(fixed(100), lambda t: t.AfterEach(t.AfterCount(2), t.AfterWatermark()),
                     "ACCUMULATING")
    assert_same_panes(COUNTED, build, runner=runner, tmp_path=tmp_path, unsafe=False)


@pytest.mark.parametrize("mode", MODES)
def test_after_all(mode, runner, tmp_path):
    build = windowed(fixed(100), lambda t: t.Repeatedly(t.AfterAll(t.AfterCount(2),
                                                                    t.AfterCount(3))), mode)
    assert_same_panes(COUNTED[:6] + [("watermark", 100), ("infinity",)], build,
                      runner=runner, tmp_path=tmp_path)


@pytest.mark.parametrize("mode", MODES)
def test_after_any_count_or_watermark(mode, runner, tmp_path):
    script = [("elements", _kv("k", (1, 1))), ("elements", _kv("k", (2, 2), (3, 3), (4, 4))),
              ("elements", _kv("k", (5, 5))), ("watermark", 100),
              ("elements", _kv("k", (6, 6))), ("infinity",)]
    build = windowed(fixed(100), lambda t: t.Repeatedly(t.AfterAny(t.AfterCount(3),
                                                                    t.AfterWatermark())),
                     mode, lateness=50)
    assert_same_panes(script, build, runner=runner, tmp_path=tmp_path)


def test_after_all_count_and_watermark(runner, tmp_path):
    # Both are satisfied when the watermark passes the end (on time), and again by late data.
    # (Late data that does not fire at once is avoided: Beam's Python driver then holds the
    # watermark back at the window's end again, and its later panes come out EARLY.)
    script = [("elements", _kv("k", (1, 1))), ("elements", _kv("k", (2, 2))), ("watermark", 100),
              ("elements", _kv("k", (3, 3), (4, 4))), ("infinity",)]
    build = windowed(fixed(100), lambda t: t.Repeatedly(t.AfterAll(t.AfterCount(2),
                                                                    t.AfterWatermark())),
                     "ACCUMULATING", lateness=50)
    assert_same_panes(script, build, runner=runner, tmp_path=tmp_path)


@pytest.mark.parametrize("mode", MODES)
def test_or_finally(mode, runner, tmp_path):
    build = windowed(fixed(100), lambda t: t.OrFinally(t.Repeatedly(t.AfterCount(2)),
                                                       t.AfterCount(5)), mode)
    rows, result = assert_same_panes(COUNTED[:7] + [("watermark", 100), ("infinity",)], build,
                                     runner=runner, tmp_path=tmp_path, unsafe=True)
    assert max(rows, key=lambda r: r[5])[8] is True  # the OrFinally pane is the last one
    assert system_counter(result, "dropped_closed_window_elements") == 2


@pytest.mark.parametrize("mode", MODES)
def test_combine_per_key_repeated_count(mode, runner, tmp_path):
    script = [("elements", _kv("a", (1, 1), (2, 2)) + _kv("b", (10, 3))),
              ("elements", _kv("b", (20, 4)) + _kv("a", (3, 5))),
              ("elements", _kv("a", (4, 6))), ("watermark", 100), ("infinity",)]
    build = windowed(fixed(100), lambda t: t.Repeatedly(t.AfterCount(2)), mode, combine=True)
    assert_same_panes(script, build, runner=runner, tmp_path=tmp_path)


# ----------------------------------------------------------------- timestamps and windows

@pytest.mark.parametrize("combiner", ["OUTPUT_AT_EARLIEST", "OUTPUT_AT_LATEST",
                                      "OUTPUT_AT_EOW"])
@pytest.mark.parametrize("mode", MODES)
def test_timestamp_combiners_with_early_panes(combiner, mode, runner, tmp_path):
    script = [("elements", _kv("k", (1, 3))), ("elements", _kv("k", (2, 7), (3, 5))),
              ("watermark", 10), ("elements", _kv("k", (4, 2))), ("infinity",)]
    build = windowed(fixed(10), lambda t: t.AfterWatermark(early=t.AfterCount(1),
                                                           late=t.AfterCount(1)),
                     mode, lateness=10, combiner=combiner)
    assert_same_panes(script, build, runner=runner, tmp_path=tmp_path)


@pytest.mark.parametrize("mode", MODES)
def test_sliding_windows_early_firings(mode, runner, tmp_path):
    script = [("elements", _kv("k", (1, 1), (2, 6))), ("elements", _kv("k", (3, 7))),
              ("watermark", 10), ("elements", _kv("k", (4, 8))), ("infinity",)]
    build = windowed(lambda w: w.SlidingWindows(10, 5),
                     lambda t: t.AfterWatermark(early=t.AfterCount(2), late=t.AfterCount(1)),
                     mode, lateness=10)
    assert_same_panes(script, build, runner=runner, tmp_path=tmp_path)


def test_grouping_downstream_of_triggered_grouping(runner, tmp_path):
    # The first GroupByKey's panes reach the second one through its watermark holds: none of
    # them is late there, and the second one fires with the continuation trigger.
    def build(beam):
        t = beam.transforms.trigger
        return (beam.WindowInto(beam.window.FixedWindows(10),
                                trigger=t.AfterWatermark(early=t.AfterCount(2)),
                                accumulation_mode=t.AccumulationMode.DISCARDING)
                | "First" >> beam.GroupByKey()
                | beam.MapTuple(lambda k, vs: ("all", sum(vs)))
                | "Second" >> beam.GroupByKey())

    script = [("elements", _kv("a", (1, 1), (2, 2)) + _kv("b", (3, 3))),
              ("elements", _kv("b", (4, 4))), ("watermark", 10),
              ("elements", _kv("a", (5, 15))), ("infinity",)]
    assert_same_panes(script, build, runner=runner, tmp_path=tmp_path)


# ------------------------------------------- scenarios of Beam's own trigger pipeline tests


def test_multiple_accumulating_firings(runner, tmp_path):
    # An early AfterAll(AfterCount(1), AfterProcessingTime(5)) fires once after 5 seconds,
    # then the on-time pane has everything (Beam's test_multiple_accumulating_firings).
    script = [("watermark", 0)]
    for i in range(1, 11):
        script.append(("elements", [(("key", str(i)), 0 if i <= 5 else 5)]))
        if i % 5 == 0:
            script += [("watermark", i), ("processing", 5)]
    script.append(("infinity",))
    build = windowed(fixed(10), lambda t: t.AfterWatermark(
        early=t.AfterAll(t.AfterCount(1), t.AfterProcessingTime(5))), "ACCUMULATING")
    rows, _ = assert_same_panes(script, build, runner=runner, tmp_path=tmp_path)
    assert [len(r[1]) for r in sorted(rows, key=lambda r: r[5])] == [5, 10]


def test_after_processing_time_then_finished(runner, tmp_path):
    # Beam's test_after_processing_time: one pane 2 s after the first element; the trigger
    # is then finished and later elements are dropped.
    script = []
    for i in range(4):
        script += [("processing", 0.5), ("elements", [(("key", i), 100)])]
    script += [("processing", 2), ("processing", 0.1), ("elements", [(("key", -1), 100)]),
               ("processing", 0.1), ("elements", [(("key", -2), 100)]), ("processing", 2),
               ("infinity",)]
    build = windowed(fixed(10), lambda t: t.AfterProcessingTime(2))
    rows, _ = assert_same_panes(script, build, runner=runner, tmp_path=tmp_path, unsafe=True)
    assert [r[1] for r in rows] == [[0, 1, 2, 3]]


def test_repeatedly_after_processing_time_pairs(runner, tmp_path):
    # Beam's test_repeatedly_after_processing_time: elements 1.99 s apart, a 2 s delay.
    script = []
    for i in range(7):
        script += [("processing", 1.99), ("elements", [(("key", i), 100)])]
    script += [("processing", 2), ("infinity",)]
    build = windowed(fixed(10), lambda t: t.Repeatedly(t.AfterProcessingTime(2)))
    rows, _ = assert_same_panes(script, build, runner=runner, tmp_path=tmp_path)
    assert sorted(r[1] for r in rows) == [[0, 1], [2, 3], [4, 5], [6]]
