"""A source operator's snapshot: its splits (discovered ones too), their positions, which
finished; a restored reader resumes exactly there; notifications confirm positions."""
from __future__ import annotations

from typing import Any, List, Optional

import pytest

from headrace.runners.operators.base import Operator
from headrace.runners.operators.clock import ManualClock
from headrace.runners.operators.sources import ReadOperator
from headrace.sdk.io_base import Source, SourceSplit, SplitReader

pytestmark = pytest.mark.no_pipeline
S = 1_000_000


class _Reader(SplitReader):
    def __init__(self, split: "_Split", position: int) -> None:
        self.split, self.next = split, position

    def read_batch(self, max_records: int) -> Optional[List[Any]]:
        if self.next >= len(self.split.values):
            return None if self.split.bounded else []
        batch = self.split.values[self.next:self.next + 2]  # two at a time
        self.next += len(batch)
        return batch

    def position(self) -> int:
        return self.next

    def notify_checkpoint_complete(self, position: int) -> None:
        self.split.confirmed.append(position)


class _Split(SourceSplit):
    def __init__(self, name: str, values: List[str], bounded: bool = True,
                 discovered: bool = False) -> None:
        self.name, self.values, self.bounded = name, values, bounded
        self.discovered = discovered
        self.confirmed: List[int] = []

    def open(self, position: Any = None) -> SplitReader:
        return _Reader(self, position or 0)

    def split_id(self) -> Optional[str]:
        return self.name if self.discovered else None


class _Source(Source):
    is_bounded = False
    discovery_interval = 1.0

    def __init__(self, fixed: List[_Split], found: List[_Split]) -> None:
        self.fixed, self.found = fixed, found

    def split(self, desired_num_splits: int) -> List[SourceSplit]:
        return list(self.fixed)

    def discover_splits(self) -> List[SourceSplit]:
        return list(self.found)


class _Collect(Operator):
    def __init__(self) -> None:
        super().__init__("collect", 1)
        self.values: List[str] = []

    def process_batch(self, index: int, batch: Any) -> None:
        self.values.extend(wv.value for wv in batch)


def _reader(source: _Source, snapshots: Optional[list] = None) -> tuple:
    operator = ReadOperator("Read", source)
    operator.clock = ManualClock()
    sink = _Collect()
    operator.receivers[None] = [(sink, 0)]
    if snapshots is not None:
        operator.restore_state(snapshots)
    operator.open_splits()
    return operator, sink


def test_positions_of_fixed_and_discovered_splits_restore_exactly():
    short = _Split("short", ["s1", "s2"])
    long = _Split("long", [f"l{i}" for i in range(8)], bounded=False)
    found = _Split("found", [f"f{i}" for i in range(6)], bounded=False, discovered=True)
    source = _Source([short, long], [])
    operator, sink = _reader(source)
    operator.poll()  # short: done reading; long: 2
    source.found = [found]
    operator.clock.advance(2 * S)
    operator.poll()  # short ends; long: 4; found discovered and read: 2
    snapshot = operator.snapshot_state(1)
    assert snapshot == {"parallelism": 1, "splits": [
        {"index": 0, "id": None, "position": None, "finished": True},
        {"index": 1, "id": None, "position": 4, "finished": False},
        {"index": None, "id": "found", "position": 2, "finished": False}]}
    before = list(sink.values)
    for _ in range(5):
        operator.poll()
    uninterrupted = sink.values[len(before):]

    restored, restored_sink = _reader(_Source([short, long], [found]), [snapshot])
    for _ in range(5):
        restored.clock.advance(2 * S)  # discovering again finds nothing new
        restored.poll()
    assert sorted(restored_sink.values) == sorted(uninterrupted)
    assert not any(v in before for v in restored_sink.values)


def test_a_reader_without_snapshots_after_a_restore_reads_nothing():
    source = _Source([_Split("a", ["a1"])], [])
    operator, sink = _reader(source, [])
    operator.poll()
    assert sink.values == [] and operator.splits == []


def test_notifications_confirm_the_positions_of_that_checkpoint():
    split = _Split("a", [f"a{i}" for i in range(10)], bounded=False)
    operator, _ = _reader(_Source([split], []))
    operator.poll()
    operator.snapshot_state(1)  # at 2
    operator.poll()
    operator.snapshot_state(2)  # at 4
    operator.poll()
    operator.notify_checkpoint_complete(1)
    assert split.confirmed == [2]
    operator.notify_checkpoint_complete(3)  # a later id implies the earlier ones
    assert split.confirmed == [2, 4]
    operator.notify_checkpoint_complete(2)
    assert split.confirmed == [2, 4]
