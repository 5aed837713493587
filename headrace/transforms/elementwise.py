"""Per-element transforms built on ``ParDo``: Map, FlatMap, Filter and their tuple forms."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

from headrace.sdk.dofn import DoFn
from headrace.sdk.pardo import ParDo


def label_from_callable(fn: Any) -> str:
    """A readable label for a function, as Beam writes it: ``<lambda at file.py:12>``."""
    name = getattr(fn, "__name__", None)
    if name == "<lambda>":
        code = getattr(fn, "__code__", None)
        if code is not None:
            return f"<lambda at {code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}>"
    if name:
        return name
    return type(fn).__name__


def _tuple_signature(fn: Callable[..., Any]) -> Optional[inspect.Signature]:
    """The signature a *Tuple transform exposes: one element, then fn's defaulted params."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    kept = [p for p in params
            if p.default is not inspect.Parameter.empty
            or p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)]
    element = inspect.Parameter("element", inspect.Parameter.POSITIONAL_ONLY)
    return inspect.Signature([element] + kept)


class CallableWrapperDoFn(DoFn):
    """A DoFn around a plain function; ``kind`` says how its result becomes outputs."""

    def __init__(self, fn: Callable[..., Any], kind: str) -> None:
        self.fn = fn
        self.kind = kind

    def default_label(self) -> str:
        return label_from_callable(self.fn)

    def process_signature(self) -> Optional[inspect.Signature]:
        """The signature the invoker plans against: the user's function, not ``process``."""
        if self.kind.endswith("tuple"):
            return _tuple_signature(self.fn)
        try:
            return inspect.signature(self.fn)
        except (TypeError, ValueError):
            return None

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Any:
        kind, fn = self.kind, self.fn
        if kind == "map":
            return (fn(element, *args, **kwargs),)
        if kind == "flatmap":
            return fn(element, *args, **kwargs)
        if kind == "filter":
            return (element,) if fn(element, *args, **kwargs) else ()
        if kind == "maptuple":
            return (fn(*element, *args, **kwargs),)
        return fn(*element, *args, **kwargs)


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
