"""Keyed operators' snapshots restore exactly, also split over key groups (as after
rescaling 1 -> 2): what the restored operators emit is what the uninterrupted one does.

Each case runs an operator over the first part of the input, snapshots it (its
``snapshot_state`` and, where it has one, its backend), goes on to the end; then two
fresh operators owning half of the key groups each are restored from that snapshot and
given the rest of the input, each the keys of its own key groups.
"""
from __future__ import annotations

from typing import Any, Callable, List

import pytest

import headrace as beam
from headrace.runners.operators.factory import make_operator
from headrace.runners.operators.grouping_operators import (
    CombinePerKeyOperator,
    GroupByKeyOperator,
)
from headrace.runners.operators.session_combine import SessionCombinePerKeyOperator
from headrace.runners.state.base.key_groups import key_group_for, key_group_range
from headrace.runners.state.factory import make_state_backend, restore_state_backend
from headrace.sdk import trigger as t
from headrace.sdk.coders import encode_key
from headrace.sdk.combinefn import CombineFn
from headrace.sdk.options import PipelineOptions
from headrace.sdk.serialization import dumps_user_code
from headrace.sdk.timestamp import MAX_MICROS
from headrace.sdk.window import FixedWindows, Sessions
from headrace.sdk.windowed_value import WindowedValue
from headrace.sdk.windowing import Windowing
from headrace.testing.util import assert_that, equal_to
from headrace.transforms.timeutil import TimeDomain
from headrace.transforms.userstate import BagStateSpec, TimerSpec, on_timer

pytestmark = pytest.mark.no_pipeline
S = 1_000_000
HALVES = [key_group_range(i, 2) for i in range(2)]


class Recorder:
    def __init__(self) -> None:
        self.got: List[tuple] = []

    def process_batch(self, index: int, batch: Any) -> None:
        self.got.extend((wv.value, wv.timestamp_micros, tuple(wv.windows), wv.pane_info)
                        for wv in batch)

    def on_watermark(self, index: int, watermark: int) -> None:
        pass

    def set_input_idle(self, index: int, idle: bool) -> None:
        pass


def _elements(window_fn: Any, keys: int, start: int, count: int) -> List[WindowedValue]:
    out = []
    for i in range(start, start + count):
        timestamp = (i % 40) * S // 2
        out.append(WindowedValue.of((f"k{i % keys}", i), timestamp,
                                    tuple(window_fn.assign_micros(timestamp, None, None))))
    return out


def _in(key_groups: range, batch: List[WindowedValue]) -> List[WindowedValue]:
    return [wv for wv in batch if key_group_for(encode_key(wv.value[0]), 128) in key_groups]


def _wire(operator: Any, key_groups: range, backend: str, snapshots: Any = None) -> Recorder:
    options = PipelineOptions([f"--state_backend={backend}"])

    def make() -> Any:
        if snapshots:
            return restore_state_backend(options, snapshots, key_groups, 128)
        return make_state_backend(options, key_groups, 128)

    if hasattr(operator, "configure_keyed_state"):
        operator.configure_keyed_state(make, key_groups, 128)
    recorder = Recorder()
    operator.receivers[None] = [(recorder, 0)]
    operator.start()
    return recorder


def _check_restore(make: Callable[[], Any], window_fn: Any, backend: str) -> None:
    first, rest = _elements(window_fn, 12, 0, 300), _elements(window_fn, 12, 300, 300)
    original = make()
    recorder = _wire(original, range(128), backend)
    original.process_batch(0, first)
    original.on_watermark(0, 6 * S)
    state = original.snapshot_state(1)
    keyed = original.keyed_backend.snapshot() if original.keyed_backend is not None else None
    # Changes after the snapshot must not reach it.
    original.process_batch(0, rest)
    original.on_watermark(0, MAX_MICROS)
    expected = recorder.got
    before = _count_before_snapshot(make, window_fn, backend, first)
    restored = []
    for key_groups in HALVES:
        operator = make()
        out = _wire(operator, key_groups, backend, [keyed] if keyed is not None else None)
        operator.restore_state([state])
        operator.on_watermark(0, 6 * S)  # the watermark comes back as the sources resume
        operator.process_batch(0, _in(key_groups, rest))
        operator.on_watermark(0, MAX_MICROS)
        restored.extend(out.got)
        operator.close()
    if keyed is not None:
        keyed.release()
    original.close()
    assert sorted(map(repr, before + restored)) == sorted(map(repr, expected))
    assert restored  # the restored state produced output


def _count_before_snapshot(make: Callable[[], Any], window_fn: Any, backend: str,
                           first: List[WindowedValue]) -> List[tuple]:
    """What the operator emitted before the snapshot (not re-emitted after a restore)."""
    operator = make()
    recorder = _wire(operator, range(128), backend)
    operator.process_batch(0, first)
    operator.on_watermark(0, 6 * S)
    operator.close()
    return recorder.got


def _sum_fn() -> bytes:
    return dumps_user_code((CombineFn.maybe_from_callable(sum), (), {}), "Sum")


class _Collect(CombineFn):
    def create_accumulator(self):
        return []

    def add_input(self, acc, value):
        return acc + [value]

    def merge_accumulators(self, accs):
        return [v for acc in accs for v in acc]

    def extract_output(self, acc):
        return sorted(acc)


@pytest.mark.parametrize("backend", ["memory", "rocksdb"])
def test_windowed_combine_fast_path(backend):
    windowing = Windowing(FixedWindows(4))
    make = lambda: CombinePerKeyOperator("Sum", windowing, _sum_fn())  # noqa: E731
    assert make().columnar
    _check_restore(make, windowing.window_fn, backend)


@pytest.mark.parametrize("backend", ["memory", "rocksdb"])
def test_session_fast_path(backend):
    windowing = Windowing(Sessions(1.5))
    serialized = dumps_user_code((_Collect(), (), {}), "Collect")
    make = lambda: SessionCombinePerKeyOperator("Collect", windowing, serialized)  # noqa: E731
    _check_restore(make, windowing.window_fn, backend)


@pytest.mark.parametrize("backend", ["memory", "rocksdb"])
def test_general_grouping_over_the_backend(backend):
    windowing = Windowing(FixedWindows(4), allowed_lateness_micros=10 * S,
                          trigger=t.AfterWatermark(early=t.AfterCount(5)),
                          accumulation_mode=t.AccumulationMode.ACCUMULATING)
    make = lambda: GroupByKeyOperator("Group", windowing)  # noqa: E731
    assert make().keyed_backend is not None
    _check_restore(make, windowing.window_fn, backend)


class Buffer(beam.DoFn):
    BUFFER = BagStateSpec("buffer")
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def process(self, kv, w=beam.DoFn.WindowParam, buffer=beam.DoFn.StateParam(BUFFER),
                flush=beam.DoFn.TimerParam(FLUSH)):
        buffer.add(kv[1])
        flush.set(w.start + 3)

    @on_timer(FLUSH)
    def on_flush(self, key=beam.DoFn.KeyParam, w=beam.DoFn.WindowParam,
                 buffer=beam.DoFn.StateParam(BUFFER)):
        yield key, w.start.micros // S, sorted(buffer.read())
        buffer.clear()


@pytest.mark.parametrize("backend", ["memory", "rocksdb"])
def test_stateful_pardo_with_timers(backend):
    p = beam.Pipeline()
    node = (p | beam.Create([("a", 1)]) | beam.WindowInto(FixedWindows(4))
            | beam.ParDo(Buffer())).producer
    make = lambda: make_operator(node)  # noqa: E731
    _check_restore(make, FixedWindows(4), backend)


def test_a_multiprocess_job_after_rocksdb_was_used_in_this_process(tmp_path):
    """RocksDB's background threads do not survive fork(): the workers then come from a
    fresh fork server, and the job with RocksDB state and checkpoints runs as usual."""
    backend = make_state_backend(PipelineOptions(["--state_backend=rocksdb"]))
    backend.put_value("x", b"k", None, 1)
    backend.snapshot().release()  # a flush: the background threads have worked
    backend.close()
    with beam.Pipeline(argv=["--runner=multiprocess", "--parallelism=2", "--quiet",
                             "--state_backend=rocksdb", f"--checkpoint_dir={tmp_path}",
                             "--checkpoint_interval=0.1"]) as p:
        grouped = (p | beam.Create([("a", 1), ("b", 2), ("a", 3)] * 20) | beam.GroupByKey()
                   | beam.Map(lambda kv: (kv[0], sum(kv[1]))))
        assert_that(grouped, equal_to([("a", 80), ("b", 40)]))
