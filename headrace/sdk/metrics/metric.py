"""The user-facing metric API: ``Metrics.counter/distribution/gauge``.

Metric objects are light and picklable, so they can be created in
``DoFn.__init__`` and shipped to workers; they record into the container
current in the calling thread, and do nothing outside any step (as in Beam).

>>> from headrace.sdk.metrics import Metrics, MetricsContainer, metrics_scope
>>> hits = Metrics.counter("app", "hits")
>>> container = MetricsContainer("Count")
>>> with metrics_scope(container):
...     hits.inc(2)
>>> container.snapshot().counters
{('app', 'hits'): 2}
"""
from __future__ import annotations

from typing import Any, Tuple, Union

from .cells import SYSTEM_NAMESPACE, MetricName, _current


class Metric:
    """Base of the user metric objects; holds only the :class:`MetricName`."""

    __slots__ = ("metric_name",)

    def __init__(self, metric_name: MetricName) -> None:
        self.metric_name = metric_name

    def __reduce__(self) -> Tuple[Any, ...]:
        return type(self), (self.metric_name,)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.metric_name.namespace}:{self.metric_name.name})"

    def _as_int(self, value: Any) -> int:
        """Distributions and gauges record integers, as in Beam; say which metric refused."""
        try:
            return int(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"{type(self).__name__} {self.metric_name.namespace}:{self.metric_name.name} "
                f"records integers, got {type(value).__name__}: {value!r:.100}") from None


class Counter(Metric):
    """A user counter; see :meth:`Metrics.counter`.

    >>> Counter(MetricName("app", "n")).inc()  # outside any step: ignored
    """

    __slots__ = ()

    def inc(self, n: int = 1) -> None:
        container = _current.container
        if container is not None:
            container.counter(self.metric_name).inc(n)

    def dec(self, n: int = 1) -> None:
        self.inc(-n)


class Distribution(Metric):
    """A user distribution of integers; see :meth:`Metrics.distribution`.

    >>> Distribution(MetricName("app", "size")).update(3)
    """

    __slots__ = ()

    def update(self, value: int) -> None:
        container = _current.container
        if container is not None:
            container.distribution(self.metric_name).update(self._as_int(value))


class Gauge(Metric):
    """A user gauge of integers; see :meth:`Metrics.gauge`.

    >>> Gauge(MetricName("app", "lag")).set(3)
    """

    __slots__ = ()

    def set(self, value: int) -> None:
        container = _current.container
        if container is not None:
            container.gauge(self.metric_name).set(self._as_int(value))


class Metrics:
    """Creates user metrics, as Beam's ``Metrics``.

    >>> Metrics.counter("app", "errors").metric_name.namespace
    'app'
    >>> Metrics.get_namespace(int)  # a class gives module.ClassName
    'builtins.int'
    """

    @staticmethod
    def get_namespace(namespace: Union[type, str]) -> str:
        """A class gives ``module.ClassName`` (as in Beam); a str is used as is."""
        if isinstance(namespace, type):
            return f"{namespace.__module__}.{namespace.__name__}"
        if isinstance(namespace, str):
            return namespace
        raise ValueError(
            f"Metric namespace must be a class or a str, got {type(namespace).__name__}: "
            f"{namespace!r:.100}")

    @staticmethod
    def counter(namespace: Union[type, str], name: str) -> Counter:
        """A counter: ``inc(n=1)``, ``dec(n=1)``."""
        return Counter(_user_metric_name(namespace, name))

    @staticmethod
    def distribution(namespace: Union[type, str], name: str) -> Distribution:
        """A distribution of integers: ``update(value)``."""
        return Distribution(_user_metric_name(namespace, name))

    @staticmethod
    def gauge(namespace: Union[type, str], name: str) -> Gauge:
        """A gauge of integers, the latest value wins: ``set(value)``."""
        return Gauge(_user_metric_name(namespace, name))


def _user_metric_name(namespace: Union[type, str], name: str) -> MetricName:
    resolved = Metrics.get_namespace(namespace)
    if resolved == SYSTEM_NAMESPACE:
        raise ValueError(
            f"Metric {resolved}:{name}: the namespace {SYSTEM_NAMESPACE!r} is reserved for "
            "runners' own metrics; choose another namespace")
    return MetricName(resolved, name)
