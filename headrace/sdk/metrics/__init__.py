"""Metrics: the user API, the containers runners record into, and merged results.

>>> hits = Metrics.counter("app", "hits")
>>> container = MetricsContainer("Count/ParDo")
>>> with metrics_scope(container):
...     hits.inc(2)
>>> merge_snapshots([container.snapshot()]).query()["counters"][0].committed
2
"""
from .cells import (
                    SYSTEM_NAMESPACE,
                    CounterCell,
                    DistributionCell,
                    GaugeCell,
                    MetricKey,
                    MetricName,
                    MetricsContainer,
                    MetricsEnvironment,
                    MetricsSnapshot,
                    metrics_scope,
)
from .metric import Counter, Distribution, Gauge, Metric, Metrics
from .results import (
                    CollectedMetrics,
                    DistributionResult,
                    GaugeResult,
                    MetricResult,
                    MetricResults,
                    MetricsFilter,
                    merge_snapshots,
)

__all__ = [
    "SYSTEM_NAMESPACE",
    "CollectedMetrics",
    "Counter",
    "CounterCell",
    "Distribution",
    "DistributionCell",
    "DistributionResult",
    "Gauge",
    "GaugeCell",
    "GaugeResult",
    "Metric",
    "MetricKey",
    "MetricName",
    "MetricResult",
    "MetricResults",
    "Metrics",
    "MetricsContainer",
    "MetricsEnvironment",
    "MetricsFilter",
    "MetricsSnapshot",
    "merge_snapshots",
    "metrics_scope",
]
