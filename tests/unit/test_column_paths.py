"""The ParDo column paths: FlatMap output passed on in pieces, DoFns run over columns, GC tuning."""
import gc
import threading

import pytest

import headrace as beam
from headrace.runners.common.gc_tuning import THRESHOLDS, throughput_gc
from headrace.runners.operators.pardo_operator import FLATMAP_FLUSH_SIZE
from headrace.testing.util import assert_that, equal_to
from headrace.window import FixedWindows, SlidingWindows, TimestampedValue

from .helpers import run_fails

N = FLATMAP_FLUSH_SIZE * 2 + 123  # records per input element: spans several pieces


def test_flatmap_beyond_one_piece_keeps_every_record(runner):
    with beam.Pipeline(runner=runner) as p:
        counted = (p | beam.Create([0, 1, 2])
                   | beam.FlatMap(lambda i: range(i * N, (i + 1) * N))
                   | beam.Map(lambda x: (x % 3, 1)) | beam.CombinePerKey(sum))
        assert_that(counted, equal_to([(0, N), (1, N), (2, N)]))


def test_flatmap_timestamped_outputs_across_pieces(runner):
    # TimestampedValue outputs become the timestamp column piece by piece.
    with beam.Pipeline(runner=runner) as p:
        sums = (p | beam.Create([1])
                | beam.FlatMap(lambda _: (TimestampedValue(("k", 1), t / 1000) for t in range(N)))
                | beam.WindowInto(FixedWindows(10)) | beam.CombinePerKey(sum)
                | beam.Map(lambda kv, w=beam.DoFn.WindowParam: (int(w.start), kv[1])))
        expected = [(start, len(range(start * 1000, min(N, (start + 10) * 1000))))
                    for start in range(0, N // 1000 + 1, 10)]
        assert_that(sums, equal_to(expected))


def test_flatmap_tagged_outputs_across_pieces(runner):
    def split(i):
        for x in range(N):
            yield beam.pvalue.TaggedOutput("odd", x) if x % 2 else x

    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create([1]) | beam.FlatMap(split).with_outputs("odd", main="even")
        assert_that(out.even | "CountEven" >> beam.combiners.Count.Globally(),
                    equal_to([(N + 1) // 2]), label="even")
        assert_that(out.odd | "CountOdd" >> beam.combiners.Count.Globally(),
                    equal_to([N // 2]), label="odd")


class _WindowAndTime(beam.DoFn):
    def process(self, element, window=beam.DoFn.WindowParam,
                timestamp=beam.DoFn.TimestampParam):
        yield element, int(window.start), float(timestamp)


def test_dofn_with_window_and_timestamp_runs_per_window(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([TimestampedValue("a", 7), TimestampedValue("b", 12)])
               | beam.WindowInto(SlidingWindows(10, 5)) | beam.ParDo(_WindowAndTime()))
        assert_that(out, equal_to([("a", 0, 7.0), ("a", 5, 7.0), ("b", 5, 12.0),
                                   ("b", 10, 12.0)]))


class _Retimestamp(beam.DoFn):
    def process(self, element, window=beam.DoFn.WindowParam):
        yield TimestampedValue((element, int(window.start)), 25)


def test_dofn_timestamped_outputs_are_reassigned_windows(runner):
    # As Beam: a timestamped output of a DoFn in windowed input gets the window of its time.
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([TimestampedValue("a", 3)]) | beam.WindowInto(FixedWindows(10))
               | beam.ParDo(_Retimestamp())
               | beam.Map(lambda v, w=beam.DoFn.WindowParam: (v, int(w.start))))
        assert_that(out, equal_to([(("a", 0), 20)]))


class _Tagged(beam.DoFn):
    def process(self, element, window=beam.DoFn.WindowParam):
        yield beam.pvalue.TaggedOutput("small" if element < 5 else "large", element)


def test_dofn_tagged_outputs_on_the_column_path(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create(range(10)) | beam.ParDo(_Tagged()).with_outputs("small", "large"))
        assert_that(out.small, equal_to([0, 1, 2, 3, 4]), label="small")
        assert_that(out.large, equal_to([5, 6, 7, 8, 9]), label="large")


class _ReturnsString(beam.DoFn):
    def process(self, element, window=beam.DoFn.WindowParam):
        return "oops"


def test_dofn_returning_a_string_fails_with_the_label(runner):
    def build(p):
        p | beam.Create([1]) | "Strings" >> beam.ParDo(_ReturnsString())

    run_fails(build, runner, TypeError, match="Strings")


def test_gc_thresholds_restored_after_nested_and_concurrent_runs():
    before = gc.get_threshold()
    inside = threading.Event()
    release = threading.Event()

    def other_run():
        with throughput_gc():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other_run)
    with throughput_gc():
        thread.start()
        assert inside.wait(10)
        with throughput_gc():
            assert gc.get_threshold() == THRESHOLDS
    assert gc.get_threshold() == THRESHOLDS  # the other run is still going
    release.set()
    thread.join(10)
    assert gc.get_threshold() == before


def test_gc_thresholds_restored_after_a_failure():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError):
        with throughput_gc():
            raise RuntimeError("boom")
    assert gc.get_threshold() == before
