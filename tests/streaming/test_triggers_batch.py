"""Triggers in batch (bounded) pipelines: panes as Beam's batch DirectRunner gives them.

Beam's batch runners hand each key's whole input to the trigger as one
bundle, then fire the timers; the direct runner does the same in batch
execution (``bundle_per_batch = False`` on the grouping operators). Beam's
portable batch runner carries timestamps in milliseconds, so they are
compared floored to the millisecond (as in ``tests/parity``). The global
window is left out: its end differs by 1µs from Beam's (``sdk/window.py``).
"""
import apache_beam.transforms.trigger  # noqa: F401
import pytest

import headrace as beam
import headrace.transforms.trigger  # noqa: F401
from headrace.runners.direct import executor
from headrace.runners.operators.grouping_operators import CombinePerKeyOperator, GroupByKeyOperator
from headrace.testing.util import assert_that, equal_to
from headrace.transforms import trigger as t
from headrace.window import FixedWindows, TimestampedValue

try:
    from parity.harness import assert_parity
except ImportError:  # pragma: no cover
    from tests.parity.harness import assert_parity

# Every window gets at least two elements: Beam's Python batch driver drops what a count
# trigger leaves over (see the last test), headrace emits it.
TIMES = [1, 2, 3, 4, 5, 10, 11, 24, 25]


@pytest.fixture(autouse=True)
def _batch_bundles(monkeypatch):
    """Grouping operators in batch execution mode (what the executor sets for bounded runs)."""
    original = executor._make_operator

    def make(node):
        operator = original(node)
        if isinstance(operator, (GroupByKeyOperator, CombinePerKeyOperator)):
            operator.bundle_per_batch = False
        return operator

    monkeypatch.setattr(executor, "_make_operator", make)


def _describe(sdk):
    class Describe(sdk.DoFn):
        def process(self, kv, w=sdk.DoFn.WindowParam, ts=sdk.DoFn.TimestampParam,
                    pane=sdk.DoFn.PaneInfoParam):
            value = sorted(kv[1]) if isinstance(kv[1], (list, tuple)) or hasattr(
                kv[1], "__iter__") else kv[1]
            yield (kv[0], value, float(w.start), ts.micros // 1000, pane.timing, pane.index,
                   pane.nonspeculative_index, pane.is_first, pane.is_last)

    return sdk.ParDo(Describe())


def _builder(window_fn, trigger, mode="DISCARDING", combine=False):
    def build(sdk, p):
        tr = sdk.transforms.trigger
        return (p | sdk.Create([("a", x) for x in TIMES] + [("b", x) for x in TIMES[:3]])
                | sdk.Map(lambda kv: sdk.window.TimestampedValue(kv, kv[1]))
                | sdk.WindowInto(window_fn(sdk.window), trigger=trigger(tr),
                                 accumulation_mode=getattr(tr.AccumulationMode, mode))
                | (sdk.CombinePerKey(sum) if combine else sdk.GroupByKey())
                | _describe(sdk))
    build.__qualname__ = f"batch_{id(build)}"
    return build


CASES = {
    "repeated_count": (lambda w: w.FixedWindows(10), lambda t: t.Repeatedly(t.AfterCount(2))),
    "early_count": (lambda w: w.FixedWindows(10), lambda t: t.AfterWatermark(
        early=t.AfterCount(2))),
    "default": (lambda w: w.FixedWindows(10), lambda t: t.DefaultTrigger()),
    "sessions_early": (lambda w: w.Sessions(3), lambda t: t.AfterWatermark(
        early=t.Repeatedly(t.AfterCount(3)))),
}


@pytest.mark.parametrize("mode", ["DISCARDING", "ACCUMULATING"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_batch_panes_like_beam(case, mode, runner, tmp_path):
    window_fn, trigger = CASES[case]
    assert_parity(_builder(window_fn, trigger, mode), runner, tmp_path,
                  key=f"batch-{case}-{mode}")


def test_batch_combine_per_key_like_beam(runner, tmp_path):
    window_fn, trigger = CASES["early_count"]
    assert_parity(_builder(window_fn, trigger, combine=True), runner, tmp_path,
                  key="batch-combine-early")


def test_batch_leftovers_are_emitted_when_the_window_closes(runner):
    # AfterCount(3) fires once for [0, 10); [10, 20) never reaches 3 elements. Beam's Python
    # batch driver drops its two elements; Beam's model (its Java runners), and headrace, emit
    # them when the window closes.
    opts = beam.options.pipeline_options.PipelineOptions(["--allow_unsafe_triggers",
                                                          f"--runner={runner}"])
    with beam.Pipeline(options=opts) as p:
        out = (p | beam.Create(TIMES[:7])
               | beam.Map(lambda x: TimestampedValue(("a", x), x))
               | beam.WindowInto(FixedWindows(10), trigger=t.AfterCount(3),
                                 accumulation_mode=t.AccumulationMode.DISCARDING)
               | beam.GroupByKey()
               | beam.MapTuple(lambda k, vs, pane=beam.DoFn.PaneInfoParam:
                               (sorted(vs), pane.timing, pane.is_last)))
        assert_that(out, equal_to([([1, 2, 3, 4, 5], 0, True), ([10, 11], 1, True)]))
