"""Unmodified Beam batch pipelines: the same assertions hold on HeadraceRunner and Beam."""
from __future__ import annotations

import re

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.util import assert_that, equal_to

TEXT = ["to be or not to be", "that is the question", "to be is to do"]


def test_wordcount(make_pipeline):
    with make_pipeline() as p:
        counts = (p | beam.Create(TEXT)
                  | beam.FlatMap(lambda line: re.findall(r"[a-z]+", line))
                  | beam.combiners.Count.PerElement()
                  | beam.Filter(lambda wc: wc[1] > 1))
        assert_that(counts, equal_to([("to", 4), ("be", 3), ("is", 2)]))


def test_combiners(make_pipeline):
    with make_pipeline() as p:
        nums = p | beam.Create([1, 2, 3, 4, 10])
        pairs = p | "Pairs" >> beam.Create([("a", 1), ("a", 5), ("b", 2)])
        assert_that(nums | beam.CombineGlobally(sum), equal_to([20]), label="sum")
        assert_that(nums | beam.combiners.Mean.Globally(), equal_to([4.0]), label="mean")
        assert_that(nums | beam.combiners.Top.Largest(2), equal_to([[10, 4]]), label="top")
        assert_that(pairs | beam.CombinePerKey(max), equal_to([("a", 5), ("b", 2)]),
                    label="max")
        assert_that(pairs | beam.combiners.Count.PerKey(), equal_to([("a", 2), ("b", 1)]),
                    label="count")
        assert_that(pairs | beam.combiners.ToList()
                    | beam.Map(sorted), equal_to([[("a", 1), ("a", 5), ("b", 2)]]),
                    label="tolist")
        empty = p | "Empty" >> beam.Create([])
        assert_that(empty | "EmptySum" >> beam.CombineGlobally(sum), equal_to([0]),
                    label="empty")


def test_cogroupbykey(make_pipeline):
    with make_pipeline() as p:
        emails = p | "E" >> beam.Create([("amy", "a@x"), ("bob", "b@x"), ("amy", "a2@x")])
        phones = p | "P" >> beam.Create([("amy", "111"), ("carl", "333")])
        joined = ({"emails": emails, "phones": phones} | beam.CoGroupByKey()
                  | beam.MapTuple(lambda k, v: (k, sorted(v["emails"]), sorted(v["phones"]))))
        assert_that(joined, equal_to([("amy", ["a2@x", "a@x"], ["111"]),
                                      ("bob", ["b@x"], []), ("carl", [], ["333"])]))


def test_side_inputs(make_pipeline):
    with make_pipeline() as p:
        main = p | "Main" >> beam.Create([1, 2, 3])
        factor = p | "Factor" >> beam.Create([10])
        names = p | "Names" >> beam.Create([(1, "one"), (2, "two"), (1, "uno")])
        out = main | beam.Map(
            lambda x, f, lst, it, d, mm: (x * f, sum(lst), len(list(it)), d.get(x),
                                          sorted(mm[x])),
            beam.pvalue.AsSingleton(factor), beam.pvalue.AsList(main),
            beam.pvalue.AsIter(factor), d=beam.pvalue.AsDict(
                p | "Dict" >> beam.Create([(1, "a"), (3, "c")])),
            mm=beam.pvalue.AsMultiMap(names))
        assert_that(out, equal_to([(10, 6, 1, "a", ["one", "uno"]), (20, 6, 1, None, ["two"]),
                                   (30, 6, 1, "c", [])]))


class _Split(beam.DoFn):
    def process(self, n):
        if n < 0:
            yield beam.pvalue.TaggedOutput("negative", n)
        elif n % 2:
            yield beam.pvalue.TaggedOutput("odd", n)
        else:
            yield n


def test_tagged_outputs(make_pipeline):
    with make_pipeline() as p:
        results = (p | beam.Create([-1, 1, 2, 3, 4])
                   | beam.ParDo(_Split()).with_outputs("odd", "negative", main="even"))
        assert_that(results.even, equal_to([2, 4]), label="even")
        assert_that(results.odd, equal_to([1, 3]), label="odd")
        assert_that(results["negative"], equal_to([-1]), label="negative")


class _WithWindow(beam.DoFn):
    def process(self, kv, window=beam.DoFn.WindowParam, ts=beam.DoFn.TimestampParam):
        # Not the timestamp itself: Beam's portable runners keep milliseconds only.
        yield kv[0], sorted(kv[1]), float(window.start), float(window.end), ts < window.end


@pytest.mark.parametrize("window_fn, expected", [
    (beam.window.FixedWindows(10), [("a", [1, 2], 0.0, 10.0, True),
                                    ("a", [3], 10.0, 20.0, True),
                                    ("b", [4], 20.0, 30.0, True)]),
    # Sessions [7, 11) and [11, 15) touch but do not overlap: Beam does not merge them.
    (beam.window.Sessions(4), [("a", [1], 1.0, 5.0, True), ("a", [2], 7.0, 11.0, True),
                               ("a", [3], 11.0, 15.0, True), ("b", [4], 25.0, 29.0, True)]),
    (beam.window.SlidingWindows(10, 5), [("a", [1], -5.0, 5.0, True),
                                         ("a", [1, 2], 0.0, 10.0, True),
                                         ("a", [2, 3], 5.0, 15.0, True),
                                         ("a", [3], 10.0, 20.0, True),
                                         ("b", [4], 20.0, 30.0, True),
                                         ("b", [4], 25.0, 35.0, True)]),
])
def test_windows(make_pipeline, window_fn, expected):
    with make_pipeline() as p:
        out = (p | beam.Create([("a", 1, 1), ("a", 2, 7), ("a", 3, 11), ("b", 4, 25)])
               | beam.Map(lambda e: beam.window.TimestampedValue((e[0], e[1]), e[2]))
               | beam.WindowInto(window_fn)
               | beam.GroupByKey()
               | beam.ParDo(_WithWindow()))
        assert_that(out, equal_to(expected))


class _Counting(beam.DoFn):
    def __init__(self):
        self.elements = beam.metrics.Metrics.counter(self.__class__, "elements")
        self.sizes = beam.metrics.Metrics.distribution("app", "sizes")

    def process(self, word):
        self.elements.inc()
        self.sizes.update(len(word))
        beam.metrics.Metrics.gauge("app", "last").set(len(word))
        yield word


def test_metrics(make_pipeline_mp):
    p = make_pipeline_mp()
    _ = p | beam.Create(["a", "bb", "ccc"]) | "Count" >> beam.ParDo(_Counting())
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name("elements"))["counters"]
    assert [(c.key.step, c.committed) for c in counters] == [("Count", 3)]
    dists = result.metrics().query(MetricsFilter().with_namespace("app"))["distributions"]
    assert [(d.committed.sum, d.committed.count, d.committed.min, d.committed.max)
            for d in dists] == [(6, 3, 1, 3)]
    gauges = result.metrics().query(MetricsFilter().with_name("last"))["gauges"]
    assert len(gauges) == 1


def test_unsupported_transform_names_it():
    from headrace.runners.beam.from_beam_windowing import UnsupportedBeamFeature
    from headrace.runners.beam.headrace_runner import HeadraceRunner

    class _Finalizing(beam.DoFn):
        def process(self, e, finalizer=beam.DoFn.BundleFinalizerParam):
            yield e

    p = beam.Pipeline(runner=HeadraceRunner())
    _ = p | beam.Create([1]) | "MyFinalizer" >> beam.ParDo(_Finalizing())
    with pytest.raises(UnsupportedBeamFeature,
                       match=r"'MyFinalizer'.*ParDo.*beam:transform:pardo.*BundleFinalizerParam"):
        p.run()


class _Account:
    """Compared by identity, as Beam's grouping does not need; its Beam coder says which key."""

    def __init__(self, number: int) -> None:
        self.number = number


class _AccountCoder(beam.coders.Coder):
    def encode(self, value: _Account) -> bytes:
        return str(value.number).encode()

    def decode(self, encoded: bytes) -> _Account:
        return _Account(int(encoded))

    def is_deterministic(self) -> bool:
        return True


def test_keys_group_by_their_registered_beam_coder(make_pipeline):
    beam.coders.registry.register_coder(_Account, _AccountCoder)
    with make_pipeline() as p:
        out = (p | beam.Create([(_Account(1), "a"), (_Account(2), "b"), (_Account(1), "c")])
               | beam.GroupByKey() | beam.MapTuple(lambda k, vs: (k.number, sorted(vs))))
        assert_that(out, equal_to([(1, ["a", "c"]), (2, ["b"])]))


def test_sharded_keys_group(make_pipeline):
    from typing import Tuple

    from apache_beam.typehints.sharded_key_type import ShardedKeyType
    from apache_beam.utils.sharded_key import ShardedKey

    with make_pipeline() as p:
        out = (p | beam.Create([(ShardedKey("k", b"0"), 1), (ShardedKey("k", b"1"), 2),
                                (ShardedKey("k", b"0"), 3)]).with_output_types(
                                    Tuple[ShardedKeyType[str], int])
               | beam.GroupByKey()
               | beam.MapTuple(lambda k, vs: (k.key, sorted(vs))))
        assert_that(out, equal_to([("k", [1, 3]), ("k", [2])]))


def test_side_input_param_by_keyword(make_pipeline):
    class Decorate(beam.DoFn):
        def process(self, element, prefix, suffix=beam.DoFn.SideInputParam):
            yield f"{prefix}-{element}-{suffix}"

    with make_pipeline() as p:
        suffix = p | "Suffix" >> beam.Create(["z"])
        out = (p | beam.Create(["a", "b"])
               | beam.ParDo(Decorate(), "p", suffix=beam.pvalue.AsSingleton(suffix)))
        assert_that(out, equal_to(["p-a-z", "p-b-z"]))


def test_finish_bundle_output_rewindowed_downstream(make_pipeline):
    # Beam carries whatever finish_bundle puts as the window until a WindowInto replaces it.
    from apache_beam.transforms.window import FixedWindows
    from apache_beam.utils.windowed_value import WindowedValue

    fixed = FixedWindows(2)

    class Finish(beam.DoFn):
        def process(self, element):
            yield beam.window.TimestampedValue(element, 5)

        def finish_bundle(self):
            yield WindowedValue("finish", 1, [fixed])

    with make_pipeline() as p:
        out = (p | beam.Create(["a"]) | beam.ParDo(Finish()) | beam.WindowInto(fixed)
               | beam.Map(lambda v, w=beam.DoFn.WindowParam: (v, float(w.start))))
        assert_that(out, equal_to([("a", 4.0), ("finish", 0.0)]))


def test_start_bundle_output_is_an_error(make_pipeline):
    class Starts(beam.DoFn):
        def start_bundle(self):
            return [1]

        def process(self, element):
            pass

    with pytest.raises(RuntimeError):
        with make_pipeline() as p:
            _ = p | beam.Create([1]) | beam.ParDo(Starts())
