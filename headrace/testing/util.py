"""Assertions on PCollections, checked inside the pipeline on every runner.

>>> import headrace as beam
>>> from headrace.testing.util import assert_that, equal_to
>>> with beam.Pipeline() as p:
...     assert_that(p | beam.Create([1, 2]) | beam.Map(lambda x: x * 10), equal_to([10, 20]))
"""
from __future__ import annotations

from collections import Counter, namedtuple
from typing import Any, Callable, Iterable, List, Optional

from headrace.sdk.dofn import DoFn
from headrace.sdk.pardo import ParDo
from headrace.sdk.primitives import WindowInto
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import PCollection
from headrace.sdk.window import GlobalWindows
from headrace.transforms.create import Create
from headrace.transforms.elementwise import Map
from headrace.transforms.util import CoGroupByKey

#: An element with its timestamp and windows, as ``assert_that(..., reify_windows=True)`` sees it.
TestWindowedValue = namedtuple("TestWindowedValue", "value timestamp windows")


class BeamAssertException(Exception):
    """An ``assert_that`` matcher failed."""


def _counts(items: Iterable[Any]) -> Optional[Counter]:
    try:
        return Counter(items)
    except TypeError:  # unhashable elements: fall back to pairwise comparison
        return None


def equal_to(expected: Iterable[Any],
             equals_fn: Optional[Callable[[Any, Any], bool]] = None) -> Callable[[List[Any]], None]:
    """A matcher: the actual elements equal ``expected`` in any order, duplicates counted."""
    expected = list(expected)

    def _equal(actual: List[Any]) -> None:
        actual = list(actual)
        if equals_fn is None:
            want, got = _counts(expected), _counts(actual)
            if want is not None and got is not None:
                if want == got:
                    return
                missing, unexpected = list((want - got).elements()), list((got - want).elements())
                raise BeamAssertException(
                    f"Failed assert: {expected!r:.1000} == {actual!r:.1000}, unexpected elements "
                    f"{unexpected!r:.500}, missing elements {missing!r:.500}")
        equals = equals_fn or (lambda a, b: a == b)
        remaining = list(actual)
        missing = []
        for item in expected:
            for i, candidate in enumerate(remaining):
                if equals(item, candidate):
                    del remaining[i]
                    break
            else:
                missing.append(item)
        if missing or remaining:
            raise BeamAssertException(
                f"Failed assert: {expected!r:.1000} == {actual!r:.1000}, unexpected elements "
                f"{remaining!r:.500}, missing elements {missing!r:.500}")

    return _equal


def is_empty() -> Callable[[List[Any]], None]:
    """A matcher: no elements."""

    def _empty(actual: List[Any]) -> None:
        actual = list(actual)
        if actual:
            raise BeamAssertException(f"Failed assert: [] == {actual!r:.1000}")

    return _empty


def is_not_empty() -> Callable[[List[Any]], None]:
    """A matcher: at least one element."""

    def _not_empty(actual: List[Any]) -> None:
        if not list(actual):
            raise BeamAssertException("Failed assert: pcol is empty")

    return _not_empty


class _ReifyWindows(DoFn):
    def process(self, element, timestamp=DoFn.TimestampParam, window=DoFn.WindowParam):
        yield TestWindowedValue(element, timestamp, [window])


class _AssertThat(PTransform):
    def __init__(self, matcher: Callable[[List[Any]], None], reify_windows: bool,
                 use_global_window: bool) -> None:
        super().__init__()
        self.matcher = matcher
        self.reify_windows = reify_windows
        self.use_global_window = use_global_window

    def expand(self, pcoll: PCollection) -> None:
        if self.reify_windows:
            pcoll = pcoll | "ReifyWindows" >> ParDo(_ReifyWindows())
        if self.use_global_window:
            pcoll = pcoll | "WindowIntoGlobal" >> WindowInto(GlobalWindows())
        matcher = self.matcher
        singleton = pcoll.pipeline | "Singleton" >> Create([(None, None)])
        actual = pcoll | "ToVoidKey" >> Map(lambda value: (None, value))
        (singleton, actual) | "Group" >> CoGroupByKey() \
            | "Match" >> Map(lambda key_groups: matcher(key_groups[1][1]))


def assert_that(actual: PCollection, matcher: Callable[[List[Any]], None],
                label: str = "assert_that", reify_windows: bool = False,
                use_global_window: bool = True) -> None:
    """Check ``matcher(all elements of actual)`` when the pipeline runs; a failure fails it."""
    if not isinstance(actual, PCollection):
        raise TypeError(f"assert_that needs a PCollection, got {type(actual).__name__}")
    actual | label >> _AssertThat(matcher, reify_windows, use_global_window)
