"""Mirror of ``apache_beam.metrics.metric``.

>>> from headrace.metrics.metric import MetricsFilter
>>> sorted(MetricsFilter().with_steps(["A", "B"]).steps)
['A', 'B']
"""
from headrace.sdk.metrics import (
                                  DistributionResult,
                                  GaugeResult,
                                  MetricResult,
                                  MetricResults,
                                  Metrics,
                                  MetricsFilter,
)

__all__ = [
    "DistributionResult",
    "GaugeResult",
    "MetricResult",
    "MetricResults",
    "Metrics",
    "MetricsFilter",
]
