"""Values flowing through a pipeline: PCollections, tagged outputs and side-input views."""
from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

if TYPE_CHECKING:
    from headrace.sdk.pipeline import AppliedTransform, Pipeline
    from headrace.sdk.windowing import Windowing


class PValue:
    """Something a transform can be applied to with ``|``."""

    def __init__(self, pipeline: "Pipeline") -> None:
        self.pipeline = pipeline

    def __or__(self, transform: Any) -> Any:
        return self.pipeline.apply(transform, self)

    def apply(self, transform: Any, label: Optional[str] = None) -> Any:
        return self.pipeline.apply(transform, self, label)


class PBegin(PValue):
    """The input of a root transform such as ``Create`` or ``ReadFromText``."""

    def __repr__(self) -> str:
        return "PBegin"


class PDone(PValue):
    """The output of a transform with no output."""


class PCollection(PValue):
    """A distributed, possibly unbounded collection of elements.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     squares = p | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * x)
    """

    def __init__(self, pipeline: "Pipeline", producer: Optional["AppliedTransform"] = None,
                 tag: Optional[str] = None, windowing: Optional["Windowing"] = None,
                 is_bounded: bool = True, element_type: Any = None) -> None:
        super().__init__(pipeline)
        self.producer = producer
        self.tag = tag
        self.windowing = windowing
        self.is_bounded = is_bounded
        self.element_type = element_type

    @property
    def label(self) -> str:
        base = self.producer.full_label if self.producer else "?"
        return base if self.tag is None else f"{base}.{self.tag}"

    def __repr__(self) -> str:
        return f"<PCollection {self.label!r}>"

    def __reduce_ex__(self, protocol):
        raise TypeError(
            f"PCollection {self.label!r} cannot be pickled: a DoFn or function must not hold a "
            "PCollection; pass it as a side input (beam.pvalue.AsList(...) etc.) instead")


class TaggedOutput:
    """An output of a ``DoFn`` sent to the output named ``tag``.

    >>> TaggedOutput("errors", "bad line").tag
    'errors'
    """

    __slots__ = ("tag", "value")

    def __init__(self, tag: str, value: Any) -> None:
        if not isinstance(tag, str):
            raise TypeError(f"TaggedOutput tag must be a str, got {type(tag).__name__}")
        self.tag = tag
        self.value = value

    def __repr__(self) -> str:
        return f"TaggedOutput({self.tag!r}, {self.value!r})"


class DoOutputsTuple:
    """The outputs of ``ParDo(...).with_outputs(...)``: by attribute, by key, or unpacked.

    Unpacking yields the main output first when it was named (``main=...``), then the
    declared tags in order, as in Beam.
    """

    def __init__(self, pipeline: "Pipeline", producer: "AppliedTransform",
                 tags: List[str], main_tag: Optional[str], allow_unknown: bool = True) -> None:
        self._pipeline = pipeline
        self._producer = producer
        self._tags = list(tags)
        self._main_tag = main_tag
        self._allow_unknown = allow_unknown

    def __getitem__(self, tag: Optional[str]) -> PCollection:
        if tag == self._main_tag:
            tag = None
        outputs: Dict[Optional[str], PCollection] = self._producer.outputs
        if tag not in outputs:
            if not self._allow_unknown and tag not in self._tags:
                raise ValueError(f"Tag {tag!r} is not a declared output of "
                                 f"{self._producer.full_label!r}: declared {self._tags}")
            outputs[tag] = self._producer.new_output(tag)
        return outputs[tag]

    def __getattr__(self, tag: str) -> PCollection:
        if tag.startswith("_"):
            raise AttributeError(tag)
        return self[tag]

    def __iter__(self) -> Iterator[PCollection]:
        if self._main_tag is not None:
            yield self[None]
        for tag in self._tags:
            yield self[tag]

    def __len__(self) -> int:
        return (self._main_tag is not None) + len(self._tags)

    def __repr__(self) -> str:
        return f"<DoOutputsTuple main_tag={self._main_tag!r} tags={self._tags}>"


class _NoDefault:
    """The "no default value" marker; pickles to the same marker (views travel to workers)."""

    def __reduce__(self) -> str:
        return "_NO_DEFAULT"


_NO_DEFAULT = _NoDefault()


class EmptySideInput:
    """What an ``AsSingleton`` view of an empty PCollection without a default gives (Beam's)."""

    def __repr__(self) -> str:
        return "EmptySideInput()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EmptySideInput)

    def __hash__(self) -> int:
        return hash(EmptySideInput)


class AsSideInput:
    """A view of a PCollection passed to a ``DoFn`` as an extra argument."""

    def __init__(self, pcoll: PCollection) -> None:
        if not isinstance(pcoll, PCollection):
            raise TypeError(f"{type(self).__name__} expects a PCollection, "
                            f"got {type(pcoll).__name__}")
        self.pvalue = pcoll

    def view(self, values: List[Any]) -> Any:
        """Materialize the view from the side input's values in one window."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pvalue.label})"


class AsSingleton(AsSideInput):
    """The single element of a PCollection (or ``default_value`` when it is empty)."""

    def __init__(self, pcoll: PCollection, default_value: Any = _NO_DEFAULT) -> None:
        super().__init__(pcoll)
        self.default_value = default_value

    def view(self, values: List[Any]) -> Any:
        if len(values) == 1:
            return values[0]
        if not values:
            return EmptySideInput() if self.default_value is _NO_DEFAULT else self.default_value
        raise ValueError(
            f"PCollection {self.pvalue.label!r} of size {len(values)} with more than one element "
            f"accessed as a singleton view. First two elements encountered are "
            f"{values[0]!r:.100}, {values[1]!r:.100}.")


class AsIter(AsSideInput):
    """All elements of a PCollection, as an iterable."""

    def view(self, values: List[Any]) -> Any:
        return tuple(values)


class AsList(AsSideInput):
    """All elements of a PCollection, as a list."""

    def view(self, values: List[Any]) -> Any:
        return list(values)


class AsDict(AsSideInput):
    """A PCollection of ``(key, value)`` pairs, as a dict."""

    def view(self, values: List[Any]) -> Any:
        try:
            return dict(values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"AsDict side input {self.pvalue.label!r} needs (key, value) "
                             f"pairs: {exc}") from None


class AsMultiMap(AsSideInput):
    """A PCollection of ``(key, value)`` pairs, as a dict of lists (missing keys: ``[]``)."""

    def view(self, values: List[Any]) -> Any:
        result: Dict[Any, List[Any]] = collections.defaultdict(list)
        for key, value in values:
            result[key].append(value)
        return result
