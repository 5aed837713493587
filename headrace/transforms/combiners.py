"""Ready-made aggregations: Count, Mean, Top, Sample, ToList/ToDict/ToSet, Latest.

Each is a ``CombineFn`` plus small composite transforms over
``CombineGlobally`` and ``CombinePerKey``, named as in Beam's ``combiners``.
"""
from __future__ import annotations

import copy
import heapq
import random
from typing import Any, Callable, List, Optional, Tuple

from headrace.sdk.combinefn import CombineFn
from headrace.sdk.dofn import DoFn
from headrace.sdk.pardo import ParDo
from headrace.sdk.primitives import CombinePerKey
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import PCollection
from headrace.sdk.timestamp import MIN_MICROS
from headrace.transforms.combine import CombineGlobally
from headrace.transforms.elementwise import Map


class CountCombineFn(CombineFn):
    """Counts its inputs.

    >>> CountCombineFn().apply(["a", "b"])
    2
    """

    def create_accumulator(self) -> int:
        return 0

    def add_input(self, accumulator: int, element: Any) -> int:
        return accumulator + 1

    def add_inputs(self, accumulator: int, elements: Any) -> int:
        return accumulator + sum(1 for _ in elements)

    def merge_accumulators(self, accumulators: Any) -> int:
        return sum(accumulators)

    def extract_output(self, accumulator: int) -> int:
        return accumulator


class MeanCombineFn(CombineFn):
    """The arithmetic mean; NaN for no input, as in Beam.

    >>> MeanCombineFn().apply([1, 2, 6])
    3.0
    """

    def create_accumulator(self) -> Tuple[Any, int]:
        return (0, 0)

    def add_input(self, accumulator: Tuple[Any, int], element: Any) -> Tuple[Any, int]:
        return (accumulator[0] + element, accumulator[1] + 1)

    def merge_accumulators(self, accumulators: Any) -> Tuple[Any, int]:
        total, count = 0, 0
        for acc_total, acc_count in accumulators:
            total += acc_total
            count += acc_count
        return (total, count)

    def extract_output(self, accumulator: Tuple[Any, int]) -> float:
        total, count = accumulator
        return float("nan") if count == 0 else total / count


class TopCombineFn(CombineFn):
    """The ``n`` greatest elements by ``key`` (smallest with ``reverse=True``), greatest first.

    >>> TopCombineFn(2).apply([3, 1, 4, 1, 5])
    [5, 4]
    """

    def __init__(self, n: int, key: Optional[Callable[[Any], Any]] = None,
                 reverse: bool = False) -> None:
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"Top needs a non-negative count, got {n!r}")
        self.n, self.key, self.reverse = n, key, reverse

    def _trim(self, elements: List[Any]) -> List[Any]:
        pick = heapq.nsmallest if self.reverse else heapq.nlargest
        return pick(self.n, elements, key=self.key)

    def create_accumulator(self) -> List[Any]:
        return []

    def add_input(self, accumulator: List[Any], element: Any) -> List[Any]:
        accumulator.append(element)
        if len(accumulator) > 2 * self.n + 16:
            accumulator[:] = self._trim(accumulator)
        return accumulator

    def merge_accumulators(self, accumulators: Any) -> List[Any]:
        merged: List[Any] = []
        for accumulator in accumulators:
            merged.extend(accumulator)
        return self._trim(merged)

    def compact(self, accumulator: List[Any]) -> List[Any]:
        return self._trim(accumulator)

    def extract_output(self, accumulator: List[Any]) -> List[Any]:
        return self._trim(accumulator)


class SampleCombineFn(CombineFn):
    """A uniform random sample of ``n`` elements, without replacement."""

    def __init__(self, n: int) -> None:
        self._top = TopCombineFn(n, key=lambda weighted: weighted[0])

    def create_accumulator(self) -> List[Any]:
        return []

    def add_input(self, accumulator: List[Any], element: Any) -> List[Any]:
        return self._top.add_input(accumulator, (random.random(), element))

    def merge_accumulators(self, accumulators: Any) -> List[Any]:
        return self._top.merge_accumulators(accumulators)

    def compact(self, accumulator: List[Any]) -> List[Any]:
        return self._top.compact(accumulator)

    def extract_output(self, accumulator: List[Any]) -> List[Any]:
        return [element for _, element in self._top.extract_output(accumulator)]


class ToListCombineFn(CombineFn):
    """All elements as a list."""

    def create_accumulator(self) -> List[Any]:
        return []

    def add_input(self, accumulator: List[Any], element: Any) -> List[Any]:
        accumulator.append(element)
        return accumulator

    def merge_accumulators(self, accumulators: Any) -> List[Any]:
        return [element for accumulator in accumulators for element in accumulator]

    def extract_output(self, accumulator: List[Any]) -> List[Any]:
        return accumulator


class ToDictCombineFn(ToListCombineFn):
    """``(key, value)`` elements as a dict (a later value of a key wins)."""

    def extract_output(self, accumulator: List[Any]) -> dict:
        return dict(accumulator)


class ToSetCombineFn(ToListCombineFn):
    """All distinct elements as a set."""

    def extract_output(self, accumulator: List[Any]) -> set:
        return set(accumulator)


class LatestCombineFn(CombineFn):
    """The value with the latest timestamp among ``(value, timestamp_micros)`` inputs."""

    def create_accumulator(self) -> Tuple[Any, int]:
        return (None, MIN_MICROS)

    def add_input(self, accumulator: Tuple[Any, int], element: Tuple[Any, int]):
        return element if element[1] > accumulator[1] else accumulator

    def merge_accumulators(self, accumulators: Any) -> Tuple[Any, int]:
        latest = (None, MIN_MICROS)
        for accumulator in accumulators:
            if accumulator[1] > latest[1]:
                latest = accumulator
        return latest

    def extract_output(self, accumulator: Tuple[Any, int]) -> Any:
        return accumulator[0]


class CombinerWithoutDefaults(PTransform):
    """A global combiner that can skip the default output for empty input, as in Beam."""

    has_defaults = True

    def with_defaults(self, has_defaults: bool = True) -> "CombinerWithoutDefaults":
        clone = copy.copy(self)
        clone.has_defaults = has_defaults
        return clone

    def without_defaults(self) -> "CombinerWithoutDefaults":
        """Output nothing (rather than the empty value) for an empty input."""
        return self.with_defaults(False)

    def combine_globally(self, combine_fn: CombineFn) -> CombineGlobally:
        combine = CombineGlobally(combine_fn)
        return combine if self.has_defaults else combine.without_defaults()


def _globally(fn_factory: Callable[[], CombineFn], name: str) -> type:
    class _Globally(CombinerWithoutDefaults):
        def expand(self, pcoll: PCollection) -> PCollection:
            return pcoll | name >> self.combine_globally(fn_factory())

    _Globally.__name__ = _Globally.__qualname__ = "Globally"
    return _Globally


def _per_key(fn_factory: Callable[[], CombineFn], name: str) -> type:
    class _PerKey(PTransform):
        def expand(self, pcoll: PCollection) -> PCollection:
            return pcoll | name >> CombinePerKey(fn_factory())

    _PerKey.__name__ = _PerKey.__qualname__ = "PerKey"
    return _PerKey


class Count:
    """Counting: ``Count.Globally()``, ``Count.PerKey()``, ``Count.PerElement()``.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     counts = p | beam.Create(["a", "b", "a"]) | beam.combiners.Count.PerElement()
    """

    Globally = _globally(CountCombineFn, "CountCombineFn")
    PerKey = _per_key(CountCombineFn, "CountCombineFn")

    class PerElement(PTransform):
        """``(element, count)`` for each distinct element."""

        def expand(self, pcoll: PCollection) -> PCollection:
            return (pcoll | "PairWithVoid" >> Map(lambda element: (element, None))
                    | "CountCombineFn" >> CombinePerKey(CountCombineFn()))


class Mean:
    """Averages: ``Mean.Globally()`` and ``Mean.PerKey()``.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     mean = p | beam.Create([1, 2, 6]) | beam.combiners.Mean.Globally()
    """

    Globally = _globally(MeanCombineFn, "MeanCombineFn")
    PerKey = _per_key(MeanCombineFn, "MeanCombineFn")


class _TopTransform(CombinerWithoutDefaults):
    def __init__(self, n: int, key: Optional[Callable[[Any], Any]] = None,
                 reverse: bool = False, per_key: bool = False) -> None:
        super().__init__()
        self.combine_fn = TopCombineFn(n, key, reverse)
        self.per_key = per_key

    def expand(self, pcoll: PCollection) -> PCollection:
        if self.per_key:
            return pcoll | "TopPerKey" >> CombinePerKey(self.combine_fn)
        return pcoll | "Top" >> self.combine_globally(self.combine_fn)


class Top:
    """The largest (or smallest) elements, largest first.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     top2 = p | beam.Create([3, 1, 4, 1, 5]) | beam.combiners.Top.Of(2)
    """

    class Of(_TopTransform):
        """The ``n`` greatest elements by ``key``; the smallest with ``reverse=True``."""

        def __init__(self, n: int, key: Optional[Callable[[Any], Any]] = None,
                     reverse: bool = False) -> None:
            super().__init__(n, key, reverse)

    class PerKey(_TopTransform):
        """The ``n`` greatest values of each key."""

        def __init__(self, n: int, key: Optional[Callable[[Any], Any]] = None,
                     reverse: bool = False) -> None:
            super().__init__(n, key, reverse, per_key=True)

    class Largest(_TopTransform):
        def __init__(self, n: int, key: Optional[Callable[[Any], Any]] = None) -> None:
            super().__init__(n, key)

    class Smallest(_TopTransform):
        def __init__(self, n: int, key: Optional[Callable[[Any], Any]] = None) -> None:
            super().__init__(n, key, reverse=True)

    class LargestPerKey(_TopTransform):
        def __init__(self, n: int, key: Optional[Callable[[Any], Any]] = None) -> None:
            super().__init__(n, key, per_key=True)

    class SmallestPerKey(_TopTransform):
        def __init__(self, n: int, key: Optional[Callable[[Any], Any]] = None) -> None:
            super().__init__(n, key, reverse=True, per_key=True)


class Sample:
    """Random samples: ``Sample.FixedSizeGlobally(n)`` and ``Sample.FixedSizePerKey(n)``.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     three = p | beam.Create(range(100)) | beam.combiners.Sample.FixedSizeGlobally(3)
    """

    class FixedSizeGlobally(CombinerWithoutDefaults):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.n = n

        def expand(self, pcoll: PCollection) -> PCollection:
            return pcoll | "Sample" >> self.combine_globally(SampleCombineFn(self.n))

    class FixedSizePerKey(PTransform):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.n = n

        def expand(self, pcoll: PCollection) -> PCollection:
            return pcoll | "Sample" >> CombinePerKey(SampleCombineFn(self.n))


class ToList(CombinerWithoutDefaults):
    """All elements (per window) as one list.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     as_list = p | beam.Create([1, 2]) | beam.combiners.ToList()
    """

    def expand(self, pcoll: PCollection) -> PCollection:
        return pcoll | "ToList" >> self.combine_globally(ToListCombineFn())


class ToDict(CombinerWithoutDefaults):
    """``(key, value)`` elements (per window) as one dict."""

    def expand(self, pcoll: PCollection) -> PCollection:
        return pcoll | "ToDict" >> self.combine_globally(ToDictCombineFn())


class ToSet(CombinerWithoutDefaults):
    """All distinct elements (per window) as one set."""

    def expand(self, pcoll: PCollection) -> PCollection:
        return pcoll | "ToSet" >> self.combine_globally(ToSetCombineFn())


class _AddTimestamp(DoFn):
    def process(self, element: Any, timestamp=DoFn.TimestampParam):
        yield (element, timestamp.micros)


class _AddTimestampPerKey(DoFn):
    def process(self, element: Any, timestamp=DoFn.TimestampParam):
        key, value = element
        yield (key, (value, timestamp.micros))


class Latest:
    """The element with the latest event timestamp: ``Latest.Globally()``, ``Latest.PerKey()``.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     last = (p | beam.Create([beam.window.TimestampedValue("a", 1),
    ...                              beam.window.TimestampedValue("b", 2)])
    ...               | beam.combiners.Latest.Globally())
    """

    class Globally(CombinerWithoutDefaults):
        def expand(self, pcoll: PCollection) -> PCollection:
            return (pcoll | "AddTimestamp" >> ParDo(_AddTimestamp())
                    | "LatestCombineFn" >> self.combine_globally(LatestCombineFn()))

    class PerKey(PTransform):
        def expand(self, pcoll: PCollection) -> PCollection:
            return (pcoll | "AddTimestamp" >> ParDo(_AddTimestampPerKey())
                    | "LatestCombineFn" >> CombinePerKey(LatestCombineFn()))
