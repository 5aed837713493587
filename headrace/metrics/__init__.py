"""Beam-compatible ``metrics`` package: ``from headrace.metrics import Metrics``.

>>> from headrace.metrics import Metrics, MetricsFilter
>>> MetricsFilter().with_metric(Metrics.counter("app", "n")).names
frozenset({'n'})
"""
from headrace.sdk.metrics import Metrics, MetricsFilter

__all__ = ["Metrics", "MetricsFilter"]
