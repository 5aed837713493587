"""The primitives every runner executes; all other transforms expand to these and ``ParDo``."""
from __future__ import annotations

from typing import Any, Optional

from headrace.sdk.combinefn import CombineFn
from headrace.sdk.io_base import Sink, Source
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import AsSideInput, PBegin, PCollection
from headrace.sdk.serialization import dumps_user_code
from headrace.sdk.timestamp import Duration
from headrace.sdk.watermarks import WatermarkStrategy
from headrace.sdk.window import TimestampCombiner, WindowFn
from headrace.sdk.windowing import DEFAULT_WINDOWING, Windowing


def _require_pcollection(transform: PTransform, pvalue: Any) -> PCollection:
    if not isinstance(pvalue, PCollection):
        raise TypeError(f"{transform.label!r} must be applied to a PCollection, "
                        f"got {type(pvalue).__name__}")
    return pvalue


class Read(PTransform):
    """Read a :class:`~headrace.sdk.io_base.Source`; the root of a pipeline branch.

    >>> import headrace as beam
    >>> from headrace.io.textio import ReadFromText  # composes Read(TextSource(...))
    """

    is_primitive = True

    def __init__(self, source: Source, watermark_strategy: Any = None) -> None:
        super().__init__()
        if not isinstance(source, Source):
            raise TypeError(f"Read expects a Source, got {source!r:.100}")
        if watermark_strategy is not None and not isinstance(watermark_strategy,
                                                             WatermarkStrategy):
            raise TypeError(f"Read: watermark_strategy must be a WatermarkStrategy, got "
                            f"{watermark_strategy!r:.100}")
        self.source = source
        #: Applied to every split; None means the source's own default.
        self.watermark_strategy = watermark_strategy

    def with_watermark_strategy(self, strategy: WatermarkStrategy) -> "Read":
        """Read with ``strategy`` applied per split (timestamps, out-of-orderness, idleness)."""
        return Read(self.source, strategy)

    def default_label(self) -> str:
        return f"Read({self.source.display_name()})"

    def expand(self, pbegin: PBegin) -> PCollection:
        if not isinstance(pbegin, PBegin):
            raise TypeError(f"{self.label!r} is a root transform: apply it to a Pipeline")
        node = pbegin.pipeline.current_node()
        self.source.validate()
        dumps_user_code(self.source, node.full_label, "source")
        return node.new_output(None, DEFAULT_WINDOWING, self.source.is_bounded)


class Write(PTransform):
    """Write to a :class:`~headrace.sdk.io_base.Sink`; outputs what ``finalize`` returns."""

    is_primitive = True

    def __init__(self, sink: Sink) -> None:
        super().__init__()
        if not isinstance(sink, Sink):
            raise TypeError(f"Write expects a Sink, got {sink!r:.100}")
        self.sink = sink

    def default_label(self) -> str:
        return f"Write({self.sink.display_name()})"

    def expand(self, pcoll: PCollection) -> PCollection:
        _require_pcollection(self, pcoll)
        node = pcoll.pipeline.current_node()
        dumps_user_code(self.sink, node.full_label, "sink")
        return node.new_output(None, DEFAULT_WINDOWING)


class GroupByKey(PTransform):
    """Group ``(key, value)`` pairs into ``(key, [values])`` per key and window.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     grouped = p | beam.Create([("a", 1), ("a", 2)]) | beam.GroupByKey()
    """

    is_primitive = True

    def expand(self, pcoll: PCollection) -> PCollection:
        _require_pcollection(self, pcoll)
        return pcoll.pipeline.current_node().new_output(None)


class CombinePerKey(PTransform):
    """Combine the values of each key (and window) with a ``CombineFn`` or a callable.

    Kept as its own primitive so that runners can combine before shuffling.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     totals = p | beam.Create([("a", 1), ("a", 2)]) | beam.CombinePerKey(sum)
    """

    is_primitive = True

    def __init__(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.combine_fn = CombineFn.maybe_from_callable(fn)
        if any(isinstance(a, AsSideInput) for a in (*args, *kwargs.values())):
            raise NotImplementedError(f"{self.label}: side inputs to a CombineFn are not "
                                      "supported; use a ParDo with side inputs instead")
        self.args, self.kwargs = args, kwargs
        self.serialized_fn = b""

    def default_label(self) -> str:
        return f"CombinePerKey({self.combine_fn.default_label()})"

    def expand(self, pcoll: PCollection) -> PCollection:
        _require_pcollection(self, pcoll)
        node = pcoll.pipeline.current_node()
        self.serialized_fn = dumps_user_code((self.combine_fn, self.args, self.kwargs),
                                             node.full_label, "CombineFn")
        return node.new_output(None)


class Flatten(PTransform):
    """Merge several PCollections into one.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     both = (p | "A" >> beam.Create([1]), p | "B" >> beam.Create([2])) | beam.Flatten()
    """

    is_primitive = True

    def __init__(self, pipeline: Any = None, label: Optional[str] = None) -> None:
        super().__init__(label)
        self.pipeline = pipeline

    def __ror__(self, left: Any) -> Any:
        if isinstance(left, (tuple, list)) and not left:
            if self.pipeline is None:
                raise ValueError("Flatten of no PCollections needs the pipeline: "
                                 "() | beam.Flatten(pipeline=p)")
            return self.pipeline.apply(self, ())
        return super().__ror__(left)

    def expand(self, pcolls: Any) -> PCollection:
        if isinstance(pcolls, PCollection):
            pcolls = (pcolls,)
        if isinstance(pcolls, dict):
            pcolls = tuple(pcolls.values())
        for pcoll in pcolls:
            _require_pcollection(self, pcoll)
        pipeline = pcolls[0].pipeline if pcolls else self.pipeline
        node = pipeline.current_node()
        windowings = {p.windowing.window_fn for p in pcolls}
        if len(windowings) > 1:
            raise ValueError(f"{node.full_label!r}: Flatten inputs have different window "
                             f"functions {sorted(map(repr, windowings))}; apply the same "
                             "WindowInto to each input first")
        return node.new_output(None, pcolls[0].windowing if pcolls else DEFAULT_WINDOWING)


class WindowInto(PTransform):
    """Assign elements to windows, setting the PCollection's windowing strategy.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     windowed = (p | beam.Create([beam.window.TimestampedValue("a", 12)])
    ...                   | beam.WindowInto(beam.window.FixedWindows(10)))
    """

    is_primitive = True

    def __init__(self, windowfn: WindowFn, trigger: Any = None, accumulation_mode: Any = None,
                 timestamp_combiner: Optional[str] = None, allowed_lateness: Any = 0) -> None:
        super().__init__()
        if isinstance(windowfn, type) and issubclass(windowfn, WindowFn):
            raise TypeError(f"WindowInto needs a WindowFn instance, got the class "
                            f"{windowfn.__name__}")
        if not isinstance(windowfn, WindowFn):
            raise TypeError(f"WindowInto needs a WindowFn such as FixedWindows(60), "
                            f"got {windowfn!r:.100}")
        if trigger is not None or accumulation_mode is not None:
            raise NotImplementedError(
                "WindowInto: triggers and accumulation modes are not implemented yet "
                "(event-time streaming support is in progress)")
        valid = {v for k, v in vars(TimestampCombiner).items() if k.startswith("OUTPUT")}
        if timestamp_combiner is not None and timestamp_combiner not in valid:
            raise ValueError(f"WindowInto: unknown timestamp_combiner {timestamp_combiner!r}; "
                             f"expected one of {sorted(valid)}")
        self.windowing = Windowing(windowfn, timestamp_combiner or TimestampCombiner.OUTPUT_AT_EOW,
                                   Duration.of(allowed_lateness).micros)

    def default_label(self) -> str:
        return f"WindowInto({self.windowing.window_fn!r})"

    def expand(self, pcoll: PCollection) -> PCollection:
        _require_pcollection(self, pcoll)
        node = pcoll.pipeline.current_node()
        dumps_user_code(self.windowing.window_fn, node.full_label, "WindowFn")
        return node.new_output(None, self.windowing)
