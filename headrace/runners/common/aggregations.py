"""How a grouping keeps a window's values: in a bag (GroupByKey, :class:`BufferAggregation`)
or as one accumulator (CombinePerKey, :class:`CombiningAggregation`), in the ``buffer`` and
``accumulator`` cells of the keyed-state backend (namespace = the window).

:class:`~headrace.runners.common.grouping.TriggeredGrouping` adds to, extracts, clears and
merges a window's values only through these.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, List


class Aggregation:
    """How a window's values are kept: a bag of them, or one accumulator."""

    def add(self, backend: Any, key: bytes, window: Hashable, values: List[Any]) -> None:
        raise NotImplementedError

    def extract(self, backend: Any, key: bytes, window: Hashable) -> Any:
        raise NotImplementedError

    def clear(self, backend: Any, key: bytes, window: Hashable) -> None:
        raise NotImplementedError

    def merge(self, backend: Any, key: bytes, sources: List[Hashable], target: Hashable) -> None:
        """Fold the contents of ``sources`` (which may include ``target``) into ``target``."""
        raise NotImplementedError


class BufferAggregation(Aggregation):
    """GroupByKey: the values in a bag; a pane is the list of them.

    >>> from headrace.runners.state.memory import MemoryStateBackend
    >>> backend = MemoryStateBackend()
    >>> BufferAggregation().add(backend, b"k", None, [1, 2])
    >>> BufferAggregation().extract(backend, b"k", None)
    [1, 2]
    """

    CELL = "buffer"

    def add(self, backend: Any, key: bytes, window: Hashable, values: List[Any]) -> None:
        add = backend.add_to_bag
        for value in values:
            add(self.CELL, key, window, value)

    def extract(self, backend: Any, key: bytes, window: Hashable) -> Any:
        return backend.read_bag(self.CELL, key, window)

    def clear(self, backend: Any, key: bytes, window: Hashable) -> None:
        backend.clear(self.CELL, key, window)

    def merge(self, backend: Any, key: bytes, sources: List[Hashable], target: Hashable) -> None:
        for source in sources:
            if source != target:
                self.add(backend, key, target, backend.read_bag(self.CELL, key, source))
                backend.clear(self.CELL, key, source)


class CombiningAggregation(Aggregation):
    """CombinePerKey: one accumulator per key and window, never the elements themselves.

    ``call(method, *args)`` invokes a ``CombineFn`` method (the operator adds
    the CombineFn's extra arguments and labels its errors).

    >>> from headrace.runners.state.memory import MemoryStateBackend
    >>> from headrace.sdk.combinefn import CombineFn
    >>> backend, total = MemoryStateBackend(), CombineFn.maybe_from_callable(sum)
    >>> aggregation = CombiningAggregation(total, lambda method, *args: method(*args))
    >>> aggregation.add(backend, b"k", None, [1, 2]); aggregation.add(backend, b"k", None, [3])
    >>> aggregation.extract(backend, b"k", None)
    6
    """

    CELL = "accumulator"

    def __init__(self, combine_fn: Any, call: Callable[..., Any]) -> None:
        self.fn = combine_fn
        self.call = call

    def add(self, backend: Any, key: bytes, window: Hashable, values: List[Any]) -> None:
        accumulator = backend.get_value(self.CELL, key, window)
        if accumulator is None:
            accumulator = self.call(self.fn.create_accumulator)
        backend.put_value(self.CELL, key, window,
                          self.call(self.fn.add_inputs, accumulator, values))

    def extract(self, backend: Any, key: bytes, window: Hashable) -> Any:
        accumulator = backend.get_value(self.CELL, key, window)
        if accumulator is None:  # an empty pane, e.g. on time after discarding early panes
            accumulator = self.call(self.fn.create_accumulator)
        return self.call(self.fn.extract_output, self.call(self.fn.compact, accumulator))

    def clear(self, backend: Any, key: bytes, window: Hashable) -> None:
        backend.clear(self.CELL, key, window)

    def merge(self, backend: Any, key: bytes, sources: List[Hashable], target: Hashable) -> None:
        accumulators = [a for a in (backend.get_value(self.CELL, key, w) for w in sources)
                        if a is not None]
        for source in sources:
            backend.clear(self.CELL, key, source)
        if accumulators:
            backend.put_value(self.CELL, key, target,
                              self.call(self.fn.merge_accumulators, accumulators))
