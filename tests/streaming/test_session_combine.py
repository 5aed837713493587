"""The session fast path of CombinePerKey against the general triggered grouping.

``SessionCombiner`` must be indistinguishable from ``TriggeredGrouping`` for the
windowings it accepts: the same panes (values, timestamps, windows, pane info)
in the same order, the same CombineFn calls, the same late drops and the same
output watermark after every step. Random scripts (bundles of elements of a few
keys, some late or beyond lateness, windows as Sessions assigns them and longer
ones as an earlier grouping emits them, watermark advances) run through both.
"""
import random

import pytest

import headrace as beam
from headrace.runners.common.grouping import CombiningAggregation, TriggeredGrouping
from headrace.runners.common.session_combine import SessionCombiner, supports
from headrace.runners.operators.factory import make_operator
from headrace.runners.operators.session_combine import SessionCombinePerKeyOperator
from headrace.runners.state.base import TimerService
from headrace.runners.state.memory import MemoryStateBackend
from headrace.sdk.combinefn import CombineFn
from headrace.sdk.timestamp import MAX_MICROS
from headrace.sdk.trigger import AccumulationMode, AfterCount, AfterWatermark
from headrace.sdk.window import FixedWindows, IntervalWindow, Sessions, TimestampCombiner
from headrace.sdk.windowing import Windowing
from headrace.testing.util import assert_that, equal_to

S = 1_000_000


class LoggingConcat(CombineFn):
    """Order-sensitive: the pane is the values in the order the calls saw them."""

    def __init__(self):
        self.log = []

    def create_accumulator(self):
        self.log.append("create")
        return []

    def add_inputs(self, accumulator, elements):
        elements = list(elements)
        self.log.append(("add", list(accumulator), elements))
        return accumulator + elements

    def merge_accumulators(self, accumulators):
        accumulators = [list(a) for a in accumulators]
        self.log.append(("merge", accumulators))
        return [x for a in accumulators for x in a]

    def compact(self, accumulator):
        self.log.append("compact")
        return accumulator

    def extract_output(self, accumulator):
        self.log.append("extract")
        return tuple(accumulator)


def _call(method, *args):
    return method(*args)


def _pane(wv):
    info = wv.pane_info
    return (wv.value, wv.timestamp_micros, wv.windows,
            (info.is_first, info.is_last, info.timing, info.index, info.nonspeculative_index))


def _script(rng):
    gap = rng.choice([2, 5])
    steps, watermark = [], 0
    for _ in range(rng.randint(5, 30)):
        if rng.random() < 0.65:
            bundle = []
            for _ in range(rng.randint(1, 6)):
                key = rng.choice("abc")
                when = max(0, watermark // S + rng.randint(-25, 15)) * S
                if rng.random() < 0.2:
                    when += rng.choice([0, 1, -1]) + rng.randint(0, 3) * S // 2
                if rng.random() < 0.15:  # a window as an earlier grouping would emit it
                    window = IntervalWindow.from_micros(when, when + rng.randint(1, 12) * S)
                else:
                    window = Sessions(gap).assign_micros(when, None, None)[0]
                bundle.append((key, len(steps) * 10 + len(bundle), when, window))
            steps.append(("bundle", bundle))
        else:
            watermark += rng.choice([1, 2, 5, 9]) * S + rng.choice([0, 0, 1, -1])
            steps.append(("watermark", watermark))
    steps.append(("watermark", MAX_MICROS))
    return gap, steps


def _run(grouping, fn, steps):
    """Drive a grouping as its operator does; everything observable, in order."""
    seen, input_wm, output_wm = [], 0, 0
    for kind, payload in steps:
        if kind == "bundle":
            elements = [(key.encode(), key, value, when, (window,))
                        for key, value, when, window in payload]
            out, dropped = grouping.process_bundle(elements, input_wm, output_wm, 0)
            seen.append(("bundle", [_pane(wv) for wv in out], dropped))
        else:
            input_wm = payload
            out = grouping.fire_deferred() if grouping.defer_firing else []
            out = out + grouping.on_watermark(input_wm, 0)
            seen.append(("watermark", [_pane(wv) for wv in out]))
        output_wm = max(output_wm, grouping.output_watermark_for(input_wm))
        seen.append(("output watermark", output_wm))
    return seen + [("calls", fn.log), ("dropped", grouping.dropped_late,
                                       grouping.dropped_closed)]


@pytest.mark.no_pipeline
@pytest.mark.parametrize("seed", range(300))
def test_random_scripts_match_the_general_path(seed):
    rng = random.Random(seed)
    gap, steps = _script(rng)
    windowing = Windowing(Sessions(gap), allowed_lateness_micros=rng.choice([0, 0, 3, 20]) * S,
                          accumulation_mode=rng.choice([AccumulationMode.DISCARDING,
                                                        AccumulationMode.ACCUMULATING]))
    defer = rng.random() < 0.2
    general_fn, fast_fn = LoggingConcat(), LoggingConcat()
    general = TriggeredGrouping(windowing, CombiningAggregation(general_fn, _call),
                                MemoryStateBackend(), TimerService())
    fast = SessionCombiner(windowing, fast_fn)
    general.defer_firing = fast.defer_firing = defer
    expected = _run(general, general_fn, steps)
    assert _run(fast, fast_fn, steps) == expected


@pytest.mark.no_pipeline
def test_only_default_trigger_sessions_at_end_of_window():
    assert supports(Windowing(Sessions(5), allowed_lateness_micros=10 * S,
                              accumulation_mode=AccumulationMode.ACCUMULATING))
    assert not supports(Windowing(FixedWindows(5)))
    assert not supports(Windowing(Sessions(5), trigger=AfterWatermark(early=AfterCount(1)),
                                  accumulation_mode=AccumulationMode.DISCARDING))
    assert not supports(Windowing(Sessions(5),
                                  timestamp_combiner=TimestampCombiner.OUTPUT_AT_EARLIEST))

    class MySessions(Sessions):
        pass

    assert not supports(Windowing(MySessions(5)))


def test_combine_per_key_over_sessions_runs_the_fast_path(runner):
    p = beam.Pipeline()
    keyed = (p | beam.Create([("a", 1, 0.0), ("a", 2, 3.0), ("b", 5, 4.0), ("a", 4, 20.0)])
             | beam.Map(lambda r: beam.window.TimestampedValue((r[0], r[1]), r[2]))
             | beam.WindowInto(beam.window.Sessions(5)))
    summed = keyed | beam.CombinePerKey(sum)
    assert isinstance(make_operator(summed.producer), SessionCombinePerKeyOperator)
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([("a", 1, 0.0), ("a", 2, 3.0), ("b", 5, 4.0), ("a", 4, 20.0)])
               | beam.Map(lambda r: beam.window.TimestampedValue((r[0], r[1]), r[2]))
               | beam.WindowInto(beam.window.Sessions(5))
               | beam.CombinePerKey(sum)
               | beam.ParDo(_WithWindow()))
        assert_that(out, equal_to([
            ("a", 3, 0.0, 8.0), ("b", 5, 4.0, 9.0), ("a", 4, 20.0, 25.0)]))


class _WithWindow(beam.DoFn):
    def process(self, kv, window=beam.DoFn.WindowParam):
        yield kv[0], kv[1], window.start.micros / S, window.end.micros / S
