"""Unbounded sources on the direct runner: per-split watermarks, idleness, the generator,
and TestStream basics."""
import time

import pytest

import headrace as beam
from headrace.io.generator import GenerateEvents, GeneratorSource
from headrace.metrics.metric import MetricsFilter
from headrace.runners.operators.base import Operator
from headrace.runners.operators.clock import ManualClock
from headrace.runners.operators.sources import ReadOperator
from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS
from headrace.testing.test_stream import TestStream
from headrace.testing.util import assert_that, equal_to
from headrace.window import FixedWindows, TimestampedValue

from .scripted_source import ScriptedSource

S = 1_000_000


class _Recorder(Operator):
    """Receives a source's output and remembers every watermark and idleness change."""

    def __init__(self):
        super().__init__("recorder", 1)
        self.elements, self.watermarks, self.idle = [], [], []

    def process_batch(self, index, batch):
        self.elements.extend(wv.value for wv in batch)

    def on_watermark(self, index, watermark):
        self.watermarks.append(watermark)

    def set_input_idle(self, index, idle):
        self.idle.append(idle)


def _read_operator(scripts, strategy=None, end_at=None):
    clock = ManualClock()
    source = ScriptedSource(scripts, lambda: clock.now() / S, end_at)
    operator = ReadOperator("Read", source, strategy)
    operator.clock = clock
    recorder = _Recorder()
    operator.receivers[None] = [(recorder, 0)]
    operator.open()
    return operator, recorder, clock


def test_source_watermark_is_the_minimum_over_its_splits():
    operator, recorder, clock = _read_operator([
        [(0, ("a", 10)), (1, ("a", 30))],
        [(0, ("b", 5)), (2, ("b", 40))],
    ], end_at=100)
    operator.poll()
    assert recorder.watermarks[-1] == 5 * S - 1
    clock.advance(1 * S)
    operator.poll()
    assert recorder.watermarks[-1] == 5 * S - 1      # split b still holds it back
    clock.advance(1 * S)
    operator.poll()
    assert recorder.watermarks[-1] == 30 * S - 1


def test_finished_inputs_do_not_end_the_watermark_while_another_input_is_idle():
    downstream = _Recorder()
    flatten = Operator("flatten", 2)
    flatten.receivers[None] = [(downstream, 0)]
    flatten.on_watermark(1, 7 * S)
    flatten.set_input_idle(1, True)
    flatten.on_watermark(0, MAX_MICROS)
    assert downstream.watermarks == [7 * S]
    flatten.on_watermark(1, MAX_MICROS)
    assert downstream.watermarks == [7 * S, MAX_MICROS]


def test_an_idle_split_stops_holding_the_watermark_and_resumes_when_data_returns():
    strategy = (beam.WatermarkStrategy.for_monotonous_timestamps()
                .with_timestamp_assigner(lambda e, _: e[1]).with_idleness(2))
    operator, recorder, clock = _read_operator([
        [(t, ("busy", 10 + t)) for t in range(10)],
        [(0, ("quiet", 1)), (6, ("quiet", 20))],
    ], strategy, end_at=100)
    operator.poll()
    assert recorder.watermarks[-1] == 1 * S - 1
    for _ in range(3):
        clock.advance(1 * S)
        operator.poll()
    # After 2 s without data the quiet split is idle: the busy split alone sets the watermark.
    assert recorder.watermarks[-1] == 13 * S - 1
    assert recorder.idle == []                      # the source as a whole is not idle
    clock.advance(3 * S)
    operator.poll()                                 # t=6: the quiet split wakes at 20
    assert recorder.watermarks[-1] == 16 * S - 1
    clock.advance(1 * S)
    operator.poll()
    assert operator.splits[1].idle is False
    assert recorder.watermarks[-1] == 17 * S - 1    # min(busy 17, quiet 20)


def test_an_idle_timeout_expiring_between_polls_is_handled_by_processing_time():
    strategy = (beam.WatermarkStrategy.for_monotonous_timestamps()
                .with_timestamp_assigner(lambda e, _: e[1]).with_idleness(2))
    operator, recorder, clock = _read_operator([
        [(0, ("busy", 10))], [(0, ("quiet", 1))]], strategy, end_at=100)
    operator.poll()
    assert recorder.watermarks[-1] == 1 * S - 1
    clock.advance(3 * S)                       # both splits time out before the next poll
    assert operator.next_processing_time() <= clock.now()
    operator.on_processing_time(clock.now())
    assert recorder.idle == [True]
    assert operator.next_processing_time() is None   # nothing left due: no busy loop


def test_a_source_whose_splits_are_all_idle_is_idle_downstream():
    strategy = beam.WatermarkStrategy.for_monotonous_timestamps().with_idleness(1)
    operator, recorder, clock = _read_operator([[(0, ("a", 1))], [(0, ("b", 1))]], strategy,
                                               end_at=100)
    operator.poll()
    clock.advance(2 * S)
    operator.poll()
    assert recorder.idle == [True]


def test_idle_split_does_not_stall_windows_end_to_end():
    """Windows of the busy split fire while the quiet split is idle, long before it wakes."""
    wake_at = 3.0  # far enough from the bound below for a loaded machine
    source = ScriptedSource([
        [(i * 0.01, (f"busy{i}", float(i))) for i in range(40)],
        [(0.0, ("quiet0", 0.0)), (wake_at, ("quiet1", 100.0))],
    ], time.monotonic)

    class FiringTime(beam.DoFn):
        def setup(self):
            self.opened = time.monotonic()

        def process(self, element, window=beam.DoFn.WindowParam):
            yield float(window.start), time.monotonic() - self.opened

    def check(fired):
        fired = dict(fired)
        assert sorted(fired) == [0.0, 10.0, 20.0, 30.0, 100.0], fired
        # Windows 0-30 close while the quiet split idles (the busy split finishes at 0.4 s and
        # must not end the watermark); window 30 waits for the quiet split's next event.
        assert fired[0.0] < 2.0 and fired[20.0] < 2.0, fired
        assert fired[30.0] >= wake_at - 0.1 and fired[100.0] >= wake_at - 0.1, fired

    strategy = (beam.WatermarkStrategy.for_monotonous_timestamps()
                .with_timestamp_assigner(lambda e, _: e[1]).with_idleness(0.2))
    with beam.Pipeline() as p:
        fired = (p | beam.io.Read(source, strategy)
                 | beam.WindowInto(FixedWindows(10))
                 | beam.Map(lambda e: ("k", e[0])) | beam.GroupByKey()
                 | beam.ParDo(FiringTime()))
        assert_that(fired, check)


def test_generator_is_deterministic_and_resumable():
    config = GenerateEvents(num_events=20_000, num_keys=50, max_out_of_orderness=3, seed=11,
                            num_splits=3).config
    source = GeneratorSource(config, True)

    def read(split, position=None, count=None):
        reader = source.split(1)[split].open(position)
        out = []
        while (batch := reader.read_batch(997)) is not None and (count is None
                                                                  or len(out) < count):
            out.extend(batch)
        return out

    full = [read(i) for i in range(3)]
    assert sum(map(len, full)) == 20_000
    assert full == [read(i) for i in range(3)]
    assert read(1, 5000, 10)[:10] == full[1][5000:5010]
    keys = {k for split in full for k, _, _ in split}
    assert keys == set(range(50))
    times = [t for split in full for _, _, t in split]
    assert -3 <= min(times) and max(times) < 20.0


def test_generator_late_events_are_behind_the_default_watermark():
    events = GenerateEvents(num_events=5000, max_out_of_orderness=1, late_fraction=0.1,
                            late_by=30, seed=2)
    reader = GeneratorSource(events.config, True).split(1)[0].open()
    generator = GeneratorSource(events.config, True).default_watermark_strategy() \
        .create_generator()
    late = 0
    while (batch := reader.read_batch(500)) is not None:
        for _, _, t in batch:
            if int(t * S) <= generator.current_watermark():
                late += 1
            generator.on_event(int(t * S))
    assert 350 < late < 650


def test_generator_pipeline_counts_per_window():
    with beam.Pipeline() as p:
        counts = (p | GenerateEvents(num_events=10_000, num_keys=7, seed=1)
                  | beam.WindowInto(FixedWindows(1))
                  | beam.Map(lambda e: e[0]) | beam.combiners.Count.PerElement()
                  | beam.Map(lambda kv: kv[1]) | beam.CombineGlobally(sum).without_defaults())
        assert_that(counts, equal_to([1000] * 10))


def test_unbounded_generator_with_rate_finishes_at_max_events():
    start = time.monotonic()
    with beam.Pipeline() as p:
        total = (p | GenerateEvents(num_events=300, events_per_second=1000, seed=4)
                 | beam.combiners.Count.Globally())
        assert_that(total, equal_to([300]))
    assert 0.2 < time.monotonic() - start < 10


def test_test_stream_elements_and_watermarks_drive_windows():
    stream = (TestStream()
              .add_elements([TimestampedValue(("a", 1), 1), TimestampedValue(("a", 2), 3)])
              .advance_watermark_to(10)
              .add_elements([TimestampedValue(("a", 5), 12), ("b", 7)], event_timestamp=15)
              .advance_watermark_to_infinity())

    class WithWindow(beam.DoFn):
        def process(self, kv, window=beam.DoFn.WindowParam):
            yield kv, float(window.start)

    with beam.Pipeline() as p:
        out = (p | stream | beam.WindowInto(FixedWindows(10)) | beam.CombinePerKey(sum)
               | beam.ParDo(WithWindow()))
        assert_that(out, equal_to([(("a", 3), 0.0), (("a", 5), 10.0), (("b", 7), 10.0)]))


def test_test_stream_tags_give_one_pcollection_each():
    stream = (TestStream().add_elements(["x"], tag="letters").add_elements([1], tag="numbers")
              .advance_watermark_to_infinity(tag="letters")
              .advance_watermark_to_infinity(tag="numbers"))
    with beam.Pipeline() as p:
        outputs = p | stream
        assert_that(outputs["letters"], equal_to(["x"]), label="letters")
        assert_that(outputs["numbers"], equal_to([1]), label="numbers")


@pytest.mark.parametrize("build, message", [
    (lambda: TestStream().advance_watermark_to(5).advance_watermark_to(5), "advance strictly"),
    (lambda: TestStream().advance_processing_time(0), "positive amount"),
    (lambda: TestStream().add_elements(["a"], event_timestamp="noon"), "event_timestamp"),
])
def test_test_stream_rejects_bad_scripts(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_watermark_is_reported_in_metrics():
    with beam.Pipeline() as p:
        _ = p | "Events" >> GenerateEvents(num_events=100, seed=1) | "Keys" >> beam.Map(
            lambda e: e[0])
    gauges = p.result.metrics().query(
        MetricsFilter().with_namespace("headrace").with_name("output_watermark"))["gauges"]
    assert {g.key.step for g in gauges} >= {"Events/Read(Generator(100))", "Keys"}
    assert all(g.committed.value == MAX_MICROS for g in gauges)
    assert MIN_MICROS < MAX_MICROS
