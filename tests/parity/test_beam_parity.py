"""Beam parity: the same pipeline code, run with ``apache_beam`` and with ``headrace``.

Each builder takes the SDK module as ``beam`` and must produce identical output on
both (see harness.py). Combiners and windows have their own modules beside this one.
"""
import os
import re

import apache_beam  # noqa: F401  (the reference SDK; harness.py runs it)

import headrace  # noqa: F401  (the SDK under test; harness.py runs it)

from .harness import BEAM_RUNNER, assert_parity, run

KINGLEAR = os.path.join(
    os.path.dirname(__file__), os.pardir, os.pardir, "samples", "data", "kinglear.txt"
)


# --- word count -----------------------------------------------------------------------------


def build_wordcount(beam, p):
    counts = (
        p
        | "Read" >> beam.io.ReadFromText(KINGLEAR)
        | "Split" >> beam.FlatMap(lambda line: re.findall(r"[A-Za-z']+", line))
        | "Lower" >> beam.Map(str.lower)
        | "Count" >> beam.combiners.Count.PerElement()
    )
    top = counts | "Top" >> beam.combiners.Top.Of(20, key=lambda wc: (wc[1], wc[0]))
    return {"counts": counts, "top": top}


def test_wordcount(runner, tmp_path):
    expected = assert_parity(build_wordcount, runner, tmp_path)
    assert len(expected["counts"]) > 1000


# --- Create ---------------------------------------------------------------------------------


def build_create(beam, p):
    return {
        "dicts": p | "Dicts" >> beam.Create([{"a": 1, "b": [1, 2]}, {"c": {"d": None}}]),
        "tuples": p | "Tuples" >> beam.Create([(1, "a"), (2, ("b", 3.5)), ("k", None)]),
        "mixed": p | "Mixed" >> beam.Create([1, "two", 3.0, None, True, b"four", (), []]),
        "from_dict": p | "FromDict" >> beam.Create({"k1": 1, "k2": 2}),
        "duplicates": p | "Dups" >> beam.Create([7, 7, 7]),
    }


def test_create(runner, tmp_path):
    assert_parity(build_create, runner, tmp_path)


def build_empty_create(beam, p):
    empty = p | "Empty" >> beam.Create([])
    return {
        "empty": empty,
        "mapped": empty | "Map" >> beam.Map(lambda x: x + 1),
        "count": empty | "Count" >> beam.combiners.Count.Globally(),
    }


def test_empty_create(runner, tmp_path):
    assert_parity(build_empty_create, runner, tmp_path, allow_empty=("empty", "mapped"))


# --- CoGroupByKey ---------------------------------------------------------------------------


def build_cogroupbykey(beam, p):
    emails = p | "Emails" >> beam.Create([("amy", "a@x"), ("bob", "b@x"), ("amy", "a2@x")])
    phones = p | "Phones" >> beam.Create([("amy", "111"), ("carl", "333"), ("amy", "112")])
    by_dict = (
        {"emails": emails, "phones": phones}
        | "DictJoin" >> beam.CoGroupByKey()
        | "SortDict" >> beam.MapTuple(lambda k, d: (k, {tag: sorted(vs) for tag, vs in d.items()}))
    )
    by_tuple = (
        (emails, phones)
        | "TupleJoin" >> beam.CoGroupByKey()
        | "SortTuple" >> beam.MapTuple(lambda k, vs: (k, tuple(sorted(v) for v in vs)))
    )
    return {"by_dict": by_dict, "by_tuple": by_tuple}


def test_cogroupbykey(runner, tmp_path):
    assert_parity(build_cogroupbykey, runner, tmp_path)


# --- side inputs ----------------------------------------------------------------------------


def _describe(x, single, defaulted, as_list, as_iter, as_dict, scale=1):
    return (x * scale, single, defaulted, sorted(as_list), sorted(as_iter), as_dict.get(x))


def build_side_inputs(beam, p):
    AsSingleton, AsList, AsIter, AsDict = (
        beam.pvalue.AsSingleton,
        beam.pvalue.AsList,
        beam.pvalue.AsIter,
        beam.pvalue.AsDict,
    )
    main = p | "Main" >> beam.Create([1, 2, 3])
    single = p | "Single" >> beam.Create([10])
    empty = p | "Empty" >> beam.Create([])
    many = p | "Many" >> beam.Create([5, 4, 6])
    pairs = p | "Pairs" >> beam.Create([(1, "one"), (2, "two")])

    def views():
        return (
            AsSingleton(single),
            AsSingleton(empty, default_value=-1),
            AsList(many),
            AsIter(many),
            AsDict(pairs),
        )

    def kwviews():
        return dict(zip(("single", "defaulted", "as_list", "as_iter", "as_dict"), views()))

    class DescribeFn(beam.DoFn):
        def process(self, x, single, defaulted, as_list, as_iter, as_dict, scale=1):
            yield _describe(x, single, defaulted, as_list, as_iter, as_dict, scale)

    return {
        "map_args": main | "MapArgs" >> beam.Map(_describe, *views()),
        "map_kwargs": main | "MapKw" >> beam.Map(_describe, scale=100, **kwviews()),
        "dofn_args": main | "DoFnArgs" >> beam.ParDo(DescribeFn(), *views(), 1000),
        "dofn_kwargs": main | "DoFnKw" >> beam.ParDo(DescribeFn(), **kwviews()),
    }


def test_side_inputs(runner, tmp_path):
    assert_parity(build_side_inputs, runner, tmp_path)


# --- tagged outputs -------------------------------------------------------------------------


def build_tagged_outputs(beam, p):
    class SplitFn(beam.DoFn):
        def process(self, x):
            if x % 3 == 0:
                yield beam.pvalue.TaggedOutput("a", x)
            elif x % 3 == 1:
                yield beam.pvalue.TaggedOutput("b", x * 10)
            else:
                yield x

    def split(x):
        yield beam.pvalue.TaggedOutput("odd" if x % 2 else "even", x)
        yield -x

    nums = p | beam.Create(range(10))
    res = nums | "DoFn" >> beam.ParDo(SplitFn()).with_outputs("a", "b", main="m")
    main, odd, even = nums | "FlatMap" >> beam.FlatMap(split).with_outputs("odd", "even", main="m")
    return {"m": res.m, "a": res.a, "b": res["b"], "main2": main, "odd": odd, "even": even}


def test_tagged_outputs(runner, tmp_path):
    assert_parity(build_tagged_outputs, runner, tmp_path)


# --- Partition and Flatten ------------------------------------------------------------------


def build_partition(beam, p):
    class ShiftedParity(beam.PartitionFn):
        def partition_for(self, element, num_partitions, offset):
            return (element + offset) % num_partitions

    nums = p | beam.Create(range(12))
    by_fn = nums | "ByFn" >> beam.Partition(lambda x, n: x % n, 3)
    by_cls = nums | "ByPartitionFn" >> beam.Partition(ShiftedParity(), 2, 1)
    return {"f0": by_fn[0], "f1": by_fn[1], "f2": by_fn[2], "c0": by_cls[0], "c1": by_cls[1]}


def test_partition(runner, tmp_path):
    assert_parity(build_partition, runner, tmp_path)


def build_flatten(beam, p):
    a = p | "A" >> beam.Create([1, 2])
    b = p | "B" >> beam.Create([2, 3])
    empty = p | "E" >> beam.Create([])
    return {
        "two": (a, b) | "Two" >> beam.Flatten(),
        "with_empty": [a, empty] | "WithEmpty" >> beam.Flatten(),
        "one": [b] | "One" >> beam.Flatten(),
    }


def test_flatten(runner, tmp_path):
    assert_parity(build_flatten, runner, tmp_path)


# --- element-wise transforms ----------------------------------------------------------------


def build_elementwise(beam, p):
    nums = p | "Nums" >> beam.Create([1, 2, 3, 4, 5])
    kvs = p | "Kvs" >> beam.Create([("a", 1), ("b", 2), ("a", 3)])
    lines = p | "Lines" >> beam.Create(["to be", "or not to be"])

    def upto(n):
        yield from range(n)

    return {
        "keys": kvs | beam.Keys(),
        "values": kvs | beam.Values(),
        "kvswap": kvs | beam.KvSwap(),
        "with_keys": nums | "WithKeysFn" >> beam.WithKeys(lambda x: x % 2),
        "with_const_key": nums | "WithKeysConst" >> beam.WithKeys("k"),
        "distinct": lines | "Words" >> beam.FlatMap(str.split) | beam.Distinct(),
        "reshuffle": nums | beam.Reshuffle(),
        "map_tuple": kvs | beam.MapTuple(lambda k, v: f"{k}={v}"),
        "flatmap_tuple": kvs | beam.FlatMapTuple(lambda k, v: [k] * v),
        "filter": nums | beam.Filter(lambda x: x % 2 == 0),
        "filter_args": nums | "FilterArgs" >> beam.Filter(lambda x, lo: x > lo, 3),
        "flatmap_gen": nums | "FlatMapGen" >> beam.FlatMap(upto),
        "flatmap_none": nums | "FlatMapEmpty" >> beam.FlatMap(lambda x: []),
        "map_args": nums | "MapArgs" >> beam.Map(lambda x, y, z=0: x * y + z, 10, z=1),
        "pardo_fn": nums | "ParDoLambda" >> beam.ParDo(lambda x: [x, -x]),
    }


def test_elementwise(runner, tmp_path):
    assert_parity(build_elementwise, runner, tmp_path, allow_empty=("flatmap_none",))


# --- composite transforms -------------------------------------------------------------------


def build_composites(beam, p):
    class CountWords(beam.PTransform):
        def __init__(self, min_count):
            super().__init__()
            self.min_count = min_count

        def expand(self, pcoll):
            min_count = self.min_count
            return (
                pcoll
                | "Split" >> beam.FlatMap(str.split)
                | "Count" >> beam.combiners.Count.PerElement()
                | "AtLeast" >> beam.Filter(lambda kv: kv[1] >= min_count)
            )

    class Numbers(beam.PTransform):
        def expand(self, pbegin):
            return pbegin | beam.Create([1, 2, 3])

    @beam.ptransform_fn
    def SquareAll(pcoll, offset=0):
        return pcoll | beam.Map(lambda x: x * x + offset)

    lines = p | "Lines" >> beam.Create(["a b a", "b c a"])
    numbers = p | "Numbers" >> Numbers()
    return {
        "subclass": lines | "CountWords" >> CountWords(2),
        "from_pbegin": numbers,
        "decorated": numbers | "Square" >> SquareAll(),
        "decorated_kw": numbers | "SquarePlus" >> SquareAll(offset=100),
        "chained": numbers | "Sq1" >> SquareAll() | "Sq2" >> SquareAll(offset=1),
    }


def test_composites(runner, tmp_path):
    assert_parity(build_composites, runner, tmp_path)


# --- DoFn lifecycle -------------------------------------------------------------------------


def build_dofn_lifecycle(beam, p):
    class BufferingFn(beam.DoFn):
        """Emits nothing from process; everything from finish_bundle."""

        def __init__(self):
            self.state = "constructed"

        def setup(self):
            assert self.state == "constructed", self.state
            self.state = "set up"

        def start_bundle(self):
            assert self.state in ("set up", "bundle finished"), self.state
            self.state = "in bundle"
            self.buffer = []

        def process(self, x):
            assert self.state == "in bundle", self.state
            self.buffer.append(x)

        def finish_bundle(self):
            assert self.state == "in bundle", self.state
            for x in self.buffer:
                yield beam.transforms.window.GlobalWindows.windowed_value((x, self.state))
            self.state = "bundle finished"

        def teardown(self):
            self.state = "torn down"

    class PlainFn(beam.DoFn):
        def setup(self):
            self.prefix = "seen:"

        def process(self, x):
            yield self.prefix + str(x)

    nums = p | beam.Create(range(20))
    return {
        "buffered": nums | "Buffered" >> beam.ParDo(BufferingFn()),
        "plain": nums | "Plain" >> beam.ParDo(PlainFn()),
    }


def test_dofn_lifecycle(runner, tmp_path):
    assert_parity(build_dofn_lifecycle, runner, tmp_path)


# --- metrics --------------------------------------------------------------------------------


def build_metrics(beam, p):
    Metrics = beam.metrics.Metrics

    class MeteredFn(beam.DoFn):
        def __init__(self):
            self.elements = Metrics.counter("parity", "elements")
            self.chars = Metrics.counter("parity", "chars")
            self.sizes = Metrics.distribution("parity", "sizes")

        def process(self, word):
            self.elements.inc()
            self.chars.inc(len(word))
            self.sizes.update(len(word))
            yield word

    return p | beam.Create(["a", "bb", "ccc", "dddd", "bb"]) | beam.ParDo(MeteredFn())


def _committed_metrics(beam, result):
    def query(name):
        return result.metrics().query(beam.metrics.MetricsFilter().with_name(name))

    counters = {
        name: sum(r.committed for r in query(name)["counters"]) for name in ("elements", "chars")
    }
    sizes = [r.committed for r in query("sizes")["distributions"]]
    assert len(sizes) == 1, sizes
    d = sizes[0]
    return counters, (d.sum, d.count, d.min, d.max)


def test_metrics(runner, tmp_path):
    beam_lines, beam_result = run(apache_beam, BEAM_RUNNER, build_metrics, tmp_path / "beam")
    hr_lines, hr_result = run(headrace, runner, build_metrics, tmp_path / "headrace")
    assert hr_lines == beam_lines
    expected = _committed_metrics(apache_beam, beam_result)
    assert expected == ({"elements": 5, "chars": 12}, (12, 5, 1, 4))
    assert _committed_metrics(headrace, hr_result) == expected
