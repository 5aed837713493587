"""Window expiry, watermark holds and timer order of stateful DoFns: hand-computed.

These drive one ``StatefulParDoOperator`` directly, so that the state
backend, the pending timers and the output watermark can be inspected
between steps.
"""
import warnings

import pytest

import headrace as beam
from headrace.runners.operators.stateful_pardo import DROPPED_LATE
from headrace.sdk.coders import encode_key
from headrace.sdk.timestamp import MAX_MICROS
from headrace.sdk.window import FixedWindows, IntervalWindow, Sessions
from headrace.sdk.windowing import Windowing
from headrace.testing.test_stream import TestStream
from headrace.testing.util import assert_that, equal_to
from headrace.transforms.timeutil import TimeDomain
from headrace.transforms.userstate import (
    BagStateSpec,
    CombiningValueStateSpec,
    TimerSpec,
    on_timer,
)

from .userstate_support import OperatorHarness, record_operators, wire_stateful_pardo

W0 = IntervalWindow(0, 10)
W1 = IntervalWindow(10, 20)


@pytest.fixture(autouse=True)
def _wired(monkeypatch):
    wire_stateful_pardo(monkeypatch)


class Buffer(beam.DoFn):
    """Buffers per key and window; a timer at ``fire`` seconds after the window's start."""

    BUFFER = BagStateSpec("buffer")
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def __init__(self, fire_offset=None):
        self.fire_offset = fire_offset

    def process(self, kv, w=beam.DoFn.WindowParam, buffer=beam.DoFn.StateParam(BUFFER),
                flush=beam.DoFn.TimerParam(FLUSH)):
        buffer.add(kv[1])
        if self.fire_offset is not None:
            flush.set(w.start + self.fire_offset)

    @on_timer(FLUSH)
    def on_flush(self, key=beam.DoFn.KeyParam, w=beam.DoFn.WindowParam,
                 buffer=beam.DoFn.StateParam(BUFFER)):
        yield key, w.start.micros // 1_000_000, sorted(buffer.read())


def namespaces(h, key):
    return h.op.backend.namespaces(encode_key(key))


def test_state_of_a_window_is_deleted_when_it_expires():
    h = OperatorHarness(Buffer(), Windowing(FixedWindows(10)))
    h.add((("a", 1), 1), windows=(W0,))
    h.add((("a", 2), 12), (("b", 3), 13), windows=(W1,))
    assert namespaces(h, "a") == [W0, W1]
    h.watermark(10)  # the window's end: not expired yet (expiry is past end + lateness)
    assert namespaces(h, "a") == [W0, W1]
    h.watermark(10.000001)
    assert namespaces(h, "a") == [W1]
    assert namespaces(h, "b") == [W1]
    h.watermark(20.000001)
    assert h.op.backend.is_empty() and len(h.op.timers) == 0
    assert h.op.output_watermark == 20_000_001
    h.close()


def test_allowed_lateness_keeps_state_and_accepts_late_elements_until_expiry():
    h = OperatorHarness(Buffer(fire_offset=9.999999),
                        Windowing(FixedWindows(10), allowed_lateness_micros=5_000_000))
    h.add((("a", 1), 1), windows=(W0,))
    h.watermark(10)  # the timer fires at the window's end; the state stays (lateness 5 s)
    assert h.out.values() == [("a", 0, [1])]
    assert namespaces(h, "a") == [W0]
    h.add((("a", 2), 2), windows=(W0,))  # late but within the allowed lateness: processed
    h.watermark(15)
    assert h.out.values() == [("a", 0, [1]), ("a", 0, [1, 2])]
    h.watermark(15.000001)
    assert h.op.backend.is_empty()
    h.add((("a", 3), 3), windows=(W0,))  # the window expired: dropped, counted
    assert h.op.backend.is_empty() and len(h.out.values()) == 2
    assert h.op.metrics.counter(DROPPED_LATE).value == 1
    h.close()


def test_expiry_deletes_pending_timers_of_both_domains():
    class Fn(beam.DoFn):
        EVENT = TimerSpec("event", TimeDomain.WATERMARK)
        CLOCK = TimerSpec("clock", TimeDomain.REAL_TIME)

        def process(self, kv, event=beam.DoFn.TimerParam(EVENT),
                    clock=beam.DoFn.TimerParam(CLOCK)):
            event.set(9.5)
            event.set(9.5, dynamic_timer_tag="other")
            clock.set(1000)

        @on_timer(EVENT)
        def on_event(self, tag=beam.DoFn.DynamicTimerTagParam):
            yield "event", tag

        @on_timer(CLOCK)
        def on_clock(self):
            yield "clock"

    h = OperatorHarness(Fn(), Windowing(FixedWindows(10)))
    h.add((("a", 1), 1), windows=(W0,))
    assert len(h.op.timers) == 3
    h.watermark(10.000001)
    assert sorted(h.out.values()) == [("event", ""), ("event", "other")]
    assert len(h.op.timers) == 0  # the processing-time timer went with the window
    h.advance_clock(2000)
    assert len(h.out.values()) == 2
    h.close()


def test_timer_set_past_expiry_keeps_the_window_until_it_fires():
    h = OperatorHarness(Buffer(fire_offset=25), Windowing(FixedWindows(10)))
    h.add((("a", 1), 1), windows=(W0,))
    h.watermark(20)  # expired, but its timer at 25 is pending: state kept for it
    assert namespaces(h, "a") == [W0]
    h.watermark(25)
    assert h.out.timestamped() == [(("a", 0, [1]), 25.0)]
    assert h.op.backend.is_empty() and len(h.op.timers) == 0
    h.close()


def test_final_watermark_clears_everything():
    h = OperatorHarness(Buffer(fire_offset=10 ** 12))  # a timer past the end of time
    h.add((("a", 1), 1))
    h.watermark(MAX_MICROS / 1e6)
    assert h.op.backend.is_empty() and len(h.op.timers) == 0
    assert h.op.output_watermark == MAX_MICROS
    h.close()


class HoldingTimer(beam.DoFn):
    LATER = TimerSpec("later", TimeDomain.WATERMARK)

    def process(self, kv, ts=beam.DoFn.TimestampParam, later=beam.DoFn.TimerParam(LATER)):
        later.set(100, output_timestamp=ts)

    @on_timer(LATER)
    def on_later(self, ts=beam.DoFn.TimestampParam, key=beam.DoFn.KeyParam):
        yield key, float(ts)


def test_output_timestamp_holds_the_watermark_and_stamps_outputs():
    h = OperatorHarness(HoldingTimer())
    h.add((("a", 1), 5))
    h.watermark(50)
    assert h.op.output_watermark == 5_000_000  # held at the timer's output timestamp
    h.watermark(99)
    assert h.op.output_watermark == 5_000_000 and not h.out.values()
    h.watermark(100)
    assert h.out.timestamped() == [(("a", 100.0), 5.0)]  # fired at 100, output at 5
    assert h.op.output_watermark == 100_000_000
    h.close()


def test_clearing_a_timer_releases_its_hold():
    class Fn(HoldingTimer):
        def process(self, kv, ts=beam.DoFn.TimestampParam,
                    later=beam.DoFn.TimerParam(HoldingTimer.LATER)):
            if kv[1] == "set":
                later.set(100, output_timestamp=ts)
            else:
                later.clear()

    h = OperatorHarness(Fn())
    h.add((("a", "set"), 5))
    h.watermark(50)
    assert h.op.output_watermark == 5_000_000
    h.add((("a", "clear"), 50))
    h.watermark(60)
    assert h.op.output_watermark == 60_000_000
    h.close()


def test_processing_time_timer_with_output_timestamp_holds_until_it_fires():
    class Fn(beam.DoFn):
        CLOCK = TimerSpec("clock", TimeDomain.REAL_TIME)

        def process(self, kv, ts=beam.DoFn.TimestampParam, clock=beam.DoFn.TimerParam(CLOCK)):
            clock.set(30, output_timestamp=ts)

        @on_timer(CLOCK)
        def on_clock(self, ts=beam.DoFn.TimestampParam):
            yield float(ts)

    h = OperatorHarness(Fn())
    h.add((("a", 1), 7))
    h.watermark(40)
    assert h.op.output_watermark == 7_000_000
    h.advance_clock(30)
    assert h.out.timestamped() == [(30.0, 7.0)]
    assert h.op.output_watermark == 40_000_000
    h.close()


def test_event_timers_fire_one_at_a_time_in_timestamp_order():
    """A callback's new timer fires in its place (Beam's BundleBasedDirectRunner fires a
    whole round first; Beam's Java runners and Flink keep strict order, as here)."""

    class Fn(beam.DoFn):
        A = TimerSpec("a", TimeDomain.WATERMARK)
        B = TimerSpec("b", TimeDomain.WATERMARK)
        C = TimerSpec("c", TimeDomain.WATERMARK)
        LOG = BagStateSpec("log")

        def process(self, kv, a=beam.DoFn.TimerParam(A), b=beam.DoFn.TimerParam(B)):
            a.set(10)
            b.set(20)

        @on_timer(A)
        def on_a(self, c=beam.DoFn.TimerParam(C), log=beam.DoFn.StateParam(LOG)):
            c.set(15)
            log.add("A")

        @on_timer(B)
        def on_b(self, log=beam.DoFn.StateParam(LOG)):
            log.add("B")
            yield log.read()

        @on_timer(C)
        def on_c(self, log=beam.DoFn.StateParam(LOG)):
            log.add("C")

    h = OperatorHarness(Fn())
    h.add((("k", 1), 0))
    h.watermark(100)
    assert h.out.values() == [["A", "C", "B"]]
    h.close()


def test_state_is_per_window_with_sliding_windows():
    class Count(beam.DoFn):
        COUNT = CombiningValueStateSpec("count", sum)

        def process(self, kv, w=beam.DoFn.WindowParam, count=beam.DoFn.StateParam(COUNT)):
            count.add(1)
            yield int(w.start), count.read()

    with beam.Pipeline() as p:
        out = (p | beam.Create([("k", 1), ("k", 2)])
               | beam.Map(lambda kv: beam.window.TimestampedValue(kv, kv[1]))
               | beam.WindowInto(beam.window.SlidingWindows(4, 2)) | beam.ParDo(Count()))
        assert_that(out, equal_to([(-2, 1), (0, 1), (0, 2), (2, 1)]))


def test_merging_windows_keep_each_elements_window(recwarn):
    class Collect(beam.DoFn):
        BUFFER = BagStateSpec("buffer")

        def process(self, kv, w=beam.DoFn.WindowParam, buffer=beam.DoFn.StateParam(BUFFER)):
            buffer.add(kv[1])
            yield int(w.start), int(w.end), buffer.read()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with beam.Pipeline() as p:
            out = (p | beam.Create([("k", 1), ("k", 3)])
                   | beam.Map(lambda kv: beam.window.TimestampedValue(kv, kv[1]))
                   | beam.WindowInto(Sessions(5)) | beam.ParDo(Collect()))
            # As on Beam's direct runner: no merging, one state per unmerged session window.
            assert_that(out, equal_to([(1, 6, [1]), (3, 8, [3])]))
    assert any("merging windows" in str(w.message) for w in caught)


@pytest.mark.direct_only("inspects the direct runner's operator after the run")
def test_pipeline_leaves_no_state_behind(monkeypatch):
    created = record_operators(monkeypatch)
    stream = (TestStream()
              .add_elements([beam.window.TimestampedValue(("a", 1), 1),
                             beam.window.TimestampedValue(("b", 2), 12)])
              .advance_watermark_to(15)
              .add_elements([beam.window.TimestampedValue(("b", 3), 14)])
              .advance_watermark_to_infinity())
    with beam.Pipeline() as p:
        out = (p | stream | beam.WindowInto(beam.window.FixedWindows(10))
               | beam.ParDo(Buffer(fire_offset=9.999999)))
        assert_that(out, equal_to([("a", 0, [1]), ("b", 10, [2, 3])]))
    (op,) = created
    assert op.backend_empty_at_close and len(op.timers) == 0 and not op._live
