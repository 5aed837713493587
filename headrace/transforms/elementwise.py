"""Per-element transforms built on ``ParDo``: Map, FlatMap, Filter and their tuple forms."""
from __future__ import annotations

from typing import Any, Callable

from headrace.sdk.callable_dofn import CallableWrapperDoFn, label_from_callable
from headrace.sdk.pardo import ParDo


def _callable_pardo(name: str, kind: str, fn: Any, args: tuple, kwargs: dict) -> ParDo:
    if not callable(fn):
        raise TypeError(f"{name} can be used only with callable objects. "
                        f"Received {fn!r:.100} instead.")
    pardo = ParDo(CallableWrapperDoFn(fn, kind), *args, **kwargs)
    pardo.label = f"{name}({label_from_callable(fn)})"
    return pardo


def Map(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ParDo:
    """One output per element: ``fn(element, *args)``.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     lengths = p | beam.Create(["ab", "c"]) | beam.Map(len)
    """
    return _callable_pardo("Map", "map", fn, args, kwargs)


def FlatMap(fn: Callable[..., Any] = lambda x: x, *args: Any, **kwargs: Any) -> ParDo:
    """Zero or more outputs per element: the items of ``fn(element, *args)``.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     words = p | beam.Create(["a b", "c"]) | beam.FlatMap(str.split)
    """
    return _callable_pardo("FlatMap", "flatmap", fn, args, kwargs)


def Filter(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ParDo:
    """Keep the elements for which ``fn(element, *args)`` is true.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     evens = p | beam.Create([1, 2, 3, 4]) | beam.Filter(lambda x: x % 2 == 0)
    """
    return _callable_pardo("Filter", "filter", fn, args, kwargs)


def MapTuple(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ParDo:
    """Like ``Map``, with the element (a tuple) unpacked into ``fn``'s arguments.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     sums = p | beam.Create([(1, 2), (3, 4)]) | beam.MapTuple(lambda a, b: a + b)
    """
    return _callable_pardo("MapTuple", "maptuple", fn, args, kwargs)


def FlatMapTuple(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ParDo:
    """Like ``FlatMap``, with the element (a tuple) unpacked into ``fn``'s arguments.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     repeated = p | beam.Create([("a", 2)]) | beam.FlatMapTuple(lambda s, n: [s] * n)
    """
    return _callable_pardo("FlatMapTuple", "flatmaptuple", fn, args, kwargs)
