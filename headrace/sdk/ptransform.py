"""``PTransform``: the unit of pipeline construction, composed with ``|``, labelled with ``>>``."""
from __future__ import annotations

import copy
import functools
from typing import Any, Callable, Optional


class PTransform:
    """A transformation from input PValues to output PValues.

    Composites override :meth:`expand`, applying other transforms to the input.

    >>> import headrace as beam
    >>> class CountWords(beam.PTransform):
    ...     def expand(self, lines):
    ...         return (lines | beam.FlatMap(str.split)
    ...                       | beam.combiners.Count.PerElement())
    >>> with beam.Pipeline() as p:
    ...     counts = p | beam.Create(["a b", "a"]) | CountWords()
    """

    #: Set by primitives; runners execute these directly instead of their expansion.
    is_primitive = False

    def __init__(self, label: Optional[str] = None) -> None:
        self._label = label

    @property
    def label(self) -> str:
        return self._label or self.default_label()

    @label.setter
    def label(self, value: str) -> None:
        self._label = value

    def default_label(self) -> str:
        return type(self).__name__

    def expand(self, input_or_inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement expand()")

    def with_input_types(self, *args: Any, **kwargs: Any) -> "PTransform":
        """Accepted for Beam compatibility; type hints are not checked."""
        return self

    def with_output_types(self, *args: Any, **kwargs: Any) -> "PTransform":
        """Accepted for Beam compatibility; type hints are not checked."""
        return self

    def with_resource_hints(self, **kwargs: Any) -> "PTransform":
        """Accepted for Beam compatibility; resource hints are ignored."""
        return self

    def __rrshift__(self, label: str) -> "PTransform":
        if not isinstance(label, str):
            return NotImplemented
        named = copy.copy(self)
        named.label = label
        return named

    def __ror__(self, left: Any) -> Any:
        pipeline = _find_pipeline(left)
        if pipeline is None:
            raise TypeError(f"Cannot apply {self.label!r} to {type(left).__name__} {left!r:.80}: "
                            "the left side of | must be a Pipeline or PCollection(s)")
        return pipeline.apply(self, left)

    def __or__(self, right: Any) -> "PTransform":
        if not isinstance(right, PTransform):
            return NotImplemented
        return _ChainedPTransform(self, right)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r}>"


class _ChainedPTransform(PTransform):
    """``t1 | t2`` without an input: a composite applying both in order."""

    def __init__(self, *parts: PTransform) -> None:
        super().__init__("|".join(p.label for p in parts))
        self._parts = parts

    def __or__(self, right: Any) -> PTransform:
        if not isinstance(right, PTransform):
            return NotImplemented
        return _ChainedPTransform(*self._parts, right)

    def expand(self, pvalue: Any) -> Any:
        for part in self._parts:
            pvalue = pvalue | part
        return pvalue


def _find_pipeline(pvalueish: Any):
    from headrace.sdk.pipeline import Pipeline
    from headrace.sdk.pvalue import PValue

    if isinstance(pvalueish, Pipeline):
        return pvalueish
    if isinstance(pvalueish, PValue):
        return pvalueish.pipeline
    values = pvalueish.values() if isinstance(pvalueish, dict) else pvalueish
    if isinstance(values, (tuple, list, type({}.values()))):
        for value in values:
            if isinstance(value, PValue):
                return value.pipeline
    return None


class _PTransformFn(PTransform):
    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        super().__init__()
        self._fn, self._args, self._kwargs = fn, args, kwargs

    def default_label(self) -> str:
        # Beam's label: the function's name, plus its first argument when it has one.
        if not self._args:
            return self._fn.__name__
        from headrace.sdk.callable_dofn import label_from_callable

        first = self._args[0]
        arg = label_from_callable(first) if callable(first) else str(first)
        if len(arg) > 19:
            arg = f"{arg[:10]}...{arg[-6:]}"
        return f"{self._fn.__name__}({arg})"

    def expand(self, pvalue: Any) -> Any:
        return self._fn(pvalue, *self._args, **self._kwargs)


def ptransform_fn(fn: Callable[..., Any]) -> Callable[..., PTransform]:
    """Turn ``fn(pcoll, *args)`` into a composite transform factory.

    >>> import headrace as beam
    >>> @beam.ptransform_fn
    ... def Double(pcoll):
    ...     return pcoll | beam.Map(lambda x: 2 * x)
    >>> with beam.Pipeline() as p:
    ...     doubled = p | beam.Create([1, 2]) | Double()
    """

    @functools.wraps(fn)
    def factory(*args: Any, **kwargs: Any) -> PTransform:
        return _PTransformFn(fn, args, kwargs)

    return factory
