"""CombinePerKey's fast path (one accumulator per key and window) against the general path.

Both operators get the same random bundles and watermarks; every pane (value,
timestamp, window, pane info), every output watermark and the late-data counters
must be the same.
"""
import random

import pytest

import headrace as beam
from headrace.runners.common.grouping import TriggeredGrouping
from headrace.runners.common.windowed_combine import WindowedCombineTable, supports
from headrace.runners.engine.exchange import DATA, PARTIAL, ExchangeOutput
from headrace.runners.engine.lifting import PartialCombineOperator
from headrace.runners.engine.plan import KEYED, Edge
from headrace.runners.operators.batch import ColumnBatch, as_columns
from headrace.runners.operators.grouping_operators import DROPPED_LATE, CombinePerKeyOperator
from headrace.sdk.combinefn import CombineFn
from headrace.sdk.serialization import dumps_user_code
from headrace.sdk.trigger import AccumulationMode, AfterCount, Repeatedly
from headrace.sdk.window import GLOBAL_WINDOW, FixedWindows, SlidingWindows, TimestampCombiner
from headrace.sdk.windowed_value import WindowedValue
from headrace.sdk.windowing import Windowing
from headrace.testing.util import assert_that, equal_to

pytestmark = pytest.mark.no_pipeline


class _Mean(CombineFn):
    def create_accumulator(self):
        return (0, 0)

    def add_input(self, acc, x):
        return (acc[0] + x, acc[1] + 1)

    def merge_accumulators(self, accs):
        return (sum(a[0] for a in accs), sum(a[1] for a in accs))

    def extract_output(self, acc):
        return (acc[0], acc[1])


class _General(CombinePerKeyOperator):
    def make_grouping(self):
        return TriggeredGrouping(self.windowing, self.make_aggregation(), self.backend,
                                 self.timers)


def _drive(operator, steps):
    panes, watermarks = [], []
    operator.emit_batch = lambda tag, batch: panes.extend(
        (wv.value, wv.timestamp_micros, wv.windows, wv.pane_info) for wv in batch)
    operator.start()
    for kind, payload in steps:
        if kind == "data":
            operator.process_batch(0, payload)
        else:
            operator.on_watermark(0, payload)
        watermarks.append(operator.output_watermark)
    return sorted(panes, key=repr), watermarks, operator.metrics.counter(DROPPED_LATE).value


def _steps(rand, window_fn):
    steps, watermark = [], 0
    for _ in range(30):
        if rand.random() < 0.6:
            elements = []
            for _ in range(rand.randint(1, 20)):
                # Some elements behind the watermark: late, droppable, or still in lateness.
                timestamp = max(0, watermark + rand.randint(-30, 40)) * 1_000_000
                windows = tuple(window_fn.assign_micros(timestamp, None, None))
                key = rand.choice(["a", "b", 3, None, 2.5, True, 1])
                elements.append(WindowedValue.of((key, rand.randint(0, 9)), timestamp, windows))
            batch = as_columns(elements) if rand.random() < 0.5 else elements
            steps.append(("data", batch))
        else:
            watermark += rand.randint(1, 25)
            steps.append(("watermark", watermark * 1_000_000))
    steps.append(("watermark", 2**63 - 1))
    return steps


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("streaming", [True, False])
def test_fast_path_matches_general_path(seed, streaming):
    rand = random.Random(seed)
    window_fn = rand.choice([FixedWindows(10), SlidingWindows(10, 5), FixedWindows(7, 3)])
    windowing = Windowing(window_fn, allowed_lateness_micros=rand.choice([0, 15_000_000]),
                          accumulation_mode=rand.choice([AccumulationMode.ACCUMULATING,
                                                         AccumulationMode.DISCARDING]))
    assert supports(windowing)
    combine_fn = rand.choice([CombineFn.maybe_from_callable(sum), _Mean()])
    steps = _steps(rand, window_fn)
    results = []
    for cls in (CombinePerKeyOperator, _General):
        operator = cls("Combine", windowing, dumps_user_code((combine_fn, (), {}), "Combine"))
        operator.bundle_per_batch = streaming
        assert isinstance(operator.grouping, WindowedCombineTable) == (
            cls is CombinePerKeyOperator)
        results.append(_drive(operator, steps))
    assert results[0] == results[1]
    assert results[0][0]  # something fired


def test_fast_path_only_for_its_windowing():
    assert supports(Windowing(FixedWindows(10)))
    assert not supports(Windowing(FixedWindows(10), trigger=Repeatedly(AfterCount(2)),
                                  accumulation_mode=AccumulationMode.DISCARDING))
    assert not supports(Windowing(FixedWindows(10),
                                  timestamp_combiner=TimestampCombiner.OUTPUT_AT_EARLIEST))


def test_column_batch_is_a_sequence_of_windowed_values():
    batch = ColumnBatch([1, 2, 3], [5, 6, 7], (GLOBAL_WINDOW,))
    assert [(wv.value, wv.timestamp_micros) for wv in batch] == [(1, 5), (2, 6), (3, 7)]
    assert batch[-1].timestamp_micros == 7 and len(batch[1:]) == 2
    kept = batch.select([True, False, True])
    assert kept.values == [1, 3] and kept.timestamps == [5, 7]
    rows = [WindowedValue.of(v, 0, (GLOBAL_WINDOW,)) for v in "ab"]
    assert as_columns(rows).uniform and list(as_columns(rows)) == rows


@pytest.mark.parametrize("seed", range(6))
def test_lifted_combine_matches_unlifted(seed):
    """Partial accumulators through the exchange give the panes the elements give."""
    rand = random.Random(seed)
    window_fn = rand.choice([FixedWindows(10), SlidingWindows(10, 5)])
    windowing = Windowing(window_fn, allowed_lateness_micros=rand.choice([0, 15_000_000]))
    combine_fn = rand.choice([CombineFn.maybe_from_callable(sum), _Mean()])
    serialized = dumps_user_code((combine_fn, (), {}), "Combine")
    steps = _steps(rand, window_fn)
    plain = CombinePerKeyOperator("Combine", windowing, serialized)
    lifted = CombinePerKeyOperator("Combine", windowing, serialized)
    frames = []
    exchange = ExchangeOutput(Edge(0, 0, None, 1, 0, KEYED), "Combine", 0, 1, 128,
                              lambda dest, kind, edge, payload: frames.append((kind, payload)))
    partial = PartialCombineOperator(lifted, combine_fn, exchange)
    lifted_steps = []
    for kind, payload in steps:
        if kind == "data":
            frames.clear()
            partial.process_batch(0, payload)
            lifted_steps.extend(("partial" if k == PARTIAL else "data", p)
                                for k, p in frames if k in (DATA, PARTIAL))
        else:
            lifted_steps.append((kind, payload))
    assert any(kind == "partial" for kind, _ in lifted_steps)
    expected = _drive(plain, steps)
    panes, watermarks = [], []
    lifted.emit_batch = lambda tag, batch: panes.extend(
        (wv.value, wv.timestamp_micros, wv.windows, wv.pane_info) for wv in batch)
    lifted.start()
    for kind, payload in lifted_steps:
        if kind == "partial":
            lifted.process_partials(payload)
        elif kind == "data":
            lifted.process_batch(0, payload)
        else:
            lifted.on_watermark(0, payload)
            watermarks.append(lifted.output_watermark)
    assert sorted(panes, key=repr) == expected[0]
    assert watermarks == [w for (k, _), w in zip(steps, expected[1]) if k == "watermark"]
    assert lifted.metrics.counter(DROPPED_LATE).value == expected[2]


def test_lifting_in_a_pipeline_on_two_workers():
    data = [(k % 7, k) for k in range(2000)]
    expected = [(k, sum(v for key, v in data if key == k)) for k in range(7)]
    with beam.Pipeline(argv=["--runner=multiprocess", "--parallelism=2", "--quiet"]) as p:
        assert_that(p | beam.Create(data) | beam.CombinePerKey(sum), equal_to(expected))
