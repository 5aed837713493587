"""The primitives every runner executes; all other transforms expand to these and ``ParDo``."""
from __future__ import annotations

import logging
from typing import Any, Optional

from headrace.sdk.combinefn import CombineFn
from headrace.sdk.io_base import Sink, Source
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import AsSideInput, DoOutputsTuple, PBegin, PCollection
from headrace.sdk.serialization import dumps_user_code
from headrace.sdk.timestamp import Duration
from headrace.sdk.trigger import AccumulationMode, DataLossReason, check_trigger
from headrace.sdk.watermarks import WatermarkStrategy
from headrace.sdk.window import TimestampCombiner, WindowFn
from headrace.sdk.windowing import DEFAULT_WINDOWING, Windowing

_LOGGER = logging.getLogger(__name__)


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
        node = pcoll.pipeline.current_node()
        _check_safe_trigger(node.full_label, pcoll)
        return node.new_output(None, pcoll.windowing.with_continuation())


def _check_safe_trigger(label: str, pcoll: PCollection) -> None:
    """Refuse a trigger that may finish and drop data, unless ``--allow_unsafe_triggers``.

    Beam's GroupByKey makes the same check (``TriggerFn.may_lose_data``).
    """
    windowing = pcoll.windowing
    if windowing is None:
        return
    reason = windowing.trigger.may_lose_data(windowing)
    if reason == DataLossReason.NO_POTENTIAL_LOSS:
        return
    options = getattr(pcoll.pipeline, "options", None)
    allowed = False
    if options is not None:
        flags = options.get_all_options(retain_unknown_options=True)
        allowed = flags.get("allow_unsafe_triggers") not in (None, False, "false", "False")
    if not allowed:
        raise ValueError(f"{label}: Unsafe trigger: `{windowing.trigger!r}` may lose data. "
                         f"Reason: {reason.name}. This can be overriden with the "
                         "--allow_unsafe_triggers flag.")


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
        _check_safe_trigger(node.full_label, pcoll)
        # Beam's CombinePerKey is a GroupByKey underneath: its output gets the continuation.
        return node.new_output(None, pcoll.windowing.with_continuation())


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
        windowing = pcolls[0].windowing if pcolls else DEFAULT_WINDOWING
        for pcoll in pcolls[1:]:
            if pcoll.windowing.window_fn != windowing.window_fn:
                # As Beam: elements keep the windows they have; the output takes the first
                # input's windowing.
                _LOGGER.warning("%r: Flatten inputs have different window functions (%r, %r); "
                                "the output takes the first input's", node.full_label,
                                windowing.window_fn, pcoll.windowing.window_fn)
        return node.new_output(None, windowing)


class WindowInto(PTransform):
    """Assign elements to windows and set how grouped windows fire (Beam's ``WindowInto``).

    ``trigger`` (default ``DefaultTrigger()``) decides when a GroupByKey emits
    a window's panes, ``accumulation_mode`` (required with any other trigger)
    whether panes repeat earlier elements, ``allowed_lateness`` (seconds or a
    ``Duration``) how long after the watermark passes a window's end its late
    elements are still grouped rather than dropped.

    >>> import headrace as beam
    >>> from headrace.sdk.trigger import AfterWatermark, AfterCount, AccumulationMode
    >>> with beam.Pipeline() as p:
    ...     windowed = (p | beam.Create([beam.window.TimestampedValue("a", 12)])
    ...                   | beam.WindowInto(beam.window.FixedWindows(10),
    ...                                     trigger=AfterWatermark(late=AfterCount(1)),
    ...                                     accumulation_mode=AccumulationMode.DISCARDING,
    ...                                     allowed_lateness=60))

    ``with_late_data_output(tag)`` (Flink's ``sideOutputLateData``) also
    outputs, under ``tag``, the elements that are already too late for every
    one of their windows when they arrive, instead of letting the grouping
    drop them; see :meth:`with_late_data_output`.
    """

    is_primitive = True
    #: The name of the windowed output in the result of ``with_late_data_output``.
    MAIN_TAG = "main"

    def __init__(self, windowfn: Any, trigger: Any = None, accumulation_mode: Any = None,
                 timestamp_combiner: Optional[str] = None, allowed_lateness: Any = 0) -> None:
        super().__init__()
        if isinstance(windowfn, Windowing):
            # Beam accepts a whole strategy, with the other arguments overriding it.
            base = windowfn
            windowfn = base.window_fn
            if trigger is None and base.trigger != DEFAULT_WINDOWING.trigger:
                trigger = base.trigger
            if accumulation_mode is None:
                accumulation_mode = base.accumulation_mode
            timestamp_combiner = timestamp_combiner or base.timestamp_combiner
            if not allowed_lateness:
                allowed_lateness = Duration(micros=base.allowed_lateness_micros)
        if isinstance(windowfn, type) and issubclass(windowfn, WindowFn):
            raise TypeError(f"WindowInto needs a WindowFn instance, got the class "
                            f"{windowfn.__name__}")
        if not isinstance(windowfn, WindowFn):
            raise TypeError(f"WindowInto needs a WindowFn such as FixedWindows(60), "
                            f"got {windowfn!r:.100}")
        if trigger is not None:
            check_trigger("WindowInto(trigger=...)", trigger)
        if accumulation_mode is not None:
            try:
                accumulation_mode = AccumulationMode(accumulation_mode)
            except ValueError:
                raise ValueError(f"WindowInto: unknown accumulation_mode {accumulation_mode!r}; "
                                 "expected AccumulationMode.DISCARDING or "
                                 "AccumulationMode.ACCUMULATING") from None
        valid = {v for k, v in vars(TimestampCombiner).items() if k.startswith("OUTPUT")}
        if timestamp_combiner is not None and timestamp_combiner not in valid:
            raise ValueError(f"WindowInto: unknown timestamp_combiner {timestamp_combiner!r}; "
                             f"expected one of {sorted(valid)}")
        try:
            lateness = Duration.of(allowed_lateness).micros
        except TypeError:
            raise TypeError(f"WindowInto: allowed_lateness must be a number of seconds or a "
                            f"Duration, got {allowed_lateness!r:.100}") from None
        if lateness < 0:
            raise ValueError(f"WindowInto: allowed_lateness must not be negative, "
                             f"got {allowed_lateness!r}")
        try:
            self.windowing = Windowing(windowfn,
                                       timestamp_combiner or TimestampCombiner.OUTPUT_AT_EOW,
                                       lateness, trigger, accumulation_mode)
        except ValueError as exc:
            raise ValueError(f"WindowInto: {exc}") from None

    def with_late_data_output(self, tag: str = "late") -> "WindowInto":
        """Also output, under ``tag``, elements already beyond allowed lateness.

        An element goes to ``tag`` (unchanged: its value, its original
        timestamp and windows) instead of the main output when, as it reaches
        this transform, the input watermark is past ``end + allowed_lateness``
        of every window the element is assigned to, i.e. when every grouping
        downstream would drop it. Applying the result gives a
        ``DoOutputsTuple``: the windowed PCollection (also ``result.main``) first, then
        the late one (``result[tag]``).

        >>> import headrace as beam
        >>> with beam.Pipeline() as p:
        ...     windowed, late = (p | beam.Create([1])
        ...                         | beam.WindowInto(beam.window.FixedWindows(10))
        ...                               .with_late_data_output("late"))
        """
        if not isinstance(tag, str) or not tag:
            raise TypeError(f"WindowInto.with_late_data_output: tag must be a non-empty str, "
                            f"got {tag!r:.100}")
        if tag == self.MAIN_TAG:
            raise ValueError(f"WindowInto.with_late_data_output: {tag!r} names the main "
                             "(windowed) output; choose another tag")
        copy = self.__class__.__new__(self.__class__)
        copy.__dict__.update(self.__dict__)
        w = self.windowing
        copy.windowing = Windowing(w.window_fn, w.timestamp_combiner, w.allowed_lateness_micros,
                                   w.trigger, w.accumulation_mode, late_data_tag=tag)
        return copy

    def default_label(self) -> str:
        return f"WindowInto({self.windowing.window_fn!r})"

    def expand(self, pcoll: PCollection) -> Any:
        _require_pcollection(self, pcoll)
        node = pcoll.pipeline.current_node()
        dumps_user_code(self.windowing.window_fn, node.full_label, "WindowFn")
        tag = self.windowing.late_data_tag
        if tag is None:
            return node.new_output(None, self.windowing)
        node.new_output(None, self.windowing)
        # Late elements keep their original windows, so their PCollection keeps the input's.
        node.new_output(tag, pcoll.windowing)
        return DoOutputsTuple(pcoll.pipeline, node, [tag], self.MAIN_TAG, allow_unknown=False)
