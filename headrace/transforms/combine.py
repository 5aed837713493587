"""Whole-collection and per-value combining, composed from ``CombinePerKey``."""
from __future__ import annotations

from typing import Any

from headrace.sdk.combinefn import CombineFn
from headrace.sdk.dofn import DoFn
from headrace.sdk.pardo import ParDo
from headrace.sdk.primitives import CombinePerKey
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import AsList, AsSingleton, PCollection
from headrace.transforms.create import Create
from headrace.transforms.elementwise import Map


class _InjectDefault(DoFn):
    """Emits the combined value, or the CombineFn's value for no input."""

    def __init__(self, combine_fn: CombineFn, args: tuple, kwargs: dict) -> None:
        self.combine_fn, self.args, self.kwargs = combine_fn, args, kwargs

    def setup(self) -> None:
        self.combine_fn.setup(*self.args, **self.kwargs)

    def process(self, unused: Any, combined: list):
        if combined:
            yield combined[0]
            return
        fn = self.combine_fn
        accumulator = fn.create_accumulator(*self.args, **self.kwargs)
        yield fn.extract_output(accumulator, *self.args, **self.kwargs)

    def teardown(self) -> None:
        self.combine_fn.teardown(*self.args, **self.kwargs)


class CombineGlobally(PTransform):
    """Combine all elements (per window) into one value.

    On an empty global-window input the result is the CombineFn's empty value
    (e.g. 0 for ``sum``) unless ``without_defaults()`` is used.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     total = p | beam.Create([1, 2, 3]) | beam.CombineGlobally(sum)
    """

    def __init__(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.combine_fn = CombineFn.maybe_from_callable(fn)
        self.args, self.kwargs = args, kwargs
        self.has_defaults = True
        self.as_view = False

    def default_label(self) -> str:
        return f"CombineGlobally({self.combine_fn.default_label()})"

    def _clone(self, **changes: Any) -> "CombineGlobally":
        clone = self.__class__.__new__(self.__class__)
        clone.__dict__.update(self.__dict__, **changes)
        return clone

    def with_defaults(self, has_defaults: bool = True) -> "CombineGlobally":
        return self._clone(has_defaults=has_defaults)

    def without_defaults(self) -> "CombineGlobally":
        """Produce nothing (rather than the empty value) for an empty input."""
        return self._clone(has_defaults=False)

    def as_singleton_view(self) -> "CombineGlobally":
        """Apply to get an ``AsSingleton`` side input of the combined value."""
        return self._clone(as_view=True)

    def expand(self, pcoll: PCollection) -> Any:
        combined = (pcoll
                    | "KeyWithVoid" >> Map(lambda value: (None, value))
                    | "CombinePerKey" >> CombinePerKey(self.combine_fn, *self.args, **self.kwargs)
                    | "UnKey" >> Map(lambda key_value: key_value[1]))
        if self.as_view:
            if not self.has_defaults:
                return AsSingleton(combined)
            return AsSingleton(combined, default_value=self.combine_fn.apply(
                [], *self.args, **self.kwargs))
        if not self.has_defaults:
            return combined
        if not pcoll.windowing.is_global():
            raise ValueError(
                "Default values are not yet supported in CombineGlobally() if the output "
                "PCollection is not windowed by GlobalWindows. Instead, use "
                "CombineGlobally().without_defaults() to output an empty PCollection if the "
                "input PCollection is empty, or CombineGlobally().as_singleton_view() to get "
                "the default output of the CombineFn if the input PCollection is empty.")
        return (pcoll.pipeline
                | "DoOnce" >> Create([None])
                | "InjectDefault" >> ParDo(_InjectDefault(self.combine_fn, self.args, self.kwargs),
                                           AsList(combined)))


class CombineValues(PTransform):
    """Combine the iterable value of each ``(key, values)`` pair (e.g. after GroupByKey).

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     maxima = p | beam.Create([("a", [1, 5])]) | beam.CombineValues(max)
    """

    def __init__(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.combine_fn = CombineFn.maybe_from_callable(fn)
        self.args, self.kwargs = args, kwargs

    def default_label(self) -> str:
        return f"CombineValues({self.combine_fn.default_label()})"

    def expand(self, pcoll: PCollection) -> PCollection:
        combine_fn, args, kwargs = self.combine_fn, self.args, self.kwargs

        def combine(key_values: Any) -> Any:
            key, values = key_values
            return key, combine_fn.apply(values, *args, **kwargs)

        return pcoll | "Combine" >> Map(combine)
