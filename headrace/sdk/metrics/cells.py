"""Metric cells and containers: where metric values are recorded during execution.

A :class:`MetricsContainer` holds the cells of one step. The runner makes a
container current for the thread running a step's user code
(:func:`metrics_scope`, or :meth:`MetricsEnvironment.set_current` in hot
loops); user metric objects record into it. Cells are not locked: a runner
gives each thread that runs user code its own containers and merges their
snapshots. Runners record their own metrics (element counts, dropped late
data, watermarks) straight into cells under :data:`SYSTEM_NAMESPACE`.

>>> container = MetricsContainer("Count/ParDo")
>>> container.counter(MetricName(SYSTEM_NAMESPACE, "elements_out")).inc(100)
>>> container.snapshot().counters
{('headrace', 'elements_out'): 100}
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Dict, Iterator, NamedTuple, Optional, Tuple

#: The namespace of metrics that runners record about a step.
SYSTEM_NAMESPACE = "headrace"


class MetricName:
    """A metric's namespace and name.

    >>> MetricName("app", "hits") == MetricName("app", "hits")
    True
    """

    __slots__ = ("namespace", "name", "_hash")

    def __init__(self, namespace: str, name: str) -> None:
        if not namespace or not isinstance(namespace, str):
            raise ValueError(f"Metric namespace must be a non-empty str, got {namespace!r}")
        if not name or not isinstance(name, str):
            raise ValueError(f"Metric name must be a non-empty str, got {name!r}")
        self.namespace = namespace
        self.name = name
        # Hashed on every update in a hot loop; strings cache their hash, tuples do not.
        self._hash = hash((namespace, name))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, MetricName) and self.namespace == other.namespace
                and self.name == other.name)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"MetricName(namespace={self.namespace}, name={self.name})"

    def __reduce__(self) -> Tuple[Any, ...]:
        return MetricName, (self.namespace, self.name)


class MetricKey(NamedTuple):
    """Identifies a metric of one step (a transform's full label).

    >>> MetricKey("Read/Parse", MetricName("app", "bad")).step
    'Read/Parse'
    """

    step: str
    metric: MetricName


class CounterCell:
    """A running count. Runners may hold a cell and call :meth:`inc` directly.

    >>> cell = CounterCell(); cell.inc(); cell.inc(4); cell.value
    5
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: int = 1) -> None:
        self.value += n


class DistributionCell:
    """Sum, count, min and max of integer values.

    >>> cell = DistributionCell(); cell.update(3); cell.update(1); cell.snapshot()
    (4, 2, 1, 3)
    """

    __slots__ = ("sum", "count", "min", "max")

    def __init__(self) -> None:
        self.sum = 0
        self.count = 0
        self.min: Optional[int] = None
        self.max: Optional[int] = None

    def update(self, value: int) -> None:
        self.sum += value
        self.count += 1
        if self.min is None or value < self.min:
            self.min = value
        if self.max is None or value > self.max:
            self.max = value

    def snapshot(self) -> Tuple[int, int, Optional[int], Optional[int]]:
        """``(sum, count, min, max)``; min and max are None while count is 0."""
        return self.sum, self.count, self.min, self.max


class GaugeCell:
    """The latest value set, with the wall-clock time (seconds) it was set at.

    >>> cell = GaugeCell(); cell.set(7, timestamp=1.0); cell.snapshot()
    (7, 1.0)
    """

    __slots__ = ("value", "timestamp")

    def __init__(self) -> None:
        self.value: Optional[int] = None
        self.timestamp = 0.0

    def set(self, value: int, timestamp: Optional[float] = None) -> None:
        self.value = value
        self.timestamp = time.time() if timestamp is None else timestamp

    def snapshot(self) -> Tuple[Optional[int], float]:
        """``(value, timestamp)``."""
        return self.value, self.timestamp


MetricId = Tuple[str, str]


class MetricsSnapshot(NamedTuple):
    """Plain, picklable, cumulative values of one step's metrics, keyed by (namespace, name).

    Distributions are ``(sum, count, min, max)``, gauges ``(value, timestamp)``.

    >>> MetricsSnapshot("s", {("app", "n"): 1}, {}, {}).counters
    {('app', 'n'): 1}
    """

    step: str
    counters: Dict[MetricId, int]
    distributions: Dict[MetricId, Tuple[int, int, Optional[int], Optional[int]]]
    gauges: Dict[MetricId, Tuple[Optional[int], float]]


class MetricsContainer:
    """The metric cells of one step, updated by one thread at a time.

    >>> c = MetricsContainer("Parse")
    >>> c.counter(MetricName(SYSTEM_NAMESPACE, "elements")).inc(10)
    >>> c.snapshot().counters
    {('headrace', 'elements'): 10}
    """

    def __init__(self, step: str) -> None:
        self.step = step
        self._counters: Dict[MetricName, CounterCell] = {}
        self._distributions: Dict[MetricName, DistributionCell] = {}
        self._gauges: Dict[MetricName, GaugeCell] = {}

    def counter(self, name: MetricName) -> CounterCell:
        """The counter cell for ``name``, created on first use."""
        cell = self._counters.get(name)
        if cell is None:
            cell = self._counters[name] = CounterCell()
        return cell

    def distribution(self, name: MetricName) -> DistributionCell:
        """The distribution cell for ``name``, created on first use."""
        cell = self._distributions.get(name)
        if cell is None:
            cell = self._distributions[name] = DistributionCell()
        return cell

    def gauge(self, name: MetricName) -> GaugeCell:
        """The gauge cell for ``name``, created on first use."""
        cell = self._gauges.get(name)
        if cell is None:
            cell = self._gauges[name] = GaugeCell()
        return cell

    def snapshot(self) -> MetricsSnapshot:
        """The cumulative values so far; keep only the latest snapshot of each container."""
        return MetricsSnapshot(
            self.step,
            {(n.namespace, n.name): c.value for n, c in self._counters.items()},
            {(n.namespace, n.name): c.snapshot() for n, c in self._distributions.items()},
            {(n.namespace, n.name): c.snapshot() for n, c in self._gauges.items()
             if c.value is not None},
        )


class _Current(threading.local):
    container: Optional[MetricsContainer] = None


_current = _Current()


class MetricsEnvironment:
    """Which container the current thread's user code records into.

    >>> previous = MetricsEnvironment.set_current(MetricsContainer("s"))
    >>> MetricsEnvironment.current().step
    's'
    >>> _ = MetricsEnvironment.set_current(previous)
    """

    @staticmethod
    def current() -> Optional[MetricsContainer]:
        """The current thread's container, or None outside any step."""
        return _current.container

    @staticmethod
    def set_current(container: Optional[MetricsContainer]) -> Optional[MetricsContainer]:
        """Make ``container`` current for this thread; return the previous one to restore."""
        previous = _current.container
        _current.container = container
        return previous


@contextlib.contextmanager
def metrics_scope(container: Optional[MetricsContainer]) -> Iterator[Optional[MetricsContainer]]:
    """Make ``container`` current for this thread inside the ``with`` block.

    >>> with metrics_scope(MetricsContainer("s")) as c:
    ...     MetricsEnvironment.current() is c
    True
    """
    previous = MetricsEnvironment.set_current(container)
    try:
        yield container
    finally:
        _current.container = previous
