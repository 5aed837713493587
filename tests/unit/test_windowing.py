"""Window functions (unit and end to end), session merging, timestamp combiners, custom WindowFns,
timestamps and durations."""
import itertools

import pytest

import headrace as beam
from headrace.testing.util import assert_that, equal_to
from headrace.utils.timestamp import Duration, Timestamp
from headrace.window import (
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


def assign(window_fn, timestamp):
    return set(window_fn.assign(WindowFn.AssignContext(Timestamp.of(timestamp))))


class RecordingMergeContext(WindowFn.MergeContext):
    def __init__(self, windows):
        super().__init__(windows)
        self.recorded = []

    def merge(self, to_be_merged, merge_result):
        self.recorded.append((sorted(to_be_merged, key=lambda w: w.start), merge_result))


def _stamped(p, pairs, label="Create"):
    """``(value, timestamp)`` pairs as a timestamped PCollection."""
    return (p | label >> beam.Create(pairs)
              | f"{label}Stamp" >> beam.MapTuple(lambda v, t: TimestampedValue(v, t)))


def _grouped_with_window(kv, w=beam.DoFn.WindowParam):
    return kv[0], sorted(kv[1]), float(w.start), float(w.end)


# ------------------------------------------------------------------------------ assignment (unit)


@pytest.mark.parametrize("timestamp, expected", [
    (0, (0, 10)), (9.999999, (0, 10)), (10, (10, 20)), (23, (20, 30)), (-3, (-10, 0)),
])
def test_fixed_windows_assign(timestamp, expected):
    assert assign(FixedWindows(10), timestamp) == {IntervalWindow(*expected)}


def test_fixed_windows_offset_and_durations():
    assert assign(FixedWindows(10, offset=3), 12) == {IntervalWindow(3, 13)}
    assert assign(FixedWindows(10, offset=3), 2) == {IntervalWindow(-7, 3)}
    assert assign(FixedWindows(Duration(60)), 61) == {IntervalWindow(60, 120)}
    assert assign(FixedWindows(0.5), 1.2) == {IntervalWindow(1, 1.5)}


def test_sliding_windows_assign():
    assert assign(SlidingWindows(10, 5), 12) == {IntervalWindow(5, 15), IntervalWindow(10, 20)}
    assert assign(SlidingWindows(10, 5), 10) == {IntervalWindow(5, 15), IntervalWindow(10, 20)}
    assert assign(SlidingWindows(10, 3), 7) == {IntervalWindow(0, 10), IntervalWindow(3, 13),
                                               IntervalWindow(6, 16)}
    assert assign(SlidingWindows(10, 5, offset=2), 12) == {IntervalWindow(7, 17),
                                                           IntervalWindow(12, 22)}
    # Period larger than size: some timestamps fall in no window.
    assert assign(SlidingWindows(2, 5), 3) == set()
    assert assign(SlidingWindows(2, 5), 6) == {IntervalWindow(5, 7)}


def test_sessions_assign_and_merge():
    assert assign(Sessions(5), 7) == {IntervalWindow(7, 12)}
    assert Sessions(5).is_merging()
    assert not FixedWindows(5).is_merging()
    windows = [IntervalWindow(10, 15), IntervalWindow(0, 5), IntervalWindow(3, 8),
               IntervalWindow(30, 35), IntervalWindow(14, 19)]
    ctx = RecordingMergeContext(windows)
    Sessions(5).merge(ctx)
    assert sorted(ctx.recorded) == sorted([
        ([IntervalWindow(0, 5), IntervalWindow(3, 8)], IntervalWindow(0, 8)),
        ([IntervalWindow(10, 15), IntervalWindow(14, 19)], IntervalWindow(10, 19)),
    ])


def test_global_windows_assign():
    assert assign(GlobalWindows(), 5) == {GlobalWindow()}
    assert GlobalWindow() == GlobalWindow()


def test_interval_window_bounds():
    w = IntervalWindow(10, 20)
    assert w.start == Timestamp(10) and w.end == Timestamp(20)
    assert w.max_timestamp() == Timestamp(20) - Duration(micros=1)
    assert IntervalWindow(0, 10) == IntervalWindow(0, 10) != IntervalWindow(0, 11)
    assert len({IntervalWindow(0, 10), IntervalWindow(0, 10)}) == 1


# ------------------------------------------------------------------------------- end to end GBK


def test_fixed_windows_group_by_key(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("k", 1), 1), (("k", 2), 9), (("k", 3), 10), (("j", 4), 25)])
               | beam.WindowInto(FixedWindows(10)) | beam.GroupByKey()
               | beam.Map(_grouped_with_window))
        assert_that(out, equal_to([("k", [1, 2], 0.0, 10.0), ("k", [3], 10.0, 20.0),
                                   ("j", [4], 20.0, 30.0)]))


def test_sliding_windows_group_by_key(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("k", 1), 2), (("k", 2), 7)])
               | beam.WindowInto(SlidingWindows(10, 5)) | beam.GroupByKey()
               | beam.Map(_grouped_with_window))
        assert_that(out, equal_to([("k", [1], -5.0, 5.0), ("k", [1, 2], 0.0, 10.0),
                                   ("k", [2], 5.0, 15.0)]))


def test_sessions_group_by_key(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("k", 1), 1), (("k", 2), 4), (("k", 3), 20), (("j", 4), 3),
                            (("k", 5), 8.5)])
               | beam.WindowInto(Sessions(5)) | beam.GroupByKey()
               | beam.Map(_grouped_with_window))
        assert_that(out, equal_to([("k", [1, 2, 5], 1.0, 13.5), ("k", [3], 20.0, 25.0),
                                   ("j", [4], 3.0, 8.0)]))


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_sessions_merge_in_any_arrival_order(runner, order):
    # 5.5 bridges the sessions of 1 and 10, whenever it arrives; 30 stays alone.
    timestamps = [1, 10, 5.5, 30]
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("k", timestamps[i]), timestamps[i]) for i in order])
               | beam.WindowInto(Sessions(5)) | beam.GroupByKey()
               | beam.Map(_grouped_with_window))
        assert_that(out, equal_to([("k", [1, 5.5, 10], 1.0, 15.0), ("k", [30], 30.0, 35.0)]))


def test_sessions_are_per_key(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("a", 1), 1), (("b", 2), 4), (("a", 3), 5)])
               | beam.WindowInto(Sessions(5)) | beam.GroupByKey()
               | beam.Map(_grouped_with_window))
        assert_that(out, equal_to([("a", [1, 3], 1.0, 10.0), ("b", [2], 4.0, 9.0)]))


def test_sessions_combine_per_key(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("k", 1), 1), (("k", 2), 20), (("k", 3), 4), (("k", 4), 22)])
               | beam.WindowInto(Sessions(5)) | beam.CombinePerKey(sum)
               | beam.Map(lambda kv, w=beam.DoFn.WindowParam: (kv, float(w.start))))
        assert_that(out, equal_to([(("k", 4), 1.0), (("k", 6), 20.0)]))


def test_window_into_global_windows_regroups(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("k", 1), 1), (("k", 2), 25)])
               | "Fixed" >> beam.WindowInto(FixedWindows(10))
               | "Global" >> beam.WindowInto(GlobalWindows()) | beam.GroupByKey()
               | beam.MapTuple(lambda k, vs, w=beam.DoFn.WindowParam: (k, sorted(vs), w)))
        assert_that(out, equal_to([("k", [1, 2], GlobalWindow())]))



def test_rewindowing_keeps_an_elements_copies_per_window(runner):
    # As Beam: an element in three sliding windows is three elements; each copy is
    # reassigned on its own, so rewindowing into fixed windows keeps all three.
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("k", 1), 1), (("k", 7), 7)])
               | "Sliding" >> beam.WindowInto(SlidingWindows(size=6, period=2))
               | "Fixed" >> beam.WindowInto(FixedWindows(5)) | beam.GroupByKey()
               | beam.MapTuple(lambda k, vs: (k, sorted(vs))))
        assert_that(out, equal_to([("k", [1, 1, 1]), ("k", [7, 7, 7])]))

# ---------------------------------------------------------------------------- timestamp combiners


_ELEMENTS = [(("k", 1), 5), (("k", 2), 1), (("k", 3), 12), (("k", 4), 14), (("k", 5), 30)]


@pytest.mark.parametrize("combiner, expected", [
    (TimestampCombiner.OUTPUT_AT_EARLIEST, [([1, 2], 1), ([3, 4], 12), ([5], 30)]),
    (TimestampCombiner.OUTPUT_AT_LATEST, [([1, 2], 5), ([3, 4], 14), ([5], 30)]),
], ids=["earliest", "latest"])
def test_timestamp_combiners(runner, combiner, expected):
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, _ELEMENTS)
               | beam.WindowInto(FixedWindows(10), timestamp_combiner=combiner)
               | beam.GroupByKey()
               | beam.MapTuple(lambda k, vs, ts=beam.DoFn.TimestampParam: (sorted(vs), float(ts))))
        assert_that(out, equal_to([(vs, float(ts)) for vs, ts in expected]))


def _at_end_of_window(kv, ts=beam.DoFn.TimestampParam, w=beam.DoFn.WindowParam):
    # The end of the window, less the runner's timestamp precision (1us; 1ms in Beam's).
    return sorted(kv[1]), w.end - Duration(0.001) <= ts < w.end


@pytest.mark.parametrize("combiner", [None, TimestampCombiner.OUTPUT_AT_EOW],
                         ids=["default", "eow"])
def test_timestamp_combiner_end_of_window(runner, combiner):
    with beam.Pipeline(runner=runner) as p:
        kwargs = {} if combiner is None else {"timestamp_combiner": combiner}
        out = (_stamped(p, _ELEMENTS) | beam.WindowInto(FixedWindows(10), **kwargs)
               | beam.GroupByKey() | beam.Map(_at_end_of_window))
        assert_that(out, equal_to([([1, 2], True), ([3, 4], True), ([5], True)]))


def test_timestamp_combiner_earliest_with_sessions(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("k", 1), 3), (("k", 2), 1), (("k", 3), 20), (("k", 4), 5)])
               | beam.WindowInto(Sessions(5),
                                 timestamp_combiner=TimestampCombiner.OUTPUT_AT_EARLIEST)
               | beam.GroupByKey()
               | beam.MapTuple(lambda k, vs, ts=beam.DoFn.TimestampParam: (sorted(vs), float(ts))))
        assert_that(out, equal_to([([1, 2, 4], 1.0), ([3], 20.0)]))


# ------------------------------------------------------------------------------ custom WindowFns


def _interval_window_coder():
    """Beam's runners ask a WindowFn for its window coder; headrace's never do."""
    coders = getattr(beam.coders, "coders", None)
    return coders.IntervalWindowCoder() if coders is not None else None


class WeekdayWindows(NonMergingWindowFn):
    """Windows of 7 seconds, or of 1 second for elements marked urgent."""

    def assign(self, context):
        t = context.timestamp.micros // 1_000_000
        if context.element[1] == "urgent":
            return [IntervalWindow(t, t + 1)]
        return [IntervalWindow(t - t % 7, t - t % 7 + 7)]

    def get_window_coder(self):
        return _interval_window_coder()


class SpanMergingWindows(WindowFn):
    """Point windows ``[t, t+1)``, merged with a run starting less than ``gap`` earlier.

    Does not override ``is_merging``: a ``WindowFn`` is merging by default, as in Beam.
    """

    def __init__(self, gap):
        self.gap = gap

    def assign(self, context):
        t = context.timestamp
        return [IntervalWindow(t, t + 1)]

    def merge(self, merge_context):
        group = []
        for window in sorted(merge_context.windows, key=lambda w: w.start):
            if group and window.start - group[0].start >= Duration(self.gap):
                self._flush(group, merge_context)
                group = []
            group.append(window)
        self._flush(group, merge_context)

    @staticmethod
    def _flush(group, merge_context):
        if len(group) > 1:
            merge_context.merge(group, IntervalWindow(group[0].start,
                                                      max(w.end for w in group)))

    def get_window_coder(self):
        return _interval_window_coder()


class ExplicitlyMergingWindows(SpanMergingWindows):
    def is_merging(self):
        return True


def test_custom_non_merging_window_fn(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("k", "a"), 1), (("k", "b"), 6), (("k", "urgent"), 3),
                            (("k", "c"), 8)])
               | beam.WindowInto(WeekdayWindows()) | beam.GroupByKey()
               | beam.Map(_grouped_with_window))
        assert_that(out, equal_to([("k", ["a", "b"], 0.0, 7.0), ("k", ["urgent"], 3.0, 4.0),
                                   ("k", ["c"], 7.0, 14.0)]))


@pytest.mark.direct_only("this merge depends on the order elements arrive in, which only the "
                         "direct runner fixes")
@pytest.mark.parametrize("window_fn", [SpanMergingWindows, ExplicitlyMergingWindows],
                         ids=["default_is_merging", "explicit_is_merging"])
def test_custom_merging_window_fn(runner, window_fn):
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("k", 1), 1), (("k", 2), 50), (("k", 3), 3), (("k", 4), 5)])
               | beam.WindowInto(window_fn(3)) | beam.GroupByKey()
               | beam.Map(_grouped_with_window))
        assert_that(out, equal_to([("k", [1, 3], 1.0, 4.0), ("k", [4], 5.0, 6.0),
                                   ("k", [2], 50.0, 51.0)]))


# ---------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("make, name", [
    (lambda: FixedWindows(0), "FixedWindows"),
    (lambda: FixedWindows(-1), "FixedWindows"),
    (lambda: SlidingWindows(0, 1), "SlidingWindows"),
    (lambda: SlidingWindows(-10, 5), "SlidingWindows"),
    (lambda: SlidingWindows(10, 0), "SlidingWindows"),
    (lambda: SlidingWindows(10, -5), "SlidingWindows"),
    (lambda: Sessions(0), "Sessions"),
    (lambda: Sessions(-5), "Sessions"),
], ids=["fixed0", "fixed-1", "sliding_size0", "sliding_size-10", "sliding_period0",
        "sliding_period-5", "sessions0", "sessions-5"])
def test_non_positive_window_sizes_raise(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize("bad", ["abc", None, [1], object()], ids=["str", "none", "list", "obj"])
def test_timestamped_value_needs_a_number(bad):
    with pytest.raises(TypeError, match=type(bad).__name__):
        TimestampedValue("v", bad)


# -------------------------------------------------------------------------- Timestamp / Duration


def test_timestamp_construction():
    assert Timestamp(1.5).micros == 1_500_000
    assert Timestamp(micros=7).micros == 7
    assert Timestamp(-2).micros == -2_000_000
    assert Timestamp.of(3) == Timestamp(3)
    assert Timestamp.of(Timestamp(3)) == Timestamp(3)
    assert Duration(2).micros == 2_000_000
    assert Duration(micros=5).micros == 5


def test_timestamp_rfc3339():
    assert Timestamp.from_rfc3339("1970-01-01T00:01:00Z") == Timestamp(60)
    assert Timestamp.from_rfc3339("1970-01-01T00:01:00.25Z") == Timestamp(60.25)
    assert Timestamp(60.5).to_rfc3339() == "1970-01-01T00:01:00.500000Z"
    assert Timestamp(60).to_rfc3339() == "1970-01-01T00:01:00Z"  # no fraction when whole


def test_timestamp_duration_arithmetic():
    assert Timestamp(10) + Duration(5) == Timestamp(15)
    assert Duration(5) + Timestamp(10) == Timestamp(15)
    assert Timestamp(10) + 5 == Timestamp(15)
    assert Timestamp(15) - Duration(5) == Timestamp(10)
    assert Timestamp(15) - Timestamp(10) == Duration(5)
    assert isinstance(Timestamp(15) - Timestamp(10), Duration)
    assert isinstance(Timestamp(15) - Duration(10), Timestamp)
    assert Duration(2) + Duration(3) == Duration(5)
    assert Duration(5) - Duration(3) == Duration(2)
    assert -Duration(5) == Duration(-5)
    assert Timestamp(10) % Duration(3) == Duration(1)
    assert Duration(1.5) * 2 == Duration(3)
    with pytest.raises(TypeError):
        Timestamp(1) + Timestamp(2)


def test_timestamp_comparisons():
    assert Timestamp(1) < Timestamp(2) <= Timestamp(2) < 3
    assert Timestamp(2) > 1.5
    assert Timestamp(2) == 2 and Timestamp(2) != Timestamp(3)
    assert Duration(1) < Duration(2)
    assert sorted([Timestamp(3), Timestamp(-1), Timestamp(1)]) == [Timestamp(-1), Timestamp(1),
                                                                 Timestamp(3)]
    assert len({Timestamp(1), Timestamp(micros=1_000_000)}) == 1


def test_timestamped_value_output_is_assigned_windows_by_the_input_window_fn(runner):
    # As Beam: a ParDo that re-stamps an element moves it to the window of its new timestamp.
    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("k", 1), 1)])
               | beam.WindowInto(FixedWindows(10))
               | "Restamp" >> beam.Map(lambda kv: TimestampedValue(kv, 15))
               | beam.GroupByKey()
               | beam.MapTuple(lambda k, vs, w=beam.DoFn.WindowParam: (k, list(vs), w)))
        assert_that(out, equal_to([("k", [1], IntervalWindow(10, 20))]))


def test_never_trigger_emits_each_window_once_when_it_closes(runner):
    # Beam's _Never: no pane fires; garbage collection of the window emits what it holds.
    from headrace.transforms.trigger import AccumulationMode, Never

    with beam.Pipeline(runner=runner) as p:
        out = (_stamped(p, [(("k", 1), 1), (("k", 2), 5), (("k", 3), 12)])
               | beam.WindowInto(FixedWindows(10), trigger=Never(),
                                 accumulation_mode=AccumulationMode.DISCARDING)
               | beam.GroupByKey()
               | beam.MapTuple(lambda k, vs, w=beam.DoFn.WindowParam: (k, sorted(vs), w)))
        assert_that(out, equal_to([("k", [1, 2], IntervalWindow(0, 10)),
                                   ("k", [3], IntervalWindow(10, 20))]))


def test_never_trigger_is_beams():
    import apache_beam.transforms.trigger as bt

    from headrace.transforms.trigger import Never

    assert repr(Never()) == repr(bt._Never())
    assert Never().get_continuation_trigger() == Never()
