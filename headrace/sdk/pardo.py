"""``ParDo``: the primitive that runs a ``DoFn``, with side inputs and tagged outputs."""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

from headrace.sdk.callable_dofn import CallableWrapperDoFn
from headrace.sdk.dofn import DoFn
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import AsSideInput, DoOutputsTuple, PCollection
from headrace.sdk.serialization import dumps_user_code


class SideInputSlot:
    """Stands in for a side-input view in a ParDo's pickled arguments."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self):
        return (SideInputSlot, (self.index,))


def _extract_side_inputs(args: tuple, kwargs: dict) -> Tuple[tuple, dict, List[AsSideInput]]:
    side_inputs: List[AsSideInput] = []

    def slot(value: Any) -> Any:
        if isinstance(value, AsSideInput):
            side_inputs.append(value)
            return SideInputSlot(len(side_inputs) - 1)
        if isinstance(value, PCollection):
            raise TypeError(
                f"A PCollection ({value.label!r}) was passed as an argument; wrap it in a side "
                "input view such as beam.pvalue.AsList(pcoll) or AsSingleton(pcoll)")
        return value

    return (tuple(slot(a) for a in args), {k: slot(v) for k, v in kwargs.items()}, side_inputs)


class ParDo(PTransform):
    """Apply a ``DoFn`` to every element; extra arguments are passed to ``process``.

    >>> import headrace as beam
    >>> class Parse(beam.DoFn):
    ...     def process(self, line):
    ...         if line.isdigit():
    ...             yield int(line)
    ...         else:
    ...             yield beam.pvalue.TaggedOutput("bad", line)
    >>> with beam.Pipeline() as p:
    ...     out = p | beam.Create(["1", "x"]) | beam.ParDo(Parse()).with_outputs("bad", main="ok")
    ...     ok, bad = out.ok, out.bad
    """

    is_primitive = True

    def __init__(self, fn: DoFn, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if isinstance(fn, type) and issubclass(fn, DoFn):
            raise ValueError(f"ParDo must be called with a DoFn instance, got the class "
                             f"{fn.__name__}: use {fn.__name__}() not {fn.__name__}")
        if not isinstance(fn, DoFn):
            if not callable(fn):
                raise TypeError(f"ParDo must be called with a DoFn instance, got {fn!r:.100}")
            fn = CallableWrapperDoFn(fn, "flatmap")
        self.fn = fn
        self.args, self.kwargs = args, kwargs
        self.output_tags: Optional[List[str]] = None
        self.main_tag: Optional[str] = None
        self.allow_unknown_tags = True
        #: Filled in at application: pickled (fn, args, kwargs) and the side-input views.
        self.serialized_fn: bytes = b""
        self.side_inputs: List[AsSideInput] = []

    def default_label(self) -> str:
        return f"ParDo({self.fn.default_label()})"

    def with_outputs(self, *tags: str, main: Optional[str] = None,
                     allow_unknown_tags: Optional[bool] = None) -> "ParDo":
        """Declare tagged outputs; the result of applying becomes a ``DoOutputsTuple``."""
        for tag in tags:
            if not isinstance(tag, str):
                raise TypeError(f"Output tags must be strings, got {tag!r}")
        if main in tags:
            raise ValueError(f"Main output tag {main!r} must differ from the additional tags")
        multi = self.__class__.__new__(self.__class__)
        multi.__dict__.update(self.__dict__)
        multi.output_tags = list(tags)
        multi.main_tag = main
        # As in Beam: undeclared tags may be read lazily only when no tags were declared.
        multi.allow_unknown_tags = (not tags) if allow_unknown_tags is None else allow_unknown_tags
        return multi

    def expand(self, pcoll: PCollection) -> Any:
        if not isinstance(pcoll, PCollection):
            raise TypeError(f"{self.label!r} must be applied to a PCollection, "
                            f"got {type(pcoll).__name__}")
        node = pcoll.pipeline.current_node()
        args, kwargs, self.side_inputs = _extract_side_inputs(self.args, self.kwargs)
        node.side_inputs = tuple(self.side_inputs)
        self.serialized_fn = dumps_user_code((self.fn, args, kwargs), node.full_label,
                                             "DoFn and arguments")
        main = node.new_output(None)
        if self.output_tags is None:
            return main
        for tag in self.output_tags:
            node.new_output(tag)
        return DoOutputsTuple(pcoll.pipeline, node, self.output_tags, self.main_tag,
                              self.allow_unknown_tags)
