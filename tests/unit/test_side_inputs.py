"""Side-input views (global and windowed) and tagged outputs (DoOutputsTuple, Partition)."""
import pytest

import headrace as beam
from headrace.pvalue import AsDict, AsIter, AsList, AsMultiMap, AsSingleton, TaggedOutput
from headrace.testing.util import assert_that, equal_to
from headrace.window import FixedWindows, IntervalWindow, TimestampedValue

# ------------------------------------------------------------------------------------ the views


def _multimap_lookups(m):
    # Beam's multimap view supports lookups only; a missing key has no values.
    return sorted(m[0]), sorted(m[1]), list(m[7])


VIEWS = {
    "singleton": (lambda pcoll: AsSingleton(pcoll | "Sum" >> beam.CombineGlobally(sum)),
                  lambda s: s, 6),
    "iter": (AsIter, lambda s: sorted(s), [1, 2, 3]),
    "list": (AsList, lambda s: (type(s) is list, sorted(s)), (True, [1, 2, 3])),
    "dict": (lambda pcoll: AsDict(pcoll | "KV" >> beam.Map(lambda x: (str(x), x))),
             lambda s: sorted(s.items()), [("1", 1), ("2", 2), ("3", 3)]),
    "multimap": (lambda pcoll: AsMultiMap(pcoll | "KV" >> beam.Map(lambda x: (x % 2, x))),
                 _multimap_lookups, ([2], [1, 3], [])),
}


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("how", ["positional", "keyword"])
def test_side_input_views(runner, view, how):
    make_view, summarize, expected = VIEWS[view]
    with beam.Pipeline(runner=runner) as p:
        side = make_view(p | "Side" >> beam.Create([1, 2, 3]))
        main = p | "Main" >> beam.Create(["a", "b"])
        if how == "positional":
            out = main | beam.Map(lambda x, s: (x, summarize(s)), side)
        else:
            out = main | beam.Map(lambda x, s=None: (x, summarize(s)), s=side)
        assert_that(out, equal_to([("a", expected), ("b", expected)]))


@pytest.mark.parametrize("view, read, expected", [
    (AsIter, list, []),
    (AsList, list, []),
    (AsDict, dict, {}),
    (AsMultiMap, lambda m: list(m["any"]), []),
], ids=["iter", "list", "dict", "multimap"])
def test_empty_side_inputs(runner, view, read, expected):
    with beam.Pipeline(runner=runner) as p:
        side = view(p | "Side" >> beam.Create([]))
        out = p | "Main" >> beam.Create([0]) | beam.Map(lambda x, s: read(s), side)
        assert_that(out, equal_to([expected]))


def test_side_input_iterated_more_than_once(runner):
    with beam.Pipeline(runner=runner) as p:
        side = AsIter(p | "Side" >> beam.Create([1, 2]))
        out = p | "Main" >> beam.Create([0, 1]) | beam.Map(
            lambda x, s: (x, sum(s), sum(s)), side)
        assert_that(out, equal_to([(0, 3, 3), (1, 3, 3)]))


def test_several_side_inputs_and_args_in_a_dofn(runner):
    class Annotate(beam.DoFn):
        def process(self, element, prefix, lookup, total, suffix="!"):
            yield f"{prefix}{lookup.get(element, '?')}/{total}{suffix}"

    with beam.Pipeline(runner=runner) as p:
        names = p | "Names" >> beam.Create([(1, "one"), (2, "two")])
        nums = p | "Nums" >> beam.Create([1, 2, 3])
        total = nums | beam.CombineGlobally(sum)
        out = nums | beam.ParDo(Annotate(), ">", AsDict(names), total=AsSingleton(total),
                                suffix=".")
        assert_that(out, equal_to([">one/6.", ">two/6.", ">?/6."]))


def test_same_side_input_twice(runner):
    with beam.Pipeline(runner=runner) as p:
        side = p | "Side" >> beam.Create([10])
        out = p | "Main" >> beam.Create([1]) | beam.Map(
            lambda x, a, b: x + a + b, AsSingleton(side), b=AsSingleton(side))
        assert_that(out, equal_to([21]))


def test_side_input_computed_from_the_main_input(runner):
    with beam.Pipeline(runner=runner) as p:
        words = p | beam.Create(["a", "b", "a", "c"])
        counts = words | beam.combiners.Count.PerElement()
        out = words | beam.Map(lambda w, c: (w, c[w]), AsDict(counts))
        assert_that(out, equal_to([("a", 2), ("b", 1), ("a", 2), ("c", 1)]))


# --------------------------------------------------------------------- side inputs and windows


def _windowed(p, label, pairs, size=10):
    return (p | label >> beam.Create(pairs)
              | f"{label}Stamp" >> beam.MapTuple(lambda v, t: TimestampedValue(v, t))
              | f"{label}Window" >> beam.WindowInto(FixedWindows(size)))


def test_windowed_side_input_matches_main_windows(runner):
    with beam.Pipeline(runner=runner) as p:
        main = _windowed(p, "Main", [("m1", 1), ("m2", 12), ("m3", 25), ("m4", 9)])
        side = _windowed(p, "Side", [("s1", 2), ("s2", 3), ("s3", 15)])
        out = main | beam.Map(lambda x, s: (x, sorted(s)), AsList(side))
        assert_that(out, equal_to([("m1", ["s1", "s2"]), ("m4", ["s1", "s2"]),
                                   ("m2", ["s3"]), ("m3", [])]))


def test_windowed_singleton_side_input_per_window(runner):
    with beam.Pipeline(runner=runner) as p:
        main = _windowed(p, "Main", [("m1", 1), ("m2", 12)])
        side = _windowed(p, "Side", [(1, 2), (2, 3), (5, 15)])
        totals = side | beam.CombineGlobally(sum).without_defaults()
        out = main | beam.Map(lambda x, t, w=beam.DoFn.WindowParam: (x, t, w),
                              AsSingleton(totals))
        assert_that(out, equal_to([("m1", 3, IntervalWindow(0, 10)),
                                   ("m2", 5, IntervalWindow(10, 20))]))


def test_side_input_with_larger_windows(runner):
    # A main window reads the side window that holds its last instant.
    with beam.Pipeline(runner=runner) as p:
        main = _windowed(p, "Main", [("m1", 1), ("m2", 7), ("m3", 13)], size=5)
        side = _windowed(p, "Side", [("s1", 1), ("s2", 9), ("s3", 19)], size=10)
        out = main | beam.Map(lambda x, s: (x, sorted(s)), AsList(side))
        assert_that(out, equal_to([("m1", ["s1", "s2"]), ("m2", ["s1", "s2"]),
                                   ("m3", ["s3"])]))


def test_global_side_input_is_seen_by_every_window(runner):
    with beam.Pipeline(runner=runner) as p:
        main = _windowed(p, "Main", [("m1", 1), ("m2", 12), ("m3", 1000)])
        side = p | "Side" >> beam.Create(["g1", "g2"])
        out = main | beam.Map(lambda x, s: (x, sorted(s)), AsList(side))
        assert_that(out, equal_to([("m1", ["g1", "g2"]), ("m2", ["g1", "g2"]),
                                   ("m3", ["g1", "g2"])]))


# -------------------------------------------------------------------------------- tagged outputs


def split_parity(x):
    if x < 0:
        yield TaggedOutput("negative", x)
    elif x % 2:
        yield TaggedOutput("odd", x)
    else:
        yield x


class SplitParity(beam.DoFn):
    def process(self, element):
        yield from split_parity(element)


NUMS = [1, 2, 3, 4, -5]


@pytest.mark.parametrize("make", [lambda: beam.ParDo(SplitParity()),
                                  lambda: beam.FlatMap(split_parity)], ids=["dofn", "flatmap"])
def test_tagged_outputs_by_attribute_and_key(runner, make):
    with beam.Pipeline(runner=runner) as p:
        results = p | beam.Create(NUMS) | make().with_outputs("odd", "negative", main="even")
        assert_that(results.even, equal_to([2, 4]), label="even_attr")
        assert_that(results["odd"], equal_to([1, 3]), label="odd_key")
        assert_that(results.negative, equal_to([-5]), label="negative_attr")
        assert results.odd is results["odd"]
        assert results.even is results["even"]


def test_tagged_outputs_unpacking_without_main_tag(runner):
    # Without main=..., unpacking yields the declared tags only, as in Beam.
    with beam.Pipeline(runner=runner) as p:
        results = p | beam.Create(NUMS) | beam.ParDo(SplitParity()).with_outputs("odd",
                                                                                  "negative")
        odd, negative = results
        assert_that(odd, equal_to([1, 3]), label="odd")
        assert_that(negative, equal_to([-5]), label="negative")
        assert_that(results[None], equal_to([2, 4]), label="main")


def test_tagged_outputs_unpacking_with_main_tag(runner):
    with beam.Pipeline(runner=runner) as p:
        even, odd, negative = (p | beam.Create(NUMS)
                               | beam.ParDo(SplitParity()).with_outputs("odd", "negative",
                                                                        main="even"))
        assert_that(even, equal_to([2, 4]), label="even")
        assert_that(odd, equal_to([1, 3]), label="odd")
        assert_that(negative, equal_to([-5]), label="negative")


def test_undeclared_tags_accessed_lazily(runner):
    with beam.Pipeline(runner=runner) as p:
        results = p | beam.Create(NUMS) | beam.ParDo(SplitParity()).with_outputs(main="even")
        assert_that(results.odd, equal_to([1, 3]), label="odd")
        assert_that(results["negative"], equal_to([-5]), label="negative")
        assert_that(results.even, equal_to([2, 4]), label="even")


def test_undeclared_tag_is_refused_when_tags_are_declared():
    p = beam.Pipeline()
    results = p | beam.Create(NUMS) | beam.ParDo(SplitParity()).with_outputs("odd", main="even")
    with pytest.raises(ValueError, match="negative"):
        results.negative


def test_emitted_but_unread_tag_is_dropped(runner):
    with beam.Pipeline(runner=runner) as p:
        results = p | beam.Create(NUMS) | beam.ParDo(SplitParity()).with_outputs("odd",
                                                                                  main="even")
        assert_that(results.even, equal_to([2, 4]), label="even")
        assert_that(results.odd, equal_to([1, 3]), label="odd")


def test_tagged_outputs_keep_timestamps_and_windows(runner):
    def route(x, ts=beam.DoFn.TimestampParam):
        yield TaggedOutput("late" if ts > 10 else "early", (x, float(ts)))

    with beam.Pipeline(runner=runner) as p:
        results = (_windowed(p, "In", [("a", 1), ("b", 15)])
                   | beam.FlatMap(route).with_outputs("late", "early"))
        late = results.late | "LateW" >> beam.Map(lambda x, w=beam.DoFn.WindowParam: (x, w))
        assert_that(late, equal_to([(("b", 15.0), IntervalWindow(10, 20))]), label="late")
        assert_that(results.early, equal_to([("a", 1.0)]), label="early")


def test_tagged_outputs_with_side_inputs(runner):
    def route(x, threshold):
        yield x if x < threshold else TaggedOutput("big", x)

    with beam.Pipeline(runner=runner) as p:
        threshold = p | "T" >> beam.Create([3])
        small, big = (p | beam.Create([1, 2, 3, 4])
                      | beam.FlatMap(route, AsSingleton(threshold)).with_outputs("big",
                                                                                  main="small"))
        assert_that(small, equal_to([1, 2]), label="small")
        assert_that(big, equal_to([3, 4]), label="big")


def test_partition_unpacking(runner):
    with beam.Pipeline(runner=runner) as p:
        low, mid, high = (p | beam.Create([1, 15, 7, 30, 22])
                          | beam.Partition(lambda x, n: min(x // 10, n - 1), 3))
        assert_that(low, equal_to([1, 7]), label="low")
        assert_that(mid, equal_to([15]), label="mid")
        assert_that(high, equal_to([30, 22]), label="high")
