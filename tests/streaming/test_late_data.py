"""Late data: the WindowInto late-data output, dropping and counting, garbage collection.

Hand-computed expectations (Beam has no late-data output; where Beam's Python
driver has no garbage collection, headrace follows Beam's model as its Java
runners implement it). Rows are ``pane_parity.pane_row`` tuples.
"""
import pytest

import headrace as beam
from headrace.runners.direct import executor
from headrace.runners.operators.base import WindowIntoOperator
from headrace.sdk.primitives import WindowInto
from headrace.sdk.timestamp import MAX_MICROS
from headrace.testing.test_stream import TestStream
from headrace.testing.util import assert_that, equal_to
from headrace.transforms import trigger as t
from headrace.window import FixedWindows, SlidingWindows, TimestampedValue

from .pane_parity import rows, run_panes, system_counter

S = 1_000_000


@pytest.fixture(autouse=True)
def _window_into_gets_its_windowing(monkeypatch):
    """Build WindowInto operators from the whole Windowing (late tag, lateness).

    The executor may still pass only the WindowFn; this makes the tests independent of that.
    """
    original = executor._make_operator

    def make(node):
        if isinstance(node.transform, WindowInto):
            return WindowIntoOperator(node.full_label, node.transform.windowing)
        return original(node)

    monkeypatch.setattr(executor, "_make_operator", make)


def _stream(*steps):
    stream = TestStream()
    for step in steps:
        if step[0] == "elements":
            stream = stream.add_elements([TimestampedValue(v, ts) for v, ts in step[1]])
        elif step[0] == "watermark":
            stream = stream.advance_watermark_to(step[1])
        elif step[0] == "processing":
            stream = stream.advance_processing_time(step[1])
    return stream.advance_watermark_to_infinity()


def _late_output(steps, window_fn, lateness):
    with beam.Pipeline() as p:
        windowed, late = (p | _stream(*steps)
                          | WindowInto(window_fn, allowed_lateness=lateness)
                          .with_late_data_output("late"))
        stamped = late | beam.Map(lambda v, ts=beam.DoFn.TimestampParam: (v, ts.micros))
        grouped = (windowed | beam.Map(lambda v: ("k", v)) | beam.GroupByKey()
                   | beam.MapTuple(lambda k, vs, w=beam.DoFn.WindowParam:
                                   (sorted(vs), w.start.micros // S)))
        return p, stamped, grouped


def test_late_data_output_gets_elements_too_late_for_all_windows():
    steps = [("elements", [("a", 1), ("b", 12)]),
             ("watermark", 14),
             # [0, 10) has expired (14 > 10 + 3): 'c' (at 5) is too late; 'd' (at 11) is in
             # [10, 20), still open.
             ("elements", [("c", 5), ("d", 11)]),
             ("watermark", 30),
             ("elements", [("e", 29.5)])]  # [20, 30) is late but not expired (30 <= 33)
    p, late, grouped = _late_output(steps, FixedWindows(10), 3)
    assert_that(late, equal_to([("c", 5 * S)]), label="late")
    assert_that(grouped, equal_to([(["a"], 0), (["b", "d"], 10), (["e"], 20)]),
                label="grouped")
    p.run()


def test_late_data_output_keeps_elements_with_one_open_window():
    # Sliding windows [0, 10) and [5, 15) for an element at 7: at watermark 12 with no
    # lateness [0, 10) is expired but [5, 15) is open, so the element stays in the main output
    # (the grouping drops it from [0, 10) only, and counts that).
    steps = [("elements", [("a", 1)]), ("watermark", 12), ("elements", [("late", 7)]),
             ("watermark", 16), ("elements", [("gone", 8)])]
    with beam.Pipeline() as p:
        windowed, late = (p | _stream(*steps)
                          | WindowInto(SlidingWindows(10, 5)).with_late_data_output("late"))
        grouped = (windowed | beam.Map(lambda v: ("k", v)) | beam.GroupByKey()
                   | beam.MapTuple(lambda k, vs, w=beam.DoFn.WindowParam:
                                   (sorted(vs), w.start.micros // S)))
        assert_that(late | beam.Map(lambda v, ts=beam.DoFn.TimestampParam: (v, ts.micros)),
                    equal_to([("gone", 8 * S)]), label="late")
        assert_that(grouped, equal_to([(["a"], -5), (["a"], 0), (["late"], 5)]),
                    label="grouped")
    result = p.result
    assert system_counter(result, "dropped_late_elements") == 1


def test_late_data_output_unpacks_and_indexes_like_tagged_outputs():
    with beam.Pipeline() as p:
        result = (p | beam.Create([1, 2])
                  | WindowInto(FixedWindows(10)).with_late_data_output("too_late"))
        main, late = result
        assert result["too_late"] is late and result.too_late is late and result[None] is main
        assert result.main is main and len(result) == 2
        assert main.windowing.window_fn == FixedWindows(10)
        assert late.windowing.is_global()
        assert_that(main, equal_to([1, 2]), label="main")
        assert_that(late, equal_to([]), label="late")


def test_late_data_output_validation():
    with pytest.raises(TypeError, match="tag"):
        WindowInto(FixedWindows(10)).with_late_data_output(3)
    with pytest.raises(ValueError, match="main"):
        WindowInto(FixedWindows(10)).with_late_data_output("main")
    plain = WindowInto(FixedWindows(10))
    tagged = plain.with_late_data_output()
    assert plain.windowing.late_data_tag is None and tagged.windowing.late_data_tag == "late"
    assert plain.windowing == tagged.windowing


# ------------------------------------------------------------------ dropping and counting


def _panes(steps, window_fn, trigger=None, mode=None, lateness=0, combine=False):
    script = [s for s in steps] + [("infinity",)]

    def build(b):
        kwargs = {}
        if trigger is not None:
            kwargs = {"trigger": trigger, "accumulation_mode": mode}
        grouping = b.CombinePerKey(sum) if combine else b.GroupByKey()
        return b.WindowInto(window_fn, allowed_lateness=lateness, **kwargs) | grouping

    lines, result = run_panes(beam, script, build, unsafe=True)
    # In firing order: by window, then pane index.
    return sorted(rows(lines), key=lambda r: (r[2], r[5])), result


def test_elements_beyond_lateness_are_dropped_and_counted_per_window():
    steps = [("elements", [(("k", 1), 1)]), ("watermark", 30),
             ("elements", [(("k", 2), 2), (("k", 3), 3), (("k", 4), 25)])]
    got, result = _panes(steps, SlidingWindows(10, 5), lateness=5)
    # 2 and 3 are in [-5, 5) and [0, 10): both expired (30 > 10 + 5): 4 drops.
    assert system_counter(result, "dropped_late_elements") == 4
    assert sorted((r[1], r[2][0] // S, r[4]) for r in got) == [
        ([1], -5, "ON_TIME"), ([1], 0, "ON_TIME"), ([4], 20, "LATE"), ([4], 25, "ON_TIME")]


def test_garbage_collection_fires_what_was_not_emitted_yet():
    # The late trigger waits for two elements; the single late element is emitted when the
    # window is garbage-collected (Beam's model; Beam's Python driver would lose it).
    steps = [("elements", [(("k", 1), 1)]), ("watermark", 10),
             ("elements", [(("k", 2), 2)]), ("watermark", 40)]
    got, _ = _panes(steps, FixedWindows(10), t.AfterWatermark(late=t.AfterCount(2)),
                    t.AccumulationMode.DISCARDING, lateness=20)
    assert got == [("k", [1], (0, 10 * S), 10 * S - 1, "ON_TIME", 0, 0, True, False),
                   ("k", [2], (0, 10 * S), 10 * S - 1, "LATE", 1, 1, False, True)]


def test_garbage_collection_emits_leftovers_of_a_repeated_count():
    steps = [("elements", [(("k", i), i) for i in (1, 2, 3)])]
    got, _ = _panes(steps, FixedWindows(10), t.Repeatedly(t.AfterCount(2)),
                    t.AccumulationMode.DISCARDING, combine=True)
    assert got == [("k", 6, (0, 10 * S), 10 * S - 1, "EARLY", 0, -1, True, False)]
    steps = [("elements", [(("k", 1), 1), (("k", 2), 2)]), ("elements", [(("k", 3), 3)])]
    got, _ = _panes(steps, FixedWindows(10), t.Repeatedly(t.AfterCount(2)),
                    t.AccumulationMode.ACCUMULATING, combine=True)
    assert got == [("k", 3, (0, 10 * S), 10 * S - 1, "EARLY", 0, -1, True, False),
                   ("k", 6, (0, 10 * S), 10 * S - 1, "ON_TIME", 1, 0, False, True)]


def test_late_panes_of_a_waiting_late_trigger_are_late():
    # Beam's Python driver holds the watermark at the window's end again for such late
    # elements, so it reports these panes as EARLY and never finishes; they are LATE.
    steps = [("elements", [(("k", 1), 1)]), ("watermark", 10),
             ("elements", [(("k", 3), 3)]), ("elements", [(("k", 4), 4)]),
             ("watermark", 12), ("elements", [(("k", 5), 5)]), ("elements", [(("k", 6), 6)])]
    got, _ = _panes(steps, FixedWindows(10), t.AfterWatermark(late=t.AfterCount(2)),
                    t.AccumulationMode.DISCARDING, lateness=50)
    assert [(r[1], r[4], r[5], r[6]) for r in got] == [
        ([1], "ON_TIME", 0, 0), ([3, 4], "LATE", 1, 1), ([5, 6], "LATE", 2, 2)]


def test_no_empty_pane_from_a_processing_time_delay_already_reset():
    # AfterCount fires first and resets the AfterAny, delay included: when the delay's timer
    # comes it fires nothing (Beam's Python driver emits an empty pane here).
    steps = [("elements", [(("k", 1), 101), (("k", 2), 102)]), ("processing", 10),
             ("elements", [(("k", 3), 103)]), ("processing", 10), ("watermark", 200)]
    got, _ = _panes(steps, FixedWindows(100),
                    t.Repeatedly(t.AfterAny(t.AfterCount(2), t.AfterProcessingTime(5))),
                    t.AccumulationMode.DISCARDING)
    assert [(r[1], r[4], r[5]) for r in got] == [([1, 2], "EARLY", 0), ([3], "EARLY", 1)]


def test_late_processing_time_panes_are_late():
    steps = [("elements", [(("k", 1), 1)]), ("watermark", 10), ("elements", [(("k", 2), 2)]),
             ("processing", 3), ("elements", [(("k", 3), 3)]), ("processing", 3)]
    got, _ = _panes(steps, FixedWindows(10),
                    t.AfterWatermark(late=t.AfterProcessingTime(2)),
                    t.AccumulationMode.ACCUMULATING, lateness=100)
    assert [(r[1], r[4], r[5], r[6]) for r in got] == [
        ([1], "ON_TIME", 0, 0), ([1, 2], "LATE", 1, 1), ([1, 2, 3], "LATE", 2, 2)]


def test_finished_trigger_drops_and_counts_later_elements():
    steps = [("elements", [(("k", 1), 1)]), ("elements", [(("k", 2), 2), (("k", 3), 3)])]
    got, result = _panes(steps, FixedWindows(10), t.AfterCount(1),
                         t.AccumulationMode.DISCARDING)
    assert [(r[1], r[8]) for r in got] == [([1], True)]
    assert system_counter(result, "dropped_closed_window_elements") == 2


def test_grouping_operator_holds_and_releases_the_output_watermark():
    from headrace.runners.operators.base import Operator
    from headrace.runners.operators.grouping_operators import GroupByKeyOperator
    from headrace.sdk.window import IntervalWindow
    from headrace.sdk.windowed_value import WindowedValue
    from headrace.sdk.windowing import Windowing

    class Sink(Operator):
        def __init__(self):
            super().__init__("sink", 1)
            self.got = []

        def process_batch(self, index, batch):
            self.got.extend(batch)

    windowing = Windowing(FixedWindows(10), trigger=t.AfterWatermark(early=t.AfterCount(1)),
                          accumulation_mode=t.AccumulationMode.DISCARDING)
    op, sink = GroupByKeyOperator("G", windowing), Sink()
    op.receivers[None] = [(sink, 0)]
    window = IntervalWindow(0, 10)
    op.process_batch(0, [WindowedValue.of(("k", 1), 3 * S, (window,))])
    assert [wv.value for wv in sink.got] == [("k", [1])]
    op.on_watermark(0, 8 * S)
    # Held 1µs before the pending on-time pane's timestamp (the window's max timestamp).
    assert sink.input_watermark == 8 * S
    op.on_watermark(0, 9_999_999)
    assert sink.input_watermark == 9_999_998
    op.on_watermark(0, 10 * S)
    assert [wv.pane_info.timing for wv in sink.got] == [0, 1]
    assert sink.input_watermark == 10 * S
    assert op.grouping.watermark_hold() is None
    op.on_watermark(0, MAX_MICROS)
    assert op.backend.is_empty() and len(op.timers) == 0


def test_panes_after_the_on_time_one_are_late_even_if_the_output_watermark_lags():
    # The next window's hold (OUTPUT_AT_EARLIEST, an element at 10) keeps the output
    # watermark at 9.999999 when the late element 9 reaches [0, 10) after its on-time pane:
    # Beam's Python driver warns and calls that pane EARLY; it is LATE (Beam's model).
    steps = [("elements", [(("a", 1), 1), (("a", 3), 10)]), ("watermark", 10),
             ("elements", [(("a", 9), 0)])]

    def build(b):
        return (b.WindowInto(FixedWindows(10),
                             timestamp_combiner=beam.window.TimestampCombiner.OUTPUT_AT_EARLIEST)
                | b.GroupByKey())

    lines, _ = run_panes(beam, steps + [("infinity",)], build)
    got = sorted(rows(lines), key=lambda r: (r[2], r[5]))
    assert [(r[1], r[2][0] // S, r[4], r[5], r[6]) for r in got] == [
        ([1], 0, "ON_TIME", 0, 0), ([9], 0, "LATE", 1, 1), ([3], 10, "ON_TIME", 0, 0)]
