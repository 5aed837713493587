"""The trigger state machines and the triggered grouping, driven directly (no pipeline).

They keep every bit of per-window state in the KeyedStateBackend and every
timer in the TimerService: these tests look there.
"""
import pickle

import pytest

from headrace.runners.common.grouping import (
    GC_TIMERS,
    HOLD,
    PANE,
    BufferAggregation,
    CombiningAggregation,
    TriggeredGrouping,
)
from headrace.runners.common.triggers import (
    TRIGGER_TIMERS,
    TriggerContext,
    compile_trigger,
    merge_any,
    merge_max,
    merge_min,
    merge_sum,
)
from headrace.runners.state.base import EVENT_TIME, PROCESSING_TIME, TimerService
from headrace.runners.state.memory import MemoryStateBackend
from headrace.sdk.combinefn import CombineFn
from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS
from headrace.sdk.window import FixedWindows, IntervalWindow, Sessions
from headrace.sdk.windowing import Windowing
from headrace.transforms import trigger as t

pytestmark = pytest.mark.no_pipeline

S = 1_000_000
W = IntervalWindow(0, 10)
KEY = b"k"


def context(trigger_state, watermark=MIN_MICROS, now=0, domain=None, window=W):
    backend, timers = trigger_state
    return TriggerContext(backend, timers, KEY, window, watermark, now, domain)


@pytest.fixture
def state():
    return MemoryStateBackend(), TimerService()


def test_state_cells_and_how_they_merge():
    machine = compile_trigger(t.AfterEach(t.AfterWatermark(early=t.AfterProcessingTime(5)),
                                          t.Repeatedly(t.AfterAny(t.AfterCount(2),
                                                                  t.AfterCount(3)))))
    assert dict(machine.state_cells()) == {
        "trigger/index": merge_max,
        "trigger/0/late": merge_any,
        "trigger/0/early/deadline": merge_min,
        "trigger/1/0/count": merge_sum,
        "trigger/1/1/count": merge_sum,
    }
    assert sorted(machine.timer_tags()) == ["0/early/delay", "0/eow"]


def test_after_watermark_keeps_its_state_in_the_backend(state):
    backend, timers = state
    machine = compile_trigger(t.AfterWatermark(early=t.AfterCount(2), late=t.AfterCount(1)))
    ctx = context(state)
    machine.on_element(ctx, 1)
    assert backend.get_value("trigger/early/count", KEY, W) == 1
    assert timers.get(KEY, W, TRIGGER_TIMERS, "eow").fire_at == 10 * S
    assert not machine.should_fire(ctx)
    machine.on_element(ctx, 1)
    assert machine.should_fire(ctx) and machine.on_fire(ctx) is False
    assert backend.get_value("trigger/early/count", KEY, W) is None  # the early trigger reset
    on_time = context(state, watermark=10 * S, domain=EVENT_TIME)
    assert machine.should_fire(on_time)
    assert timers.get(KEY, W, TRIGGER_TIMERS, "eow") is None
    assert machine.on_fire(on_time) is False  # a late trigger follows
    assert backend.get_value("trigger/late", KEY, W) is True
    late = context(state, watermark=12 * S)
    machine.on_element(late, 1)
    assert machine.should_fire(late) and machine.on_fire(late) is False
    # The state is plain data: it survives a round trip through pickle (checkpoints).
    assert pickle.loads(pickle.dumps(backend._groups)) == backend._groups


def test_after_watermark_without_late_trigger_finishes_on_time(state):
    machine = compile_trigger(t.AfterWatermark())
    ctx = context(state, watermark=10 * S, domain=EVENT_TIME)
    machine.on_element(ctx, 3)
    assert machine.should_fire(ctx) and machine.on_fire(ctx) is True


def test_processing_time_deadline(state):
    backend, timers = state
    machine = compile_trigger(t.Repeatedly(t.AfterProcessingTime(5)))
    machine.on_element(context(state, now=1 * S), 1)
    machine.on_element(context(state, now=3 * S), 1)  # the deadline is from the first element
    assert backend.get_value("trigger/deadline", KEY, W) == 6 * S
    assert timers.next_time(PROCESSING_TIME) == 6 * S
    assert not machine.should_fire(context(state, now=7 * S))  # not a processing-time firing
    assert not machine.should_fire(context(state, now=5 * S, domain=PROCESSING_TIME))
    firing = context(state, now=6 * S, domain=PROCESSING_TIME)
    assert machine.should_fire(firing) and machine.on_fire(firing) is False
    assert backend.get_value("trigger/deadline", KEY, W) is None
    assert timers.next_time(PROCESSING_TIME) is None


def test_after_each_moves_on_and_finishes(state):
    backend, _ = state
    machine = compile_trigger(t.AfterEach(t.AfterCount(2), t.AfterCount(1)))
    ctx = context(state)
    machine.on_element(ctx, 2)
    assert machine.should_fire(ctx) and machine.on_fire(ctx) is False
    assert backend.get_value("trigger/index", KEY, W) == 1
    machine.on_element(ctx, 1)
    assert machine.should_fire(ctx) and machine.on_fire(ctx) is True
    assert not machine.should_fire(ctx) and machine.on_fire(ctx) is False


def test_after_any_stops_at_the_first_ready_subtrigger(state):
    # As in Beam: the second subtrigger is not consulted, so its end-of-window timer stays.
    _, timers = state
    machine = compile_trigger(t.AfterAny(t.AfterWatermark(), t.AfterWatermark()))
    ctx = context(state, watermark=10 * S, domain=EVENT_TIME)
    machine.on_element(ctx, 1)
    assert machine.should_fire(ctx)
    assert timers.get(KEY, W, TRIGGER_TIMERS, "0/eow") is None
    assert timers.get(KEY, W, TRIGGER_TIMERS, "1/eow") is not None


def test_after_all_needs_every_subtrigger(state):
    machine = compile_trigger(t.AfterAll(t.AfterCount(2), t.AfterWatermark()))
    early = context(state, watermark=5 * S)
    machine.on_element(early, 3)
    assert not machine.should_fire(early)
    on_time = context(state, watermark=10 * S, domain=EVENT_TIME)
    assert machine.should_fire(on_time) and machine.on_fire(on_time) is True


# ----------------------------------------------------------------------- triggered grouping


def grouping(window_fn=FixedWindows(10), trigger=None, mode=None, lateness=0, combine=False,
             **kwargs):
    windowing = Windowing(window_fn, allowed_lateness_micros=lateness, trigger=trigger,
                          accumulation_mode=mode, **kwargs)

    class Sum(CombineFn):
        def create_accumulator(self):
            return 0

        def add_input(self, acc, x):
            return acc + x

        def merge_accumulators(self, accs):
            return sum(accs)

        def extract_output(self, acc):
            return acc

    aggregation = (CombiningAggregation(Sum(), lambda method, *args: method(*args)) if combine
                   else BufferAggregation())
    return TriggeredGrouping(windowing, aggregation, MemoryStateBackend(), TimerService())


def element(value, seconds, window_fn=FixedWindows(10), key="k"):
    micros = int(seconds * S)
    return (key.encode(), key, value, micros, tuple(window_fn.assign_micros(micros, None, None)))


def describe(panes):
    return [(wv.value, wv.timestamp_micros, wv.pane_info.timing, wv.pane_info.index,
             wv.pane_info.is_last) for wv in panes]


def test_combine_keeps_one_accumulator_per_window():
    g = grouping(trigger=t.Repeatedly(t.AfterCount(3)), mode=t.AccumulationMode.ACCUMULATING,
                 combine=True)
    out, _ = g.process_bundle([element(1, 1), element(2, 2)], MIN_MICROS, MIN_MICROS)
    assert out == []
    assert g.backend.get_value("accumulator", b"k", W) == 3
    out, _ = g.process_bundle([element(4, 3)], MIN_MICROS, MIN_MICROS)
    assert describe(out) == [(("k", 7), 10 * S - 1, 0, 0, False)]
    assert g.backend.get_value("accumulator", b"k", W) == 7  # accumulating: kept


def test_state_and_timers_are_gone_after_garbage_collection():
    g = grouping(trigger=t.AfterWatermark(early=t.AfterCount(1)),
                 mode=t.AccumulationMode.DISCARDING, lateness=5 * S)
    g.process_bundle([element(1, 1)], MIN_MICROS, MIN_MICROS)
    assert g.backend.get_value(HOLD, b"k", W) == (10 * S - 1, 10 * S - 1)
    assert g.timers.get(b"k", W, GC_TIMERS, "").fire_at == 15 * S + 1
    # The on-time pane (empty: discarding after the early one) finishes AfterWatermark().
    assert describe(g.on_watermark(15 * S)) == [(("k", []), 10 * S - 1, 1, 1, True)]
    assert not g.backend.is_empty()
    assert g.on_watermark(15 * S + 1) == []
    assert g.backend.is_empty() and len(g.timers) == 0 and g.watermark_hold() is None


def test_expired_windows_drop_elements():
    g = grouping(lateness=5 * S)
    out, dropped = g.process_bundle([element(1, 1), element(2, 12)], 15 * S + 1, 0)
    assert dropped == 1 and out == [] and g.dropped_late == 1


def test_sessions_merge_state_trigger_state_and_timers():
    sessions = Sessions(5)
    g = grouping(sessions, t.AfterWatermark(early=t.AfterCount(3)),
                 t.AccumulationMode.ACCUMULATING)
    g.process_bundle([element(1, 1, sessions)], MIN_MICROS, MIN_MICROS)
    g.process_bundle([element(2, 8, sessions)], MIN_MICROS, MIN_MICROS)
    first, second = IntervalWindow(1, 6), IntervalWindow(8, 13)
    assert g.backend.get_value("trigger/early/count", b"k", first) == 1
    assert g.backend.get_value("trigger/early/count", b"k", second) == 1
    # 4 bridges both sessions: one window [1, 13) with all the state; the counts add up.
    out, _ = g.process_bundle([element(3, 4, sessions)], MIN_MICROS, MIN_MICROS)
    merged = IntervalWindow(1, 13)
    assert describe(out) == [(("k", [1, 2, 3]), 13 * S - 1, 0, 0, False)]
    assert g.backend.namespaces(b"k") == [merged]
    assert g.timers.get(b"k", first, TRIGGER_TIMERS, "eow") is None
    assert g.timers.get(b"k", first, GC_TIMERS, "") is None
    assert g.timers.get(b"k", merged, TRIGGER_TIMERS, "eow").fire_at == 13 * S
    assert g.timers.get(b"k", merged, GC_TIMERS, "").fire_at == 13 * S + 1
    assert describe(g.on_watermark(13 * S)) == [(("k", [1, 2, 3]), 13 * S - 1, 1, 1, True)]


def test_merged_processing_time_deadline_is_the_earliest():
    sessions = Sessions(5)
    g = grouping(sessions, t.Repeatedly(t.AfterProcessingTime(10)),
                 t.AccumulationMode.DISCARDING)
    g.process_bundle([element(1, 1, sessions)], MIN_MICROS, MIN_MICROS, now=3 * S)
    g.process_bundle([element(2, 8, sessions)], MIN_MICROS, MIN_MICROS, now=1 * S)
    g.process_bundle([element(3, 4, sessions)], MIN_MICROS, MIN_MICROS, now=5 * S)
    merged = IntervalWindow(1, 13)
    assert g.backend.get_value("trigger/deadline", b"k", merged) == 11 * S
    assert g.next_processing_time() == 11 * S
    out = g.on_processing_time(11 * S, MIN_MICROS, MIN_MICROS)
    assert describe(out) == [(("k", [1, 2, 3]), 13 * S - 1, 0, 0, False)]
    assert g.on_processing_time(13 * S, MIN_MICROS, MIN_MICROS) == []


def test_finished_window_is_kept_until_garbage_collection():
    g = grouping(trigger=t.AfterCount(1), mode=t.AccumulationMode.DISCARDING)
    out, _ = g.process_bundle([element(1, 1)], MIN_MICROS, MIN_MICROS)
    assert describe(out) == [(("k", [1]), 10 * S - 1, 0, 0, True)]
    pane = g.backend.get_value(PANE, b"k", W)
    assert pane[3] is True  # finished
    g.process_bundle([element(2, 2)], MIN_MICROS, MIN_MICROS)
    assert g.dropped_closed == 1
    assert g.on_watermark(MAX_MICROS) == [] and g.backend.is_empty()


def test_default_windowing_single_pane_is_the_last():
    from headrace.sdk.window import GLOBAL_WINDOW, GlobalWindows
    g = grouping(GlobalWindows())
    g.process_bundle([(b"k", "k", 1, 0, (GLOBAL_WINDOW,))], MIN_MICROS, MIN_MICROS)
    assert describe(g.on_watermark(MAX_MICROS)) == [
        (("k", [1]), GLOBAL_WINDOW.max_timestamp_micros, 1, 0, True)]


def test_hold_index_is_rebuilt_from_the_backend():
    g = grouping(trigger=t.AfterWatermark(early=t.AfterCount(5)),
                 mode=t.AccumulationMode.DISCARDING,
                 timestamp_combiner="OUTPUT_AT_EARLIEST")
    g.process_bundle([element(1, 3), element(2, 14)], MIN_MICROS, MIN_MICROS)
    assert g.watermark_hold() == 3 * S
    g._holds.clear()
    g._hold_heap.clear()
    g.rebuild_indexes()
    assert g.watermark_hold() == 3 * S and g.output_watermark_for(20 * S) == 3 * S - 1
