"""Metric results: merging snapshots from many workers, filtering, querying.

Filters match as in Beam: a metric matches when its namespace and name are
among those requested (if any), and when one of the requested steps is a
run of whole ``/``-separated parts of the metric's step (``"B"`` and
``"A/B"`` match ``"A/B/C"``; ``"A/B/"`` and ``"B/C/D"`` do not).

>>> from headrace.sdk.metrics.cells import MetricsSnapshot
>>> worker1 = MetricsSnapshot("Parse", {("app", "rows"): 3}, {("app", "len"): (9, 2, 4, 5)}, {})
>>> worker2 = MetricsSnapshot("Parse", {("app", "rows"): 4}, {("app", "len"): (1, 1, 1, 1)}, {})
>>> results = merge_snapshots([worker1, worker2]).query(MetricsFilter().with_step("Parse"))
>>> results["counters"][0].committed, results["distributions"][0].committed.max
(7, 5)
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from .cells import SYSTEM_NAMESPACE, MetricKey, MetricName, MetricsSnapshot
from .metric import Metric, Metrics


class DistributionResult:
    """The merged value of a distribution.

    >>> DistributionResult(sum=6, count=3, min=1, max=3).mean
    2.0
    """

    def __init__(self, sum: int, count: int, min: Optional[int], max: Optional[int]) -> None:
        self.sum = sum
        self.count = count
        self.min = min if count else None
        self.max = max if count else None

    @property
    def mean(self) -> Optional[float]:
        """The mean of the values, None when there were none."""
        return self.sum / self.count if self.count else None

    def _fields(self) -> Tuple[Any, ...]:
        return self.sum, self.count, self.min, self.max

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DistributionResult) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"DistributionResult(sum={self.sum}, count={self.count}, min={self.min}, "
                f"max={self.max}, mean={self.mean})")


class GaugeResult:
    """The latest value of a gauge and when (seconds since the epoch) it was set.

    >>> GaugeResult(5, 1700000000.0).value
    5
    """

    def __init__(self, value: Optional[int], timestamp: float) -> None:
        self.value = value
        self.timestamp = timestamp

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, GaugeResult) and self.value == other.value
                and self.timestamp == other.timestamp)

    def __hash__(self) -> int:
        return hash((self.value, self.timestamp))

    def __repr__(self) -> str:
        return f"GaugeResult(value={self.value}, timestamp={self.timestamp})"


class MetricResult:
    """One metric of one step; ``committed`` equals ``attempted`` in headrace.

    >>> r = MetricResult(MetricKey("s", MetricName("a", "n")), 3, 3)
    >>> r.result
    3
    """

    def __init__(self, key: MetricKey, committed: Any, attempted: Any) -> None:
        self.key = key
        self.committed = committed
        self.attempted = attempted

    @property
    def result(self) -> Any:
        """``committed`` when set, else ``attempted`` (as in Beam)."""
        return self.committed if self.committed else self.attempted

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, MetricResult) and self.key == other.key
                and self.committed == other.committed and self.attempted == other.attempted)

    def __hash__(self) -> int:
        return hash((self.key, self.committed, self.attempted))

    def __repr__(self) -> str:
        return (f"MetricResult(key={self.key}, committed={self.committed}, "
                f"attempted={self.attempted})")


def _checked(values: Iterable[Any], what: str) -> List[Any]:
    if isinstance(values, str):
        raise ValueError(f"MetricsFilter.with_{what}s() takes a collection of {what}s, not the "
                         f"single str {values!r}; use with_{what}({values!r})")
    return list(values)


class MetricsFilter:
    """Selects metrics by name, namespace and step; empty criteria match everything.

    >>> f = MetricsFilter().with_name("rows").with_steps(["Parse", "Write"])
    >>> sorted(f.steps), sorted(f.names)
    (['Parse', 'Write'], ['rows'])
    """

    def __init__(self) -> None:
        self._names: set = set()
        self._namespaces: set = set()
        self._steps: set = set()

    @property
    def names(self) -> frozenset:
        return frozenset(self._names)

    @property
    def namespaces(self) -> frozenset:
        return frozenset(self._namespaces)

    @property
    def steps(self) -> frozenset:
        return frozenset(self._steps)

    def with_name(self, name: str) -> "MetricsFilter":
        return self.with_names([name])

    def with_names(self, names: Iterable[str]) -> "MetricsFilter":
        self._names.update(_checked(names, "name"))
        return self

    def with_namespace(self, namespace: Union[type, str]) -> "MetricsFilter":
        return self.with_namespaces([namespace])

    def with_namespaces(self, namespaces: Iterable[Union[type, str]]) -> "MetricsFilter":
        checked = _checked(namespaces, "namespace")
        self._namespaces.update(Metrics.get_namespace(ns) for ns in checked)
        return self

    def with_step(self, step: str) -> "MetricsFilter":
        return self.with_steps([step])

    def with_steps(self, steps: Iterable[str]) -> "MetricsFilter":
        self._steps.update(_checked(steps, "step"))
        return self

    def with_metric(self, metric: Metric) -> "MetricsFilter":
        """Select the metric that ``metric`` (e.g. a ``Metrics.counter``) records."""
        return self.with_name(metric.metric_name.name).with_namespace(metric.metric_name.namespace)


def _step_matches(actual: str, wanted: str) -> bool:
    """Whether ``wanted``'s ``/``-parts occur as consecutive parts of ``actual``."""
    if not actual:
        return False
    parts = actual.split("/")
    needle = wanted.split("/")
    width = len(needle)
    return any(parts[i:i + width] == needle for i in range(len(parts) - width + 1))


class MetricResults:
    """The interface of pipeline metric results, as in Beam."""

    COUNTERS = "counters"
    DISTRIBUTIONS = "distributions"
    GAUGES = "gauges"

    @staticmethod
    def matches(filter: Optional[MetricsFilter], key: MetricKey) -> bool:
        """Whether ``key`` passes ``filter`` (None passes everything).

        >>> key = MetricKey("A/B/C", MetricName("app", "n"))
        >>> MetricResults.matches(MetricsFilter().with_step("A/B"), key)
        True
        """
        if filter is None:
            return True
        if filter.namespaces and key.metric.namespace not in filter.namespaces:
            return False
        if filter.names and key.metric.name not in filter.names:
            return False
        return not filter.steps or any(_step_matches(key.step, s) for s in filter.steps)

    def query(self, filter: Optional[MetricsFilter] = None) -> Dict[str, List[MetricResult]]:
        """``{"counters": [...], "distributions": [...], "gauges": [...]}`` matching ``filter``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement query()")


class CollectedMetrics(MetricResults):
    """Metrics merged from snapshots: counters add up, distributions combine,
    gauges keep the most recently set value.

    Metrics in the runners' namespace (``"headrace"``) are returned only by
    filters that name that namespace.

    >>> c = CollectedMetrics([MetricsSnapshot("s", {}, {}, {("app", "g"): (1, 10.0)})])
    >>> c.add(MetricsSnapshot("s", {}, {}, {("app", "g"): (2, 5.0)}))
    >>> c.query()["gauges"][0].committed.value
    1
    """

    def __init__(self, snapshots: Iterable[MetricsSnapshot] = ()) -> None:
        self._counters: Dict[MetricKey, int] = {}
        self._distributions: Dict[MetricKey, Tuple[int, int, Optional[int], Optional[int]]] = {}
        self._gauges: Dict[MetricKey, Tuple[Optional[int], float]] = {}
        for snapshot in snapshots:
            self.add(snapshot)

    def add(self, snapshot: MetricsSnapshot) -> None:
        """Merge one more snapshot in."""
        step = snapshot.step
        counters = self._counters
        for (namespace, name), value in snapshot.counters.items():
            key = MetricKey(step, MetricName(namespace, name))
            counters[key] = counters.get(key, 0) + value
        for (namespace, name), dist in snapshot.distributions.items():
            key = MetricKey(step, MetricName(namespace, name))
            previous = self._distributions.get(key)
            self._distributions[key] = dist if previous is None else _combine(previous, dist)
        for (namespace, name), gauge in snapshot.gauges.items():
            key = MetricKey(step, MetricName(namespace, name))
            held = self._gauges.get(key)
            # Ties are broken by value so that the merge order never matters.
            if held is None or (gauge[1], gauge[0]) > (held[1], held[0]):
                self._gauges[key] = gauge

    def to_snapshots(self) -> List[MetricsSnapshot]:
        """The merged values as one snapshot per step, e.g. to forward them further up.

        >>> merge_snapshots([MetricsSnapshot("s", {("a", "n"): 1}, {}, {})]).to_snapshots()
        [MetricsSnapshot(step='s', counters={('a', 'n'): 1}, distributions={}, gauges={})]
        """
        by_step: Dict[str, MetricsSnapshot] = {}
        for kind, values in enumerate((self._counters, self._distributions, self._gauges)):
            for key, value in values.items():
                snapshot = by_step.get(key.step)
                if snapshot is None:
                    snapshot = by_step[key.step] = MetricsSnapshot(key.step, {}, {}, {})
                snapshot[kind + 1][(key.metric.namespace, key.metric.name)] = value
        return [by_step[step] for step in sorted(by_step)]

    def query(self, filter: Optional[MetricsFilter] = None) -> Dict[str, List[MetricResult]]:
        """The matching metrics, each list ordered by step, namespace and name.

        >>> merge_snapshots([]).query()
        {'counters': [], 'distributions': [], 'gauges': []}
        """
        want_system = filter is not None and SYSTEM_NAMESPACE in filter.namespaces

        def selected(keys: Iterable[MetricKey]) -> List[MetricKey]:
            chosen = [k for k in keys if (want_system or k.metric.namespace != SYSTEM_NAMESPACE)
                      and self.matches(filter, k)]
            return sorted(chosen, key=lambda k: (k.step, k.metric.namespace, k.metric.name))

        counters = [MetricResult(k, self._counters[k], self._counters[k])
                    for k in selected(self._counters)]
        distributions = []
        for k in selected(self._distributions):
            result = DistributionResult(*self._distributions[k])
            distributions.append(MetricResult(k, result, result))
        gauges = []
        for k in selected(self._gauges):
            gauge = GaugeResult(*self._gauges[k])
            gauges.append(MetricResult(k, gauge, gauge))
        return {self.COUNTERS: counters, self.DISTRIBUTIONS: distributions, self.GAUGES: gauges}


def _combine(a: Tuple[int, int, Optional[int], Optional[int]],
             b: Tuple[int, int, Optional[int], Optional[int]]
             ) -> Tuple[int, int, Optional[int], Optional[int]]:
    lows = [v for v in (a[2], b[2]) if v is not None]
    highs = [v for v in (a[3], b[3]) if v is not None]
    return (a[0] + b[0], a[1] + b[1], min(lows) if lows else None, max(highs) if highs else None)


def merge_snapshots(snapshots: Iterable[MetricsSnapshot]) -> CollectedMetrics:
    """Merge snapshots gathered from any number of workers into queryable results.

    Pass the latest snapshot of each container once: snapshots are cumulative.

    >>> merge_snapshots([MetricsSnapshot("s", {("a", "n"): 2}, {}, {})] * 2).query()[
    ...     "counters"][0].committed
    4
    """
    return CollectedMetrics(snapshots)
