"""Converting runtime values between headrace and Apache Beam (headrace -> Beam direction).

User code translated to Beam must keep seeing headrace objects (``Timestamp``,
windows, ``PaneInfo``), and what it emits (``TaggedOutput``,
``TimestampedValue``, ``WindowedValue``) must become Beam's. The two SDKs
disagree on the ends of time (headrace: the int64 range in micros; Beam: that
range truncated to whole milliseconds), so the ends are mapped onto each other.

>>> from headrace.sdk.timestamp import MIN_MICROS
>>> to_headrace_micros(to_beam_timestamp(MIN_MICROS).micros) == MIN_MICROS
True
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
from apache_beam.transforms import window as beam_window
from apache_beam.utils import windowed_value as beam_wv
from apache_beam.utils.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP
from apache_beam.utils.timestamp import Duration as BeamDuration
from apache_beam.utils.timestamp import Timestamp as BeamTimestamp

from headrace.sdk.metrics.cells import MetricName, _current
from headrace.sdk.pvalue import TaggedOutput
from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS, Timestamp
from headrace.sdk.window import GLOBAL_WINDOW, GlobalWindow, IntervalWindow, TimestampedValue
from headrace.sdk.windowed_value import PaneInfo, WindowedValue

_BEAM_MIN = MIN_TIMESTAMP.micros
_BEAM_MAX = MAX_TIMESTAMP.micros


# -- time ---------------------------------------------------------------------------------------

def to_beam_timestamp(micros: int) -> BeamTimestamp:
    """A headrace timestamp (int micros) as Beam's ``Timestamp``, clamping the ends of time."""
    if micros <= _BEAM_MIN:
        return MIN_TIMESTAMP
    if micros >= _BEAM_MAX:
        return MAX_TIMESTAMP
    return BeamTimestamp(micros=micros)


def to_headrace_micros(beam_micros: int) -> int:
    """Beam's micros as headrace's, mapping Beam's ends of time onto headrace's."""
    if beam_micros <= _BEAM_MIN:
        return MIN_MICROS
    if beam_micros >= _BEAM_MAX:
        return MAX_MICROS
    return beam_micros


def to_headrace_timestamp(value: Any) -> Timestamp:
    return Timestamp(micros=to_headrace_micros(value.micros))


def to_beam_duration(micros: int) -> BeamDuration:
    return BeamDuration(micros=micros)


def user_time_to_beam(value: Any) -> BeamTimestamp:
    """A timestamp given by user code (seconds, headrace or Beam Timestamp) as Beam's."""
    if isinstance(value, BeamTimestamp):
        return value
    return to_beam_timestamp(Timestamp.of(value).micros)


# -- windows and panes ----------------------------------------------------------------------------

def to_headrace_window(window: Any) -> Any:
    if isinstance(window, beam_window.GlobalWindow):
        return GLOBAL_WINDOW
    if isinstance(window, beam_window.IntervalWindow):
        return IntervalWindow.from_micros(to_headrace_micros(window.start.micros),
                                          to_headrace_micros(window.end.micros))
    raise TypeError(f"Beam window {window!r} of type {type(window).__name__} has no headrace "
                    "counterpart")


def to_beam_window(window: Any) -> Any:
    if isinstance(window, GlobalWindow):
        return beam_window.GlobalWindow()
    if isinstance(window, IntervalWindow):
        return beam_window.IntervalWindow(to_beam_timestamp(window.start_micros),
                                          to_beam_timestamp(window.end_micros))
    raise TypeError(f"headrace window {window!r} of type {type(window).__name__} cannot be "
                    "translated to Beam: only IntervalWindow and GlobalWindow can")


def to_headrace_pane(pane: Any) -> PaneInfo:
    # Both SDKs number the timings alike (EARLY=0, ON_TIME=1, LATE=2, UNKNOWN=3).
    return PaneInfo(pane.is_first, pane.is_last, pane.timing, pane.index,
                    pane.nonspeculative_index)


def to_beam_pane(pane: Optional[PaneInfo]) -> Any:
    if pane is None:
        return beam_wv.PANE_INFO_UNKNOWN
    return beam_wv.PaneInfo(pane.is_first, pane.is_last, pane.timing, pane.index,
                            pane.nonspeculative_index)


# -- outputs -----------------------------------------------------------------------------------

def to_beam_output(output: Any) -> Any:
    """One output of a headrace DoFn as Beam expects it."""
    kind = type(output)
    if kind is TaggedOutput:
        return beam.pvalue.TaggedOutput(output.tag, to_beam_output(output.value))
    if kind is TimestampedValue:
        return beam_window.TimestampedValue(output.value,
                                            to_beam_timestamp(output.timestamp_micros))
    if kind is WindowedValue:
        return beam_wv.WindowedValue(output.value, to_beam_timestamp(output.timestamp_micros),
                                     tuple(to_beam_window(w) for w in output.windows),
                                     to_beam_pane(output.pane_info))
    return output


def to_beam_outputs(results: Optional[Iterable[Any]]) -> List[Any]:
    if results is None:
        return []
    return [to_beam_output(r) for r in results]


# -- metrics: headrace's metric objects record into Beam's -----------------------------------------

class _BeamCounterCell:
    __slots__ = ("_metric",)

    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def inc(self, n: int = 1) -> None:
        self._metric.inc(n)


class _BeamDistributionCell:
    __slots__ = ("_metric",)

    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def update(self, value: int) -> None:
        self._metric.update(value)


class _BeamGaugeCell:
    __slots__ = ("_metric",)

    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def set(self, value: int, timestamp: Optional[float] = None) -> None:
        self._metric.set(value)


class BeamMetricsBridge:
    """Stands in for headrace's ``MetricsContainer`` inside Beam: each headrace metric
    update becomes an update of the Beam metric of the same namespace and name, which
    Beam attributes to the step that is running (the translated transform).

    >>> from headrace.sdk.metrics import Metrics
    >>> with BeamMetricsBridge().scope():
    ...     Metrics.counter("app", "n").inc()  # outside a Beam step: Beam ignores it
    """

    def __init__(self) -> None:
        self._cells: Dict[Tuple[str, MetricName], Any] = {}

    def _cell(self, kind: str, name: MetricName) -> Any:
        key = (kind, name)
        cell = self._cells.get(key)
        if cell is None:
            metrics = beam.metrics.Metrics
            if kind == "counter":
                cell = _BeamCounterCell(metrics.counter(name.namespace, name.name))
            elif kind == "distribution":
                cell = _BeamDistributionCell(metrics.distribution(name.namespace, name.name))
            else:
                cell = _BeamGaugeCell(metrics.gauge(name.namespace, name.name))
            self._cells[key] = cell
        return cell

    def counter(self, name: MetricName) -> Any:
        return self._cell("counter", name)

    def distribution(self, name: MetricName) -> Any:
        return self._cell("distribution", name)

    def gauge(self, name: MetricName) -> Any:
        return self._cell("gauge", name)

    def scope(self) -> "_Scope":
        return _Scope(self)


class _Scope:
    """Makes the bridge the current headrace metrics container for a block of user code."""

    __slots__ = ("_bridge", "_previous")

    def __init__(self, bridge: BeamMetricsBridge) -> None:
        self._bridge = bridge
        self._previous = None

    def __enter__(self) -> BeamMetricsBridge:
        self._previous = _current.container
        _current.container = self._bridge
        return self._bridge

    def __exit__(self, *exc: Any) -> None:
        _current.container = self._previous
