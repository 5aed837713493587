"""Sources whose splits appear while the job runs: the ReadOperator asks for them every
``discovery_interval`` and opens the ones it owns and has not seen."""
from typing import Any, List, Optional

from headrace.runners.operators.base import Operator
from headrace.runners.operators.clock import ManualClock
from headrace.runners.operators.sources import ReadOperator
from headrace.sdk.io_base import Source, SourceSplit, SplitReader, assign_splits
from headrace.sdk.timestamp import MAX_MICROS

S = 1_000_000


class _ListReader(SplitReader):
    def __init__(self, values):
        self.values = list(values)

    def read_batch(self, max_records: int) -> Optional[List[Any]]:
        batch, self.values = self.values[:max_records], self.values[max_records:]
        return batch


class _NamedSplit(SourceSplit):
    def __init__(self, name: str, key: int, values):
        self.name, self.key, self.values = name, key, values

    def open(self, position: Any = None) -> SplitReader:
        return _ListReader(self.values)

    def split_id(self) -> str:
        return self.name

    def assignment_key(self) -> int:
        return self.key


class _GrowingSource(Source):
    """Unbounded; ``available`` is the split list a look-up returns now."""

    is_bounded = False
    discovery_interval = 1.0

    def __init__(self, available):
        self.available = available
        self.lookups = 0

    def split(self, desired_num_splits: int) -> List[SourceSplit]:
        return list(self.available)

    def discover_splits(self) -> List[SourceSplit]:
        self.lookups += 1
        return list(self.available)


class _Collect(Operator):
    def __init__(self):
        super().__init__("collect", 1)
        self.values = []

    def process_batch(self, index, batch):
        self.values.extend(wv.value for wv in batch)


def _reader(source, subtask=0, parallelism=1):
    clock = ManualClock()
    operator = ReadOperator("Read", source)
    operator.clock = clock
    operator.subtask, operator.parallelism = subtask, parallelism
    sink = _Collect()
    operator.receivers[None] = [(sink, 0)]
    operator.open_splits(lambda: assign_splits(source.split(parallelism), subtask, parallelism))
    return operator, sink, clock


def test_new_splits_are_opened_once_at_the_discovery_interval():
    source = _GrowingSource([_NamedSplit("a", 0, ["a1"])])
    operator, sink, clock = _reader(source)
    operator.poll()
    source.available = source.available + [_NamedSplit("b", 1, ["b1", "b2"])]
    operator.poll()
    assert sink.values == ["a1"] and source.lookups == 0     # not due yet
    assert operator.next_processing_time() == clock.now() + 1 * S
    clock.advance(1 * S)
    operator.poll()
    clock.advance(1 * S)
    operator.poll()
    assert sink.values == ["a1", "b1", "b2"] and source.lookups == 2
    assert [split.reader.values for split in operator.splits] == [[], []]  # b opened once


def test_splits_of_other_subtasks_are_left_to_them():
    source = _GrowingSource([_NamedSplit("a", 0, ["a1"])])
    operator, sink, clock = _reader(source, subtask=1, parallelism=2)
    assert operator.splits == []
    operator.poll()
    assert not operator.finished and operator.output_idle   # waits for splits, idle
    source.available = source.available + [_NamedSplit("b", 2, ["b1"]),
                                           _NamedSplit("c", 3, ["c1"])]
    clock.advance(1 * S)
    operator.poll()
    operator.poll()
    assert sink.values == ["c1"]


def test_a_bounded_discovering_reader_without_splits_finishes():
    source = _GrowingSource([])
    source.is_bounded = True
    operator, sink, clock = _reader(source)
    operator.poll()
    assert operator.finished and operator.output_watermark == MAX_MICROS
