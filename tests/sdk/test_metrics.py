"""Tests of headrace.sdk.metrics: the user API, scoping, snapshots, merging, filters."""
import concurrent.futures
import multiprocessing
import pickle
import threading

import pytest

import headrace.metrics
import headrace.metrics.metric
from headrace.sdk.metrics import (
    SYSTEM_NAMESPACE,
    CollectedMetrics,
    DistributionResult,
    GaugeResult,
    MetricKey,
    MetricName,
    MetricResult,
    MetricResults,
    Metrics,
    MetricsContainer,
    MetricsEnvironment,
    MetricsFilter,
    MetricsSnapshot,
    merge_snapshots,
    metrics_scope,
)

pytestmark = pytest.mark.no_pipeline


class ParseFn:
    def __init__(self):
        self.rows = Metrics.counter(ParseFn, "rows")
        self.sizes = Metrics.distribution("parse", "sizes")
        self.lag = Metrics.gauge("parse", "lag")


def counters_of(results):
    return {(r.key.step, r.key.metric.namespace, r.key.metric.name): r.committed
            for r in results["counters"]}


# --- user API --------------------------------------------------------------------------------

def test_namespace_from_a_class_or_a_str():
    assert ParseFn().rows.metric_name == MetricName(f"{__name__}.ParseFn", "rows")
    assert Metrics.counter("app", "n").metric_name == MetricName("app", "n")


def test_namespace_matches_beam():
    beam_metric = pytest.importorskip("apache_beam.metrics.metric")
    assert Metrics.get_namespace(ParseFn) == beam_metric.Metrics.get_namespace(ParseFn)


@pytest.mark.parametrize("namespace, name, message", [
    (3, "n", "Metric namespace must be a class or a str, got int: 3"),
    ("", "n", "Metric namespace must be a non-empty str, got ''"),
    ("app", "", "Metric name must be a non-empty str, got ''"),
    ("app", None, "Metric name must be a non-empty str, got None"),
    (SYSTEM_NAMESPACE, "n", "the namespace 'headrace' is reserved for runners"),
])
def test_bad_metric_names(namespace, name, message):
    for factory in (Metrics.counter, Metrics.distribution, Metrics.gauge):
        with pytest.raises(ValueError, match=message):
            factory(namespace, name)


def test_updates_record_into_the_current_container():
    fn = ParseFn()
    container = MetricsContainer("Read/Parse")
    with metrics_scope(container):
        fn.rows.inc()
        fn.rows.inc(5)
        fn.rows.dec(2)
        fn.sizes.update(3)
        fn.sizes.update(9.7)  # Beam truncates to int
        fn.lag.set(11)
    snapshot = container.snapshot()
    assert snapshot.step == "Read/Parse"
    assert snapshot.counters == {(f"{__name__}.ParseFn", "rows"): 4}
    assert snapshot.distributions == {("parse", "sizes"): (12, 2, 3, 9)}
    assert snapshot.gauges[("parse", "lag")][0] == 11


def test_updates_outside_any_scope_are_ignored():
    fn = ParseFn()
    assert MetricsEnvironment.current() is None
    fn.rows.inc()
    fn.sizes.update("not even a number")
    fn.lag.set(object())


def test_scopes_nest_and_restore():
    counter = Metrics.counter("app", "n")
    outer, inner = MetricsContainer("outer"), MetricsContainer("inner")
    with metrics_scope(outer):
        counter.inc()
        with metrics_scope(inner):
            counter.inc(10)
        counter.inc()
    assert MetricsEnvironment.current() is None
    assert outer.snapshot().counters == {("app", "n"): 2}
    assert inner.snapshot().counters == {("app", "n"): 10}


def test_scope_restores_after_an_exception():
    with pytest.raises(RuntimeError):
        with metrics_scope(MetricsContainer("s")):
            raise RuntimeError
    assert MetricsEnvironment.current() is None


def test_set_current_returns_the_previous_container():
    first, second = MetricsContainer("a"), MetricsContainer("b")
    assert MetricsEnvironment.set_current(first) is None
    assert MetricsEnvironment.set_current(second) is first
    assert MetricsEnvironment.set_current(None) is second


def test_current_container_is_per_thread():
    counter = Metrics.counter("app", "n")
    main, other = MetricsContainer("main"), MetricsContainer("other")
    seen = []

    def run():
        seen.append(MetricsEnvironment.current())
        with metrics_scope(other):
            counter.inc(7)

    with metrics_scope(main):
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        counter.inc()
    assert seen == [None]
    assert main.snapshot().counters == {("app", "n"): 1}
    assert other.snapshot().counters == {("app", "n"): 7}


@pytest.mark.parametrize("update, message", [
    (lambda: Metrics.distribution("app", "d").update("x"),
     "Distribution app:d records integers, got str: 'x'"),
    (lambda: Metrics.gauge("app", "g").set(None), "Gauge app:g records integers, got NoneType"),
])
def test_non_integer_values_are_refused_inside_a_step(update, message):
    with metrics_scope(MetricsContainer("s")):
        with pytest.raises(TypeError, match=message):
            update()


def test_metric_objects_are_picklable_and_light():
    fn = ParseFn()
    data = pickle.dumps(fn.rows)
    assert len(data) < 200
    copy = pickle.loads(data)
    container = MetricsContainer("s")
    with metrics_scope(container):
        copy.inc(3)
        pickle.loads(pickle.dumps(fn.sizes)).update(1)
        pickle.loads(pickle.dumps(fn.lag)).set(2)
    assert container.snapshot().counters == {(f"{__name__}.ParseFn", "rows"): 3}
    assert repr(copy) == f"Counter({__name__}.ParseFn:rows)"


def test_runners_record_system_metrics_directly():
    container = MetricsContainer("Window/GroupByKey")
    elements = container.counter(MetricName(SYSTEM_NAMESPACE, "elements_in"))
    elements.inc(100)
    container.counter(MetricName(SYSTEM_NAMESPACE, "dropped_late_elements")).inc(2)
    container.gauge(MetricName(SYSTEM_NAMESPACE, "watermark_micros")).set(5_000_000, timestamp=1.0)
    assert container.counter(MetricName(SYSTEM_NAMESPACE, "elements_in")) is elements
    snapshot = container.snapshot()
    assert snapshot.counters == {(SYSTEM_NAMESPACE, "elements_in"): 100,
                                 (SYSTEM_NAMESPACE, "dropped_late_elements"): 2}
    assert snapshot.gauges == {(SYSTEM_NAMESPACE, "watermark_micros"): (5_000_000, 1.0)}


# --- snapshots and merging -------------------------------------------------------------------

def _plain(value):
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, int, float)


def test_snapshot_is_plain_picklable_data():
    container = MetricsContainer("s")
    with metrics_scope(container):
        ParseFn().rows.inc()
        ParseFn().sizes.update(4)
        ParseFn().lag.set(1)
    snapshot = container.snapshot()
    assert _plain(tuple(snapshot))
    assert pickle.loads(pickle.dumps(snapshot)) == snapshot


def test_gauge_never_set_is_left_out_of_snapshots():
    container = MetricsContainer("s")
    container.gauge(MetricName("app", "g"))
    container.distribution(MetricName("app", "d"))
    snapshot = container.snapshot()
    assert snapshot.gauges == {}
    assert snapshot.distributions == {("app", "d"): (0, 0, None, None)}
    result = merge_snapshots([snapshot]).query()["distributions"][0].committed
    assert (result.count, result.min, result.max, result.mean) == (0, None, None, None)


def _worker(task):
    """One simulated worker process: runs a step's user code over its share of the input."""
    worker_id, values = task
    fn = ParseFn()
    container = MetricsContainer("Read/Parse")
    with metrics_scope(container):
        for value in values:
            fn.rows.inc()
            fn.sizes.update(value)
        fn.lag.set(worker_id)
    snapshot = container.snapshot()
    # Make the gauge of worker 2 the most recent, whatever the scheduling.
    gauges = {key: (value, float(worker_id)) for key, (value, _) in snapshot.gauges.items()}
    return snapshot._replace(gauges=gauges)


def test_merge_across_worker_processes():
    tasks = [(0, [1, 2, 3]), (1, [10]), (2, [-4, 5])]
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(3, mp_context=context) as pool:
        snapshots = list(pool.map(_worker, tasks))
    results = merge_snapshots(snapshots).query()
    assert counters_of(results) == {("Read/Parse", f"{__name__}.ParseFn", "rows"): 6}
    [sizes] = results["distributions"]
    assert sizes.committed == DistributionResult(sum=17, count=6, min=-4, max=10)
    assert sizes.committed.mean == pytest.approx(17 / 6)
    [lag] = results["gauges"]
    assert lag.committed == GaugeResult(2, 2.0)


def test_merge_is_order_independent():
    a = MetricsSnapshot("s", {("app", "n"): 1}, {("app", "d"): (5, 2, 1, 4)},
                        {("app", "g"): (7, 3.0), ("app", "tie"): (1, 9.0)})
    b = MetricsSnapshot("s", {("app", "n"): 2, ("app", "m"): 1}, {("app", "d"): (0, 0, None, None)},
                        {("app", "g"): (8, 2.0), ("app", "tie"): (2, 9.0)})
    c = MetricsSnapshot("t", {("app", "n"): 5}, {}, {})
    forward = merge_snapshots([a, b, c]).query()
    backward = merge_snapshots([c, b, a]).query()
    assert forward == backward
    assert counters_of(forward) == {
        ("s", "app", "m"): 1, ("s", "app", "n"): 3, ("t", "app", "n"): 5}
    assert forward["distributions"][0].committed == DistributionResult(5, 2, 1, 4)
    gauges = {r.key.metric.name: r.committed for r in forward["gauges"]}
    assert gauges == {"g": GaugeResult(7, 3.0), "tie": GaugeResult(2, 9.0)}


def test_collected_metrics_can_be_forwarded_as_snapshots():
    a = MetricsSnapshot("s", {("app", "n"): 1}, {("app", "d"): (5, 2, 1, 4)},
                        {("app", "g"): (7, 3.0)})
    b = MetricsSnapshot("t", {("app", "n"): 2}, {}, {})
    merged = merge_snapshots([a, b])
    assert merged.to_snapshots() == [a, b]
    forwarded = merge_snapshots(merged.to_snapshots() + [a])
    assert forwarded.query() == merge_snapshots([a, a, b]).query()


def test_collected_metrics_add():
    collected = CollectedMetrics()
    collected.add(MetricsSnapshot("s", {("app", "n"): 1}, {}, {}))
    collected.add(MetricsSnapshot("s", {("app", "n"): 2}, {}, {}))
    assert counters_of(collected.query()) == {("s", "app", "n"): 3}


# --- querying and filters --------------------------------------------------------------------

def _results():
    return merge_snapshots([
        MetricsSnapshot("Read/Parse", {("app", "rows"): 3, (SYSTEM_NAMESPACE, "elements"): 3},
                        {("app", "size"): (6, 2, 2, 4)}, {("app", "lag"): (1, 1.0)}),
        MetricsSnapshot("Write", {("app", "rows"): 5, ("other", "rows"): 1}, {}, {}),
    ])


def test_query_without_filter_returns_user_metrics_in_order():
    results = _results().query()
    assert [(r.key.step, r.key.metric.namespace) for r in results["counters"]] == [
        ("Read/Parse", "app"), ("Write", "app"), ("Write", "other")]
    assert [r.key.step for r in results["distributions"]] == ["Read/Parse"]
    assert [r.key.step for r in results["gauges"]] == ["Read/Parse"]
    for kind in results.values():
        for result in kind:
            assert result.committed == result.attempted == result.result


def test_query_with_filters():
    results = _results()
    by_name = results.query(MetricsFilter().with_name("rows"))
    assert len(by_name["counters"]) == 3 and by_name["distributions"] == []
    by_step = results.query(MetricsFilter().with_step("Parse").with_namespace("app"))
    assert counters_of(by_step) == {("Read/Parse", "app", "rows"): 3}
    by_metric = results.query(MetricsFilter().with_metric(Metrics.counter("other", "rows")))
    assert counters_of(by_metric) == {("Write", "other", "rows"): 1}
    by_class = results.query(MetricsFilter().with_namespace(ParseFn))
    assert counters_of(by_class) == {}


def test_system_metrics_are_returned_only_when_asked_for():
    results = _results()
    assert all(r.key.metric.namespace != SYSTEM_NAMESPACE
               for r in results.query()["counters"])
    system = results.query(MetricsFilter().with_namespace(SYSTEM_NAMESPACE))
    assert counters_of(system) == {("Read/Parse", SYSTEM_NAMESPACE, "elements"): 3}


@pytest.mark.parametrize("call, message", [
    (lambda f: f.with_names("rows"), r"with_names\(\) takes a collection of names"),
    (lambda f: f.with_namespaces("app"), r"with_namespaces\(\) takes a collection of namespaces"),
    (lambda f: f.with_steps("Parse"), r"use with_step\('Parse'\)"),
])
def test_filter_refuses_a_single_string_for_a_collection(call, message):
    with pytest.raises(ValueError, match=message):
        call(MetricsFilter())


def test_filter_accessors():
    f = MetricsFilter().with_names(["a", "b"]).with_namespaces(["x", ParseFn]).with_steps(["s"])
    assert f.names == frozenset({"a", "b"})
    assert f.namespaces == frozenset({"x", f"{__name__}.ParseFn"})
    assert f.steps == frozenset({"s"})


FILTER_CASES = [
    # (names, namespaces, steps), (step, namespace, name)
    ((), (), ()), ("A/B/C", "ns", "n"),
    ((), (), ("B",)), ("A/B/C", "ns", "n"),
    ((), (), ("A/B",)), ("A/B/C", "ns", "n"),
    ((), (), ("B/C",)), ("A/B/C", "ns", "n"),
    ((), (), ("A/B/C",)), ("A/B/C", "ns", "n"),
    ((), (), ("A/C",)), ("A/B/C", "ns", "n"),
    ((), (), ("A/B/",)), ("A/B/C", "ns", "n"),
    ((), (), ("A/B/C/D",)), ("A/B/C", "ns", "n"),
    ((), (), ("B/C/D",)), ("A/B/C", "ns", "n"),
    ((), (), ("Bx",)), ("A/B/C", "ns", "n"),
    ((), (), ("",)), ("A/B/C", "ns", "n"),
    ((), (), ("",)), ("A//C", "ns", "n"),
    ((), (), ("",)), ("", "ns", "n"),
    ((), (), ("A",)), ("", "ns", "n"),
    ((), (), ("A",)), ("A", "ns", "n"),
    ((), (), ("/A",)), ("/A", "ns", "n"),
    ((), (), ("x", "B")), ("A/B", "ns", "n"),
    ((), (), ("Parse",)), ("Read/Parse", "ns", "n"),
    ((), (), ("Read/Pars",)), ("Read/Parse", "ns", "n"),
    (("n",), (), ()), ("s", "ns", "n"),
    (("m",), (), ()), ("s", "ns", "n"),
    (("m", "n"), ("ns",), ()), ("s", "ns", "n"),
    ((), ("other",), ()), ("s", "ns", "n"),
    (("n",), ("ns",), ("s",)), ("s", "ns", "n"),
    (("n",), ("ns",), ("t",)), ("s", "ns", "n"),
    (("n",), ("nsx",), ("s",)), ("s", "ns", "n"),
]


@pytest.mark.parametrize("criteria, key", list(zip(FILTER_CASES[::2], FILTER_CASES[1::2])))
def test_filter_matching_agrees_with_beam(criteria, key):
    beam_metric = pytest.importorskip("apache_beam.metrics.metric")
    beam_execution = pytest.importorskip("apache_beam.metrics.execution")
    beam_metricbase = pytest.importorskip("apache_beam.metrics.metricbase")
    names, namespaces, steps = criteria
    step, namespace, name = key

    beam_filter = beam_metric.MetricsFilter()
    ours = MetricsFilter()
    for f in (beam_filter, ours):
        if names:
            f.with_names(names)
        if namespaces:
            f.with_namespaces(namespaces)
        if steps:
            f.with_steps(steps)
    beam_key = beam_execution.MetricKey(step, beam_metricbase.MetricName(namespace, name))
    expected = beam_metric.MetricResults.matches(beam_filter, beam_key)
    assert MetricResults.matches(ours, MetricKey(step, MetricName(namespace, name))) == expected
    assert MetricResults.matches(None, MetricKey(step, MetricName(namespace, name)))


# --- result objects --------------------------------------------------------------------------

def test_result_objects():
    dist = DistributionResult(sum=10, count=4, min=1, max=4)
    assert (dist.sum, dist.count, dist.min, dist.max, dist.mean) == (10, 4, 1, 4, 2.5)
    assert dist == DistributionResult(10, 4, 1, 4) and hash(dist) == hash(DistributionResult(
        10, 4, 1, 4))
    assert repr(dist) == "DistributionResult(sum=10, count=4, min=1, max=4, mean=2.5)"
    assert DistributionResult(0, 0, 5, 5).min is None
    gauge = GaugeResult(3, 2.5)
    assert gauge == GaugeResult(3, 2.5) != GaugeResult(3, 2.6)
    key = MetricKey("s", MetricName("a", "n"))
    assert MetricResult(key, 0, 4).result == 4
    assert MetricResult(key, 2, 2) == MetricResult(key, 2, 2)
    assert "MetricName(namespace=a, name=n)" in repr(MetricResult(key, 2, 2))


def test_metric_results_base_requires_query():
    with pytest.raises(NotImplementedError, match="MetricResults does not implement query"):
        MetricResults().query()


def test_beam_style_modules():
    assert headrace.metrics.Metrics is Metrics
    assert headrace.metrics.MetricsFilter is MetricsFilter
    assert headrace.metrics.metric.MetricsFilter is MetricsFilter
    assert headrace.metrics.metric.MetricResults is MetricResults
