"""``DoFn``: user code run on each element, with Beam's lifecycle and parameters."""
from __future__ import annotations

from typing import Any, Iterable, Optional


class _DoFnParam:
    """A marker used as a default value in ``process`` to ask for runtime context."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self):
        return (_param_by_name, (self.name,))


def _param_by_name(name: str) -> "_DoFnParam":
    return getattr(DoFn, name)


class _SpecParam(_DoFnParam):
    """``DoFn.StateParam(spec)`` / ``DoFn.TimerParam(spec)``: a parameter bound to a spec."""

    __slots__ = ("spec",)

    def __init__(self, name: str, spec: Any) -> None:
        super().__init__(name)
        self.spec = spec

    def __repr__(self) -> str:
        return f"{self.name}({self.spec!r})"

    def __reduce__(self):
        return (_SpecParam, (self.name, self.spec))


class DoFn:
    """Per-element processing logic for ``ParDo``.

    Lifecycle: ``setup`` once per instance, ``start_bundle``, ``process`` per
    element, ``finish_bundle``, then ``teardown``. ``process`` may ask for
    context with parameter defaults such as ``DoFn.TimestampParam``.

    >>> import headrace as beam
    >>> class SplitWords(beam.DoFn):
    ...     def process(self, line, ts=beam.DoFn.TimestampParam):
    ...         for word in line.split():
    ...             yield word
    >>> with beam.Pipeline() as p:
    ...     words = p | beam.Create(["to be or"]) | beam.ParDo(SplitWords())
    """

    ElementParam = _DoFnParam("ElementParam")
    TimestampParam = _DoFnParam("TimestampParam")
    WindowParam = _DoFnParam("WindowParam")
    SideInputParam = _DoFnParam("SideInputParam")
    PaneInfoParam = _DoFnParam("PaneInfoParam")
    KeyParam = _DoFnParam("KeyParam")
    DynamicTimerTagParam = _DoFnParam("DynamicTimerTagParam")

    @staticmethod
    def StateParam(spec: Any) -> _SpecParam:  # noqa: N802 (Beam's name)
        """Ask ``process``/``on_timer`` for the state declared by ``spec``."""
        return _SpecParam("StateParam", spec)

    @staticmethod
    def TimerParam(spec: Any) -> _SpecParam:  # noqa: N802 (Beam's name)
        """Ask ``process``/``on_timer`` for the timer declared by ``spec``."""
        return _SpecParam("TimerParam", spec)

    def setup(self) -> None:
        """Called once per DoFn instance before any bundle."""

    def start_bundle(self) -> None:
        """Called before each bundle of elements."""

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Optional[Iterable[Any]]:
        """Return or yield the outputs for one element."""
        raise NotImplementedError(f"{type(self).__name__} must implement process()")

    def finish_bundle(self) -> Optional[Iterable[Any]]:
        """Called after each bundle; may yield ``WindowedValue`` outputs."""

    def teardown(self) -> None:
        """Called once per instance when it is discarded (best effort, as in Beam)."""

    def default_label(self) -> str:
        return type(self).__name__

    def infer_output_type(self, input_type: Any) -> Any:
        return Any
