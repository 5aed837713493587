"""``Create``: a PCollection from values in the pipeline itself."""
from __future__ import annotations

from typing import Any, Iterable, List, Optional

from headrace.sdk.io_base import Source, SourceSplit, SplitReader
from headrace.sdk.primitives import Read
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import PBegin, PCollection


class _ListReader(SplitReader):
    def __init__(self, values: List[Any], start: int) -> None:
        self._values = values
        self._next = start

    def read_batch(self, max_records: int) -> Optional[List[Any]]:
        if self._next >= len(self._values):
            return None
        batch = self._values[self._next:self._next + max_records]
        self._next += len(batch)
        return batch

    def position(self) -> int:
        return self._next


class _ListSplit(SourceSplit):
    def __init__(self, values: List[Any]) -> None:
        self.values = values

    def open(self, position: Any = None) -> SplitReader:
        return _ListReader(self.values, position or 0)


class InMemorySource(Source):
    """A bounded source over a list, split into contiguous runs."""

    def __init__(self, values: List[Any]) -> None:
        self.values = values

    def split(self, desired_num_splits: int) -> List[SourceSplit]:
        count = max(1, min(desired_num_splits, len(self.values)))
        size = -(-len(self.values) // count) if self.values else 0
        if size == 0:
            return [_ListSplit([])]
        return [_ListSplit(self.values[i:i + size]) for i in range(0, len(self.values), size)]

    def display_name(self) -> str:
        return f"InMemory({len(self.values)} elements)"


class Create(PTransform):
    """A PCollection of the given values; ``TimestampedValue`` s set event times.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     numbers = p | beam.Create([1, 2, 3])
    """

    def __init__(self, values: Iterable[Any], reshuffle: bool = True) -> None:
        super().__init__()
        if isinstance(values, (str, bytes)):
            raise TypeError(f"PTransform Create: Refusing to treat string as an iterable. "
                            f"(string={values!r:.100})")
        if isinstance(values, dict):
            values = values.items()
        try:
            self.values = list(values)
        except TypeError:
            raise TypeError(f"PTransform Create needs an iterable of values, "
                            f"got {type(values).__name__}") from None

    def expand(self, pbegin: PBegin) -> PCollection:
        return pbegin | Read(InMemorySource(self.values))
