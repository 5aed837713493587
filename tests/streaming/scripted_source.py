"""An unbounded test source whose splits release elements at set processing times."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from headrace.sdk.io_base import Source, SourceSplit, SplitReader
from headrace.sdk.watermarks import WatermarkStrategy


class _ScriptedReader(SplitReader):
    def __init__(self, script: Sequence[Tuple[float, Any]], clock: Any, end_at: Optional[float]):
        self.script = list(script)
        self.clock = clock
        self.end_at = end_at
        self.position_ = 0
        self.opened_at = clock()

    def read_batch(self, max_records: int) -> Optional[List[Any]]:
        elapsed = self.clock() - self.opened_at
        batch = []
        while (self.position_ < len(self.script) and len(batch) < max_records
               and self.script[self.position_][0] <= elapsed):
            batch.append(self.script[self.position_][1])
            self.position_ += 1
        if not batch and self.position_ >= len(self.script) \
                and (self.end_at is None or elapsed >= self.end_at):
            return None
        return batch

    def position(self) -> int:
        return self.position_


class _ScriptedSplit(SourceSplit):
    def __init__(self, script, clock, end_at):
        self.script, self.clock, self.end_at = script, clock, end_at

    def open(self, position: Any = None) -> SplitReader:
        return _ScriptedReader(self.script, self.clock, self.end_at)


class ScriptedSource(Source):
    """Each split is a list of ``(seconds after open, element)``; elements are ``(value, ts)``."""

    is_bounded = False

    def __init__(self, scripts: Sequence[Sequence[Tuple[float, Any]]], clock: Any,
                 end_at: Optional[float] = None) -> None:
        self.scripts = scripts
        self.clock = clock
        self.end_at = end_at

    def split(self, desired_num_splits: int) -> List[SourceSplit]:
        return [_ScriptedSplit(script, self.clock, self.end_at) for script in self.scripts]

    def default_watermark_strategy(self) -> WatermarkStrategy:
        return (WatermarkStrategy.for_monotonous_timestamps()
                .with_timestamp_assigner(lambda element, _: element[1]))
