"""Stateful DoFns and timers: identical results to Apache Beam.

Streaming scenarios run a TestStream on Beam's BundleBasedDirectRunner and on
headrace's direct runner; batch scenarios run Create on Beam's DirectRunner.
Every builder gets the SDK module as ``beam`` and builds the same pipeline
with it; outputs are compared as sorted ``repr`` lines, so each scenario
puts what depends on order (buffer contents, counts, timestamps) into its
output values.
"""
import pytest

from .userstate_support import (
    assert_same_as_beam,
    test_stream,
    time_domain,
    userstate,
    window_bounds,
    wire_stateful_pardo,
    with_timestamps,
)


@pytest.fixture(autouse=True)
def _wired(monkeypatch):
    wire_stateful_pardo(monkeypatch)


def _tv(beam, value, seconds):
    return beam.window.TimestampedValue(value, seconds)


# -- event-time timers ------------------------------------------------------------------------

def build_buffer_and_flush(beam, p):
    """Buffer per key and window; flush when the watermark reaches the window's end."""
    us, td = userstate(beam), time_domain(beam)

    class BufferFlush(beam.DoFn):
        BUFFER = us.BagStateSpec("buffer", beam.coders.PickleCoder())
        FLUSH = us.TimerSpec("flush", td.WATERMARK)

        def process(self, kv, w=beam.DoFn.WindowParam,
                    buffer=beam.DoFn.StateParam(BUFFER), flush=beam.DoFn.TimerParam(FLUSH)):
            buffer.add(kv[1])
            flush.set(w.max_timestamp())

        @us.on_timer(FLUSH)
        def on_flush(self, key=beam.DoFn.KeyParam, w=beam.DoFn.WindowParam,
                     ts=beam.DoFn.TimestampParam, buffer=beam.DoFn.StateParam(BUFFER)):
            yield key, window_bounds(w), float(ts), sorted(buffer.read())
            buffer.clear()

    stream = (test_stream(beam)
              .add_elements([_tv(beam, ("a", 1), 1), _tv(beam, ("b", 2), 2),
                             _tv(beam, ("a", 3), 12)])
              .advance_watermark_to(5)
              .add_elements([_tv(beam, ("a", 4), 6), _tv(beam, ("b", 7), 3)])
              .advance_watermark_to(10)
              .add_elements([_tv(beam, ("a", 5), 15), _tv(beam, ("b", 6), 11)])
              .advance_watermark_to(25)
              .add_elements([_tv(beam, ("b", 8), 27)])
              .advance_watermark_to_infinity())
    return (p | stream | beam.WindowInto(beam.window.FixedWindows(10))
            | beam.ParDo(BufferFlush()) | with_timestamps(beam))


def test_buffer_and_flush_at_window_end(tmp_path):
    lines = assert_same_as_beam(build_buffer_and_flush, tmp_path)
    assert len(lines["out"]) == 5


def build_flush_at_window_end_exclusive(beam, p):
    """Timers at ``window.end`` (GroupIntoBatches' pattern), one instant past the window."""
    us, td = userstate(beam), time_domain(beam)

    class CountUntilEnd(beam.DoFn):
        COUNT = us.CombiningValueStateSpec("count", sum)
        END = us.TimerSpec("end", td.WATERMARK)

        def process(self, kv, w=beam.DoFn.WindowParam, count=beam.DoFn.StateParam(COUNT),
                    end=beam.DoFn.TimerParam(END)):
            count.add(kv[1])
            end.set(w.end)

        @us.on_timer(END)
        def on_end(self, key=beam.DoFn.KeyParam, w=beam.DoFn.WindowParam,
                   count=beam.DoFn.StateParam(COUNT)):
            yield key, window_bounds(w), count.read()

    stream = (test_stream(beam)
              .add_elements([_tv(beam, ("a", 1), 1), _tv(beam, ("a", 2), 9)])
              .advance_watermark_to(9.5)
              .add_elements([_tv(beam, ("a", 4), 9.9)])
              .advance_watermark_to(10)
              .add_elements([_tv(beam, ("a", 8), 10)])
              .advance_watermark_to_infinity())
    return (p | stream | beam.WindowInto(beam.window.FixedWindows(10))
            | beam.ParDo(CountUntilEnd()) | with_timestamps(beam))


def test_timer_at_window_end_fires_with_the_windows_state(tmp_path):
    assert_same_as_beam(build_flush_at_window_end_exclusive, tmp_path)


def build_timers_reset_and_output_timestamps(beam, p):
    """Re-setting replaces the pending timer; callbacks output at the firing time."""
    us, td = userstate(beam), time_domain(beam)

    class Debounce(beam.DoFn):
        LAST = us.ReadModifyWriteStateSpec("last", beam.coders.PickleCoder())
        ROUNDS = us.CombiningValueStateSpec("rounds", beam.coders.VarIntCoder(),
                                            beam.combiners.CountCombineFn())
        QUIET = us.TimerSpec("quiet", td.WATERMARK)

        def process(self, kv, ts=beam.DoFn.TimestampParam, last=beam.DoFn.StateParam(LAST),
                    quiet=beam.DoFn.TimerParam(QUIET)):
            last.write(kv[1])
            quiet.set(ts + 5)
            yield "seen", kv

        @us.on_timer(QUIET)
        def on_quiet(self, key=beam.DoFn.KeyParam, ts=beam.DoFn.TimestampParam,
                     last=beam.DoFn.StateParam(LAST), rounds=beam.DoFn.StateParam(ROUNDS),
                     quiet=beam.DoFn.TimerParam(QUIET)):
            rounds.add(1)
            yield "quiet", key, float(ts), last.read(), rounds.read()
            if rounds.read() < 3:
                quiet.set(ts + 100)  # re-set from its own callback

    stream = (test_stream(beam)
              .add_elements([_tv(beam, ("a", "x"), 1), _tv(beam, ("b", "p"), 2)])
              .add_elements([_tv(beam, ("a", "y"), 3)])
              .advance_watermark_to(7)
              .add_elements([_tv(beam, ("b", "q"), 6)])
              .advance_watermark_to(9)
              .advance_watermark_to(300)
              .add_elements([_tv(beam, ("c", "z"), 301)])
              .advance_watermark_to_infinity())
    return p | stream | beam.ParDo(Debounce()) | with_timestamps(beam)


def test_timers_reset_and_output_timestamps(tmp_path):
    lines = assert_same_as_beam(build_timers_reset_and_output_timestamps, tmp_path)
    assert "(('quiet', 'a', 8.0, 'y', 1), 8.0)" in lines["out"]


def build_timer_in_the_past(beam, p):
    """A timer set at or before the watermark fires right after the bundle (Beam's test)."""
    us, td = userstate(beam), time_domain(beam)

    class Fn(beam.DoFn):
        BUFFER = us.BagStateSpec("buffer", beam.coders.BytesCoder())
        EXPIRY = us.TimerSpec("expiry", td.WATERMARK)

        def process(self, element, buffer=beam.DoFn.StateParam(BUFFER),
                    timer=beam.DoFn.TimerParam(EXPIRY)):
            buffer.add(b"A" + str(element[1]).encode("latin1"))
            timer.set(20)

        @us.on_timer(EXPIRY)
        def expiry(self, buffer=beam.DoFn.StateParam(BUFFER)):
            yield b"".join(sorted(buffer.read()))

    stream = (test_stream(beam).advance_watermark_to(10).add_elements([1, 2])
              .add_elements([3]).advance_watermark_to(25).add_elements([4])
              .add_elements([5]))
    return (p | stream | beam.Map(lambda x: ("mykey", x)) | beam.ParDo(Fn())
            | with_timestamps(beam))


def test_timer_set_in_the_past_fires_after_the_bundle(tmp_path):
    lines = assert_same_as_beam(build_timer_in_the_past, tmp_path)
    assert len(lines["out"]) == 3


def build_timer_window_and_key(beam, p):
    """Beam's test_timer_output_timestamp_and_window: the callback's window and key."""
    us, td = userstate(beam), time_domain(beam)

    class Fn(beam.DoFn):
        EMIT = us.TimerSpec("emit", td.WATERMARK)

        def process(self, element, timer=beam.DoFn.TimerParam(EMIT)):
            timer.set(10)

        @us.on_timer(EMIT)
        def emit(self, window=beam.DoFn.WindowParam, ts=beam.DoFn.TimestampParam,
                 key=beam.DoFn.KeyParam):
            yield f"timer-{key}", int(ts), int(window.start), int(window.end)

    stream = test_stream(beam).advance_watermark_to(10).add_elements([1])
    return (p | stream | beam.Map(lambda x: (("my", 7), x))
            | beam.WindowInto(beam.window.FixedWindows(5)) | beam.ParDo(Fn())
            | with_timestamps(beam))


def test_timer_window_key_and_timestamp(tmp_path):
    assert_same_as_beam(build_timer_window_and_key, tmp_path)


# -- processing-time timers --------------------------------------------------------------------

def build_processing_time_timers(beam, p):
    us, td = userstate(beam), time_domain(beam)

    class Fn(beam.DoFn):
        TIMER = us.TimerSpec("t", td.REAL_TIME)
        SEEN = us.BagStateSpec("seen", beam.coders.PickleCoder())

        def process(self, kv, ts=beam.DoFn.TimestampParam, timer=beam.DoFn.TimerParam(TIMER),
                    seen=beam.DoFn.StateParam(SEEN)):
            seen.add(kv[1])
            timer.set(kv[1] * 3)  # absolute processing time, as in Beam
            yield "process", kv, float(ts)

        @us.on_timer(TIMER)
        def fired(self, key=beam.DoFn.KeyParam, ts=beam.DoFn.TimestampParam,
                  w=beam.DoFn.WindowParam, seen=beam.DoFn.StateParam(SEEN)):
            yield "fired", key, sorted(seen.read()), float(ts), window_bounds(w)
            seen.clear()

    stream = (test_stream(beam).advance_watermark_to(100)
              .add_elements([_tv(beam, ("a", 1), 101)])
              .add_elements([_tv(beam, ("b", 3), 102)])
              .advance_processing_time(5)
              .add_elements([_tv(beam, ("a", 2), 103)])
              .advance_processing_time(5)
              .advance_watermark_to(200)
              .add_elements([_tv(beam, ("a", 4), 104)])  # its timer (12) never fires
              .advance_watermark_to_infinity())
    return p | stream | beam.ParDo(Fn()) | with_timestamps(beam)


def test_processing_time_timers(tmp_path):
    lines = assert_same_as_beam(build_processing_time_timers, tmp_path)
    assert sum(line.startswith("(('fired'") for line in lines["out"]) == 3


def build_generate_with_processing_time_timer(beam, p):
    """Beam's test_generate_sequence_with_realtime_timer: a timer re-set by its callback."""
    us, td = userstate(beam), time_domain(beam)

    class Generate(beam.DoFn):
        EMIT = us.TimerSpec("emit", td.REAL_TIME)
        COUNT = us.CombiningValueStateSpec("count", beam.coders.VarIntCoder(),
                                           beam.combiners.CountCombineFn())

        def process(self, element, emit=beam.DoFn.TimerParam(EMIT)):
            emit.set(1)
            yield element[1]

        @us.on_timer(EMIT)
        def emit_values(self, emit=beam.DoFn.TimerParam(EMIT),
                        count=beam.DoFn.StateParam(COUNT)):
            done = count.read() or 0
            if done == 3:
                return
            count.add(1)
            emit.set(done + 2)
            yield f"value-{done}"

    stream = (test_stream(beam).advance_watermark_to(0).add_elements([("key", 0)])
              .advance_processing_time(1).add_elements([("key", 1)])
              .advance_processing_time(1).add_elements([("key", 2)])
              .advance_processing_time(1).add_elements([("key", 3)]))
    return p | stream | beam.ParDo(Generate()) | with_timestamps(beam)


def test_processing_time_timer_reset_by_its_callback(tmp_path):
    assert_same_as_beam(build_generate_with_processing_time_timer, tmp_path)


# -- state types ----------------------------------------------------------------------------------

def build_bag_state_cleared_by_timer(beam, p):
    """Beam's test_clearing_bag_state, with a second key and more elements."""
    us, td = userstate(beam), time_domain(beam)

    class Fn(beam.DoFn):
        BAG = us.BagStateSpec("bag", beam.coders.StrUtf8Coder())
        EMIT = us.TimerSpec("emit", td.WATERMARK)
        CLEAR = us.TimerSpec("clear", td.WATERMARK)

        def process(self, element, bag=beam.DoFn.StateParam(BAG),
                    emit=beam.DoFn.TimerParam(EMIT), clear=beam.DoFn.TimerParam(CLEAR)):
            bag.add(element[1])
            clear.set(100)
            emit.set(1000)

        @us.on_timer(EMIT)
        def emit_values(self, key=beam.DoFn.KeyParam, bag=beam.DoFn.StateParam(BAG)):
            yield key, sorted(bag.read())

        @us.on_timer(CLEAR)
        def clear_values(self, bag=beam.DoFn.StateParam(BAG)):
            bag.clear()
            bag.add("after-clear")

    stream = (test_stream(beam).advance_watermark_to(0)
              .add_elements([("k1", "v1"), ("k2", "w1")])
              .add_elements([("k1", "v2")])
              .advance_watermark_to(100)
              .add_elements([("k2", "w2")])
              .advance_watermark_to_infinity())
    return p | stream | beam.ParDo(Fn()) | with_timestamps(beam)


def test_bag_state(tmp_path):
    assert_same_as_beam(build_bag_state_cleared_by_timer, tmp_path)


def build_combining_state(beam, p):
    """Index assignment with ``sum`` (Beam's argument form) and a CombineFn with a coder."""
    us = userstate(beam)

    class Index(beam.DoFn):
        INDEX = us.CombiningValueStateSpec("index", sum)
        MEAN = us.CombiningValueStateSpec("mean", beam.coders.PickleCoder(),
                                          beam.combiners.MeanCombineFn())
        ITEMS = us.CombiningValueStateSpec("items", combine_fn=beam.combiners.ToListCombineFn())

        def process(self, element, index=beam.DoFn.StateParam(INDEX),
                    mean=beam.DoFn.StateParam(MEAN), items=beam.DoFn.StateParam(ITEMS)):
            key, value = element
            current = index.read()
            index.add(1)
            mean.add(value)
            items.add(value)
            yield key, value, current, mean.read(), sorted(items.read())

    stream = (test_stream(beam).advance_watermark_to(10)
              .add_elements([("a", 1)]).add_elements([("a", 4), ("b", 10)])
              .advance_watermark_to(25).add_elements([("a", 7)])
              .advance_watermark_to_infinity())
    return p | stream | beam.ParDo(Index())


def test_combining_state(tmp_path):
    assert_same_as_beam(build_combining_state, tmp_path)


def build_set_state(beam, p):
    """Beam's set-state tests: duplicates collapse; clear then add in a callback."""
    us, td = userstate(beam), time_domain(beam)

    class Fn(beam.DoFn):
        SET = us.SetStateSpec("set", beam.coders.VarIntCoder())
        EMIT = us.TimerSpec("emit", td.WATERMARK)
        RESET = us.TimerSpec("reset", td.WATERMARK)

        def process(self, element, s=beam.DoFn.StateParam(SET),
                    emit=beam.DoFn.TimerParam(EMIT), reset=beam.DoFn.TimerParam(RESET)):
            s.add(element[1])
            emit.set(20)
            reset.set(15)
            yield element[0], sorted(s.read())

        @us.on_timer(RESET)
        def on_reset(self, s=beam.DoFn.StateParam(SET)):
            s.clear()
            s.add(100)

        @us.on_timer(EMIT)
        def on_emit(self, key=beam.DoFn.KeyParam, s=beam.DoFn.StateParam(SET)):
            yield "emit", key, sorted(s.read())

    stream = (test_stream(beam).advance_watermark_to(10)
              .add_elements([("k", 1), ("k", 2), ("k", 3)]).add_elements([("k", 2), ("j", 5)])
              .advance_watermark_to(24)
              .advance_watermark_to_infinity())
    return p | stream | beam.ParDo(Fn())


def test_set_state(tmp_path):
    assert_same_as_beam(build_set_state, tmp_path)


def build_read_modify_write_state(beam, p):
    """Beam's clearing test: after ``clear`` a read is None, then writes are seen."""
    us = userstate(beam)

    class Fn(beam.DoFn):
        VALUE = us.ReadModifyWriteStateSpec("value", beam.coders.StrUtf8Coder())

        def process(self, element, last=beam.DoFn.StateParam(VALUE)):
            value = last.read()
            if value is not None:
                yield "previous", value
            if element[1] % 2:
                last.clear()
            last.write(f"{last.read()}:{element[1]}")
            if element[1] == 4:
                yield "now", last.read()

    stream = (test_stream(beam).advance_watermark_to(0).add_elements([("a", 1)])
              .advance_watermark_to(10).add_elements([("a", 2)])
              .advance_watermark_to(20).add_elements([("a", 3)]).add_elements([("a", 4)])
              .advance_watermark_to_infinity())
    return p | stream | beam.ParDo(Fn())


def test_read_modify_write_state(tmp_path):
    assert_same_as_beam(build_read_modify_write_state, tmp_path)


# -- dynamic timer tags ------------------------------------------------------------------------

def build_dynamic_timers(beam, p):
    """Beam's dynamic-timer tests in one pipeline: tags, clear, clear then set, two families."""
    us, td = userstate(beam), time_domain(beam)

    class Fn(beam.DoFn):
        FAMILY1 = us.TimerSpec("family1", td.WATERMARK)
        FAMILY2 = us.TimerSpec("family2", td.WATERMARK)
        GC = us.TimerSpec("gc", td.WATERMARK)

        def process(self, element, f1=beam.DoFn.TimerParam(FAMILY1),
                    f2=beam.DoFn.TimerParam(FAMILY2), gc=beam.DoFn.TimerParam(GC)):
            if element[1] == "set":
                f1.set(10, dynamic_timer_tag="t1")
                f1.set(20, dynamic_timer_tag="t2")
                f1.set(30, dynamic_timer_tag="t3")
                f2.set(30, dynamic_timer_tag="u1")
                f2.set(10, dynamic_timer_tag="u2")
                f2.set(11)
                f2.set(12, dynamic_timer_tag="")  # the default tag: replaces the 11
                gc.set(40)
            if element[1] == "clear":
                f1.clear(dynamic_timer_tag="t3")
                f2.set(50, dynamic_timer_tag="u3")
                f2.clear(dynamic_timer_tag="u3")
                f2.set(45, dynamic_timer_tag="u3")

        @us.on_timer(FAMILY1)
        def on_family1(self, ts=beam.DoFn.TimestampParam, tag=beam.DoFn.DynamicTimerTagParam,
                       key=beam.DoFn.KeyParam):
            yield "f1", key, tag, float(ts)

        @us.on_timer(FAMILY2)
        def on_family2(self, ts=beam.DoFn.TimestampParam, tag=beam.DoFn.DynamicTimerTagParam):
            yield "f2", tag, float(ts)

        @us.on_timer(GC)
        def on_gc(self, ts=beam.DoFn.TimestampParam, tag=beam.DoFn.DynamicTimerTagParam):
            yield "gc", tag, float(ts)

    stream = (test_stream(beam).advance_watermark_to(5)
              .add_elements([("k", "set"), ("j", "set")])
              .advance_watermark_to(10)
              .add_elements([("k", "clear")])
              .advance_watermark_to_infinity())
    return p | stream | beam.ParDo(Fn()) | with_timestamps(beam)


def test_dynamic_timer_tags(tmp_path):
    lines = assert_same_as_beam(build_dynamic_timers, tmp_path)
    assert not any("'t3'" in line and "'k'" in line for line in lines["out"])


# -- batch ----------------------------------------------------------------------------------------

def build_batch_windows_and_keys(beam, p):
    """Batch: sliding windows (state per window), tuple keys, every state type, timers."""
    us, td = userstate(beam), time_domain(beam)

    class Summary(beam.DoFn):
        BAG = us.BagStateSpec("bag", beam.coders.PickleCoder())
        TOTAL = us.CombiningValueStateSpec("total", sum)
        DISTINCT = us.SetStateSpec("distinct", beam.coders.PickleCoder())
        FIRST = us.ReadModifyWriteStateSpec("first", beam.coders.PickleCoder())
        END = us.TimerSpec("end", td.WATERMARK)

        def process(self, kv, w=beam.DoFn.WindowParam, bag=beam.DoFn.StateParam(BAG),
                    total=beam.DoFn.StateParam(TOTAL), distinct=beam.DoFn.StateParam(DISTINCT),
                    first=beam.DoFn.StateParam(FIRST), end=beam.DoFn.TimerParam(END)):
            bag.add(kv[1])
            total.add(kv[1])
            distinct.add(kv[1] % 3)
            if first.read() is None:
                first.write("set")
            end.set(w.end)

        @us.on_timer(END)
        def on_end(self, key=beam.DoFn.KeyParam, w=beam.DoFn.WindowParam,
                   ts=beam.DoFn.TimestampParam, bag=beam.DoFn.StateParam(BAG),
                   total=beam.DoFn.StateParam(TOTAL), distinct=beam.DoFn.StateParam(DISTINCT),
                   first=beam.DoFn.StateParam(FIRST)):
            yield (key, window_bounds(w), float(ts), sorted(bag.read()), total.read(),
                   sorted(distinct.read()), first.read())

    data = [(("u", 1), 1, 1), (("u", 1), 5, 4), (("u", 2), 7, 6), (("u", 1), 9, 11),
            (("u", 2), 2, 12), (("u", 1), 3, 14)]
    return (p | beam.Create(data)
            | beam.Map(lambda e: beam.window.TimestampedValue((e[0], e[1]), e[2]))
            | beam.WindowInto(beam.window.SlidingWindows(10, 5))
            | beam.ParDo(Summary()) | with_timestamps(beam))


def test_batch_state_per_key_and_window(tmp_path):
    lines = assert_same_as_beam(build_batch_windows_and_keys, tmp_path, streaming=False)
    assert len(lines["out"]) == 7


def build_batch_global_window(beam, p):
    """Batch, global window: a flush at the end of the global window and process outputs."""
    us, td = userstate(beam), time_domain(beam)

    class Count(beam.DoFn):
        COUNT = us.CombiningValueStateSpec("count", beam.coders.VarIntCoder(),
                                           beam.combiners.CountCombineFn())
        FLUSH = us.TimerSpec("flush", td.WATERMARK)

        def process(self, kv, count=beam.DoFn.StateParam(COUNT),
                    flush=beam.DoFn.TimerParam(FLUSH), key=beam.DoFn.KeyParam):
            count.add(1)
            flush.set(beam.window.GlobalWindow().max_timestamp())
            yield "key", key

        @us.on_timer(FLUSH)
        def on_flush(self, key=beam.DoFn.KeyParam, count=beam.DoFn.StateParam(COUNT)):
            yield "count", key, count.read()

    return (p | beam.Create([("a", 1), ("b", 2), ("a", 3), (None, 4), (7, 5), ("a", 6)])
            | beam.ParDo(Count()))


def test_batch_global_window(tmp_path):
    assert_same_as_beam(build_batch_global_window, tmp_path, streaming=False)


def build_batch_side_input(beam, p):
    """Batch: a stateful DoFn with a side input."""
    us = userstate(beam)

    class Threshold(beam.DoFn):
        TOTAL = us.CombiningValueStateSpec("total", sum)

        def process(self, kv, limits, total=beam.DoFn.StateParam(TOTAL)):
            limit = limits["limit"]
            total.add(kv[1])
            if total.read() >= limit:
                yield kv[0], "over", limit
            else:
                yield kv[0], "under", limit

    # The side input holds (key, value) pairs: Beam 2.77 picks the stateful ParDo's "main"
    # input from a set that includes the side input, so it must look keyed too.
    limits = p | "Limit" >> beam.Create([("limit", 10)])
    return (p | beam.Create([("a", 4), ("b", 20)])
            | beam.ParDo(Threshold(), beam.pvalue.AsDict(limits)))


def test_batch_side_input(tmp_path):
    assert_same_as_beam(build_batch_side_input, tmp_path, streaming=False)
