"""Beam user metrics recorded into headrace's metric containers, and read back as Beam results.

Beam's ``Metrics.counter(...).inc()`` hands its update to the thread's current
Beam "state sampler" (``statesampler.get_current_tracker()``). On headrace, a
:class:`BeamMetricsBridge` stands in for it: it records counters,
distributions and gauges into the headrace ``MetricsContainer`` current in the
thread (the one of the operator running the Beam code), so Beam metrics travel
from the workers to the driver with headrace's own metrics on every runner.
The adapters that run Beam code install the bridge in the thread they run in
(:func:`install_bridge`). :func:`beam_metric_results` turns headrace's merged
metrics back into Beam's ``MetricResults``.

Beam's other metric kinds (string sets, bounded tries, histograms) have no
headrace cell: they are kept per step in the process that records them, so
they reach the result only when that is the driver (the ``direct`` runner).

>>> from apache_beam.metrics.metric import Metrics as BeamMetrics
>>> from headrace.sdk.metrics import MetricsContainer, merge_snapshots, metrics_scope
>>> container = MetricsContainer("Count/ParDo")
>>> with metrics_scope(container):
...     install_bridge()
...     BeamMetrics.counter("app", "rows").inc(3)
>>> results = beam_metric_results(merge_snapshots([container.snapshot()]))
>>> [(r.key.step, r.key.metric.name, r.committed) for r in results.query()["counters"]]
[('Count/ParDo', 'rows', 3)]
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Optional

from apache_beam.metrics import cells as beam_cells
from apache_beam.metrics.execution import MetricKey as BeamMetricKey
from apache_beam.metrics.execution import MetricsContainer as BeamMetricsContainer
from apache_beam.metrics.execution import MetricUpdates
from apache_beam.metrics.metricbase import MetricName as BeamMetricName
from apache_beam.runners.direct.direct_metrics import DirectMetrics
from apache_beam.runners.worker import statesampler

from headrace.sdk.metrics import MetricName, MetricResults, MetricsContainer, MetricsEnvironment


class _BridgeCell:
    """A Beam metric cell writing into one headrace cell (what ``get_metric_cell`` returns)."""

    __slots__ = ("_record",)

    def __init__(self, record: Any) -> None:
        self._record = record

    def update(self, value: Any) -> None:
        self._record(value)


class _BridgeContainer:
    """The Beam ``MetricsContainer`` view of the current headrace container."""

    __slots__ = ("bridge",)

    def __init__(self, bridge: "BeamMetricsBridge") -> None:
        self.bridge = bridge

    def get_metric_cell(self, typed_metric_name: Any) -> Any:
        return _BridgeCell(lambda value: self.bridge.update_metric(typed_metric_name, value))


class _State:
    """What Beam's metric code reads from the sampler's current state."""

    __slots__ = ("metrics_container",)

    def __init__(self, container: Any) -> None:
        self.metrics_container = container


#: Beam containers, per step, for the metric kinds headrace has no cell for (this process).
_OTHER: Dict[str, BeamMetricsContainer] = {}
_OTHER_LOCK = threading.Lock()


class BeamMetricsBridge:
    """Beam's state-sampler interface over headrace's current ``MetricsContainer``.

    One per thread that runs Beam code. Beam hands its tracker to the threads it starts
    itself (``with_exception_handling(timeout=...)`` runs ``process`` in a pool); there
    no headrace container is current, so updates go to ``container``, the one current
    when the owning thread last installed the bridge (just before calling Beam code).
    """

    def __init__(self) -> None:
        self.container: Optional[MetricsContainer] = None
        self._state = _State(_BridgeContainer(self))

    def current_state(self) -> _State:
        return self._state

    def update_metric(self, typed_metric_name: Any, value: Any) -> None:
        container = MetricsEnvironment.current() or self.container
        if container is None:
            return  # outside any step, as in Beam
        beam_name = typed_metric_name.metric_name
        cell_type = typed_metric_name.cell_type
        if getattr(beam_name, "urn", None) is None:
            name = MetricName(beam_name.namespace, beam_name.name)
            if cell_type is beam_cells.CounterCell:
                container.counter(name).inc(value)
                return
            if cell_type is beam_cells.DistributionCell:
                container.distribution(name).update(int(value))
                return
            if cell_type is beam_cells.GaugeCell:
                container.gauge(name).set(int(value))
                return
        _other(container.step).get_metric_cell(typed_metric_name).update(value)


def _other(step: str) -> BeamMetricsContainer:
    container = _OTHER.get(step)
    if container is None:
        with _OTHER_LOCK:
            container = _OTHER.setdefault(step, BeamMetricsContainer(step))
    return container


def reset_other_metrics() -> None:
    """Forget the metrics of other kinds kept in this process (a new run starts)."""
    with _OTHER_LOCK:
        _OTHER.clear()


class _Bridges(threading.local):
    bridge: Optional[BeamMetricsBridge] = None


_bridges = _Bridges()


def install_bridge() -> None:
    """Make this thread's bridge its Beam tracker, bound to the current headrace container
    (call it just before calling Beam code; cheap)."""
    bridge = _bridges.bridge
    if bridge is None:
        bridge = _bridges.bridge = BeamMetricsBridge()
    bridge.container = MetricsEnvironment.current()
    if statesampler.get_current_tracker() is not bridge:
        statesampler.set_current_tracker(bridge)


def beam_metric_results(collected: Optional[MetricResults]) -> DirectMetrics:
    """Beam's ``MetricResults`` for headrace's merged user metrics (and the metrics of
    other kinds this process kept), with committed equal to attempted."""
    counters, distributions, gauges = {}, {}, {}
    queried = collected.query() if collected is not None else {}
    for result in queried.get(MetricResults.COUNTERS, ()):
        counters[_beam_key(result.key)] = result.committed
    for result in queried.get(MetricResults.DISTRIBUTIONS, ()):
        d = result.committed
        distributions[_beam_key(result.key)] = beam_cells.DistributionData(
            d.sum, d.count, d.min, d.max)
    for result in queried.get(MetricResults.GAUGES, ()):
        g = result.committed
        gauges[_beam_key(result.key)] = beam_cells.GaugeData(g.value, g.timestamp)
    metrics = DirectMetrics()
    updates = [MetricUpdates(counters, distributions, gauges)]
    with _OTHER_LOCK:
        updates += [container.get_cumulative() for container in _OTHER.values()]
    for update in updates:
        metrics.commit_physical(None, update)
        metrics.commit_logical(None, update)
    return metrics


def _beam_key(key: Any) -> BeamMetricKey:
    return BeamMetricKey(key.step, BeamMetricName(key.metric.namespace, key.metric.name))
