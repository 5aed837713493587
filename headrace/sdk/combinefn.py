"""``CombineFn``: an associative, commutative aggregation in Beam's four-method form."""
from __future__ import annotations

from typing import Any, Callable, Iterable, List


class CombineFn:
    """Aggregates values through an accumulator, so runners can combine in parallel.

    >>> class Average(CombineFn):
    ...     def create_accumulator(self): return (0, 0)
    ...     def add_input(self, acc, x): return (acc[0] + x, acc[1] + 1)
    ...     def merge_accumulators(self, accs):
    ...         sums, counts = zip(*accs)
    ...         return (sum(sums), sum(counts))
    ...     def extract_output(self, acc): return acc[0] / acc[1] if acc[1] else float("nan")
    >>> Average().apply([1, 2, 3, 6])
    3.0
    """

    def setup(self, *args: Any, **kwargs: Any) -> None:
        """Called once per instance before use."""

    def create_accumulator(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement create_accumulator()")

    def add_input(self, mutable_accumulator: Any, element: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement add_input()")

    def add_inputs(self, mutable_accumulator: Any, elements: Iterable[Any],
                   *args: Any, **kwargs: Any) -> Any:
        for element in elements:
            mutable_accumulator = self.add_input(mutable_accumulator, element, *args, **kwargs)
        return mutable_accumulator

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement merge_accumulators()")

    def compact(self, accumulator: Any, *args: Any, **kwargs: Any) -> Any:
        return accumulator

    def extract_output(self, accumulator: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement extract_output()")

    def teardown(self, *args: Any, **kwargs: Any) -> None:
        """Called once per instance when it is discarded."""

    def apply(self, elements: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        """Combine ``elements`` locally: handy in tests and in ``CombineValues``."""
        accumulator = self.add_inputs(self.create_accumulator(*args, **kwargs), elements,
                                      *args, **kwargs)
        return self.extract_output(accumulator, *args, **kwargs)

    def default_label(self) -> str:
        return type(self).__name__

    @staticmethod
    def maybe_from_callable(fn: Any) -> "CombineFn":
        """Accept a CombineFn as is, or wrap a callable on an iterable (e.g. ``sum``)."""
        if isinstance(fn, CombineFn):
            return fn
        if isinstance(fn, type) and issubclass(fn, CombineFn):
            raise TypeError(f"Expected a CombineFn instance, got the class {fn.__name__}; "
                            f"write {fn.__name__}()")
        if callable(fn):
            return CallableWrapperCombineFn(fn)
        raise TypeError(f"Expected a CombineFn or a callable, got {fn!r:.100}")


class CallableWrapperCombineFn(CombineFn):
    """Combines with ``fn(iterable)`` (e.g. ``sum``, ``max``), reducing the buffer as it grows.

    ``fn`` must be associative and commutative, since partial results are fed back to it.

    >>> CallableWrapperCombineFn(max).apply([3, 9, 4])
    9
    """

    _BUFFER_SIZE = 64

    def __init__(self, fn: Callable[[Iterable[Any]], Any]) -> None:
        self._fn = fn

    def create_accumulator(self, *args: Any, **kwargs: Any) -> List[Any]:
        return []

    def add_input(self, accumulator: List[Any], element: Any, *args: Any, **kwargs: Any):
        accumulator.append(element)
        if len(accumulator) > self._BUFFER_SIZE:
            accumulator[:] = [self._fn(accumulator, *args, **kwargs)]
        return accumulator

    def add_inputs(self, accumulator: List[Any], elements: Iterable[Any], *args: Any,
                   **kwargs: Any):
        accumulator.extend(elements)
        if len(accumulator) > self._BUFFER_SIZE:
            accumulator[:] = [self._fn(accumulator, *args, **kwargs)]
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[List[Any]], *args: Any, **kwargs: Any):
        merged: List[Any] = []
        for accumulator in accumulators:
            merged.extend(accumulator)
        if len(merged) > 1:
            merged = [self._fn(merged, *args, **kwargs)]
        return merged

    def compact(self, accumulator: List[Any], *args: Any, **kwargs: Any):
        if len(accumulator) > 1:
            return [self._fn(accumulator, *args, **kwargs)]
        return accumulator

    def extract_output(self, accumulator: List[Any], *args: Any, **kwargs: Any) -> Any:
        return self._fn(accumulator, *args, **kwargs)

    def default_label(self) -> str:
        return getattr(self._fn, "__name__", type(self._fn).__name__)
