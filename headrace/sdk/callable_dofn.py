"""Wrapping plain functions as DoFns, as ``Map``, ``FlatMap`` and ``ParDo(fn)`` do."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

from headrace.sdk.dofn import DoFn


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
