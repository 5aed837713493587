"""Beam parity for every combiner in ``beam.combiners`` and the Combine* transforms."""
import math

import apache_beam  # noqa: F401  (the reference SDK; harness.py runs it)
import pytest

import headrace  # noqa: F401  (the SDK under test; harness.py runs it)

from .harness import assert_parity

NUMS = [3, 1, 4, 1, 5, 9, 2, 6]
KVS = [("a", 3), ("b", 1), ("a", 4), ("b", 1), ("a", 5), ("c", 9)]
# Distinct lengths, so that Top with key=len has no ties.
WORDS = ["fig", "kiwi", "apple", "banana", "apricot", "blueberry"]


def _inputs(beam, p):
    return (
        p | "Nums" >> beam.Create(NUMS),
        p | "Kvs" >> beam.Create(KVS),
        p | "Words" >> beam.Create(WORDS),
    )


def build_count(beam, p):
    nums, kvs, _ = _inputs(beam, p)
    C = beam.combiners.Count
    return {
        "globally": nums | C.Globally(),
        "per_key": kvs | C.PerKey(),
        "per_element": nums | C.PerElement(),
    }


def build_mean(beam, p):
    nums, kvs, _ = _inputs(beam, p)
    M = beam.combiners.Mean
    return {"globally": nums | M.Globally(), "per_key": kvs | M.PerKey()}


def build_top(beam, p):
    nums, kvs, words = _inputs(beam, p)
    T = beam.combiners.Top
    return {
        "of": nums | "Of" >> T.Of(3),
        "of_key": words | "OfKey" >> T.Of(2, key=len),
        "of_reverse": nums | "OfReverse" >> T.Of(3, reverse=True),
        "of_key_reverse": words | "OfKeyReverse" >> T.Of(2, key=len, reverse=True),
        "of_more_than_n": nums | "OfAll" >> T.Of(100),
        "largest": nums | "Largest" >> T.Largest(2),
        "smallest": nums | "Smallest" >> T.Smallest(2),
        "per_key": kvs | "PerKey" >> T.PerKey(2),
        "per_key_key": kvs | "PerKeyKey" >> T.PerKey(2, key=lambda v: -v),
        "per_key_reverse": kvs | "PerKeyReverse" >> T.PerKey(2, reverse=True),
        "largest_per_key": kvs | "LargestPerKey" >> T.LargestPerKey(1),
        "smallest_per_key": kvs | "SmallestPerKey" >> T.SmallestPerKey(1),
    }


def build_to_collections(beam, p):
    nums, kvs, _ = _inputs(beam, p)
    unique = p | "Unique" >> beam.Create([("x", 1), ("y", 2), ("z", 3)])
    return {
        "to_list": nums | beam.combiners.ToList() | "Sort" >> beam.Map(sorted),
        "to_dict": unique | beam.combiners.ToDict(),
        "to_set": nums | beam.combiners.ToSet(),
    }


def build_sample(beam, p):
    universe = list(range(20))
    nums = p | beam.Create(universe)
    kvs = p | "Kvs" >> beam.Create([(k, v) for k in "ab" for v in range(5)])

    def summarize(sample):
        # Which elements are drawn is random: compare the size and subset-ness only.
        return (len(sample), len(set(sample)), set(sample) <= set(universe))

    return {
        "globally": nums | beam.combiners.Sample.FixedSizeGlobally(3) | beam.Map(summarize),
        "globally_small": (
            p
            | "Two" >> beam.Create([1, 2])
            | "FixedTen" >> beam.combiners.Sample.FixedSizeGlobally(10)
            | "SortSmall" >> beam.Map(sorted)
        ),
        "per_key": (
            kvs
            | beam.combiners.Sample.FixedSizePerKey(2)
            | beam.MapTuple(lambda k, s: (k, len(s), set(s) <= set(range(5))))
        ),
    }


def build_latest(beam, p):
    events = [("a", 1, 5.0), ("b", 2, 1.0), ("a", 3, 9.0), ("b", 4, 2.0), ("a", 5, 7.0)]
    stamped = (
        p
        | beam.Create(events)
        | beam.Map(lambda e: beam.window.TimestampedValue((e[0], e[1]), e[2]))
    )
    return {
        "globally": stamped | beam.combiners.Latest.Globally(),
        "per_key": stamped | beam.combiners.Latest.PerKey(),
    }


def build_combine_globally(beam, p):
    nums, _, words = _inputs(beam, p)
    empty = p | "Empty" >> beam.Create([])
    return {
        "sum": nums | "Sum" >> beam.CombineGlobally(sum),
        "max_no_defaults": nums | "Max" >> beam.CombineGlobally(max).without_defaults(),
        "sum_empty": empty | "SumEmpty" >> beam.CombineGlobally(sum),
        "sum_empty_no_defaults": (
            empty | "NoDefaults" >> beam.CombineGlobally(sum).without_defaults()
        ),
        "custom_fn": nums | "Avg" >> beam.CombineGlobally(_average_fn(beam)),
        "lambda": words | "Longest" >> beam.CombineGlobally(lambda ws: max(ws, key=len)),
    }


def _average_fn(beam):
    class AverageFn(beam.CombineFn):
        def create_accumulator(self):
            return (0, 0)

        def add_input(self, acc, x):
            return (acc[0] + x, acc[1] + 1)

        def merge_accumulators(self, accs):
            sums, counts = zip(*accs)
            return (sum(sums), sum(counts))

        def extract_output(self, acc):
            return acc[0] / acc[1] if acc[1] else float("nan")

    return AverageFn()


def build_combine_per_key(beam, p):
    _, kvs, _ = _inputs(beam, p)
    return {
        "custom_fn": kvs | "Avg" >> beam.CombinePerKey(_average_fn(beam)),
        "builtin": kvs | "Sum" >> beam.CombinePerKey(sum),
        "lambda": kvs | "Product" >> beam.CombinePerKey(lambda vs: math.prod(vs)),
    }


def build_combine_values(beam, p):
    grouped = p | beam.Create([("a", [1, 2, 3]), ("b", [4]), ("c", [5, 6])])
    return {
        "sum": grouped | "Sum" >> beam.CombineValues(sum),
        "custom_fn": grouped | "Avg" >> beam.CombineValues(_average_fn(beam)),
        "after_gbk": (
            p
            | "Kvs" >> beam.Create(KVS)
            | beam.GroupByKey()
            | "Max" >> beam.CombineValues(max)
        ),
    }


def build_empty_inputs(beam, p):
    empty = p | beam.Create([])
    C = beam.combiners
    return {
        "count": empty | "Count" >> C.Count.Globally(),
        "mean": empty | "Mean" >> C.Mean.Globally(),
        "top": empty | "Top" >> C.Top.Of(3),
        "to_list": empty | "ToList" >> C.ToList(),
        "to_dict": empty | "ToDict" >> C.ToDict(),
        "sample": empty | "Sample" >> C.Sample.FixedSizeGlobally(2),
        "per_key": empty | "CountPerKey" >> C.Count.PerKey(),
    }


BUILDERS = {
    "count": build_count,
    "mean": build_mean,
    "top": build_top,
    "to_collections": build_to_collections,
    "sample": build_sample,
    "latest": build_latest,
    "combine_globally": build_combine_globally,
    "combine_per_key": build_combine_per_key,
    "combine_values": build_combine_values,
    "empty_inputs": build_empty_inputs,
}
ALLOW_EMPTY = {
    "combine_globally": ("sum_empty_no_defaults",),
    "empty_inputs": ("per_key",),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_combiner(name, runner, tmp_path):
    assert_parity(BUILDERS[name], runner, tmp_path, allow_empty=ALLOW_EMPTY.get(name, ()))
