"""GroupByKey, CoGroupByKey, Distinct, Reshuffle, Partition and Flatten."""
import pytest

import headrace as beam
from headrace.testing.util import assert_that, equal_to, is_empty
from headrace.window import FixedWindows, IntervalWindow, TimestampedValue

from .helpers import run_fails, sorted_values


def _typed_groups(kv):
    """``(type name, key, sorted values)``: tells apart keys that are == but not the same key."""
    key, values = kv
    return type(key).__name__, key, tuple(sorted(values))


# ------------------------------------------------------------------------------------ GroupByKey


def test_group_by_key(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([("a", 1), ("b", 2), ("a", 3), ("a", 1)])
                 | beam.GroupByKey() | beam.Map(sorted_values()))
        assert_that(out, equal_to([("a", [1, 1, 3]), ("b", [2])]))


def test_group_by_key_empty_input(runner):
    with beam.Pipeline(runner=runner) as p:
        assert_that(p | beam.Create([]) | beam.GroupByKey(), is_empty())


def test_group_by_key_list_pairs_are_accepted(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([["a", 1], ["a", 2]]) | beam.GroupByKey()
                 | beam.Map(sorted_values()))
        assert_that(out, equal_to([("a", [1, 2])]))


@pytest.mark.parametrize("keys", [
    [1, 2, -7, 2**62],
    ["x", "", "ü"],
    [(1, "a"), (1, "b"), (), ((1,), None)],
    [None],
    [b"raw", b""],
    [1.5, -0.5],
], ids=["int", "str", "tuple", "none", "bytes", "float"])
def test_group_by_key_key_types(runner, keys):
    elements = [(k, v) for k in keys for v in (1, 2)]
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create(elements) | beam.GroupByKey() | beam.Map(_typed_groups)
        assert_that(out, equal_to([(type(k).__name__, k, (1, 2)) for k in keys]))


def test_group_by_key_equal_values_of_different_types_are_different_keys(runner):
    # As in Beam, whose grouping compares encoded keys: 1, 1.0 and True are three keys.
    elements = [(1, "int"), (True, "bool"), (1.0, "float"), (0, "zero"), (False, "false"),
                (1, "int2")]
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create(elements) | beam.GroupByKey() | beam.Map(_typed_groups)
        assert_that(out, equal_to([
            ("int", 1, ("int", "int2")), ("bool", True, ("bool",)), ("float", 1.0, ("float",)),
            ("int", 0, ("zero",)), ("bool", False, ("false",))]))


def test_group_by_key_dict_and_set_keys_group_by_contents(runner):
    with beam.Pipeline(runner=runner) as p:
        dicts = (p | "Dicts" >> beam.Create([({"a": 1, "b": 2}, 1), ({"b": 2, "a": 1}, 2),
                                             ({"a": 1}, 3)])
                 | "GD" >> beam.GroupByKey()
                 | "SD" >> beam.MapTuple(lambda k, vs: (sorted(k.items()), sorted(vs))))
        sets = (p | "Sets" >> beam.Create([({1, 2}, 1), ({2, 1}, 2), ({3}, 3)])
                | "GS" >> beam.GroupByKey()
                | "SS" >> beam.MapTuple(lambda k, vs: (sorted(k), sorted(vs))))
        assert_that(dicts, equal_to([([("a", 1), ("b", 2)], [1, 2]), ([("a", 1)], [3])]),
                    label="dicts")
        assert_that(sets, equal_to([([1, 2], [1, 2]), ([3], [3])]), label="sets")


def test_group_by_key_tuple_and_list_keys_differ(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([((1, 2), "t"), ([1, 2], "l"), ((1, 2), "t2")])
                 | beam.GroupByKey() | beam.Map(_typed_groups))
        assert_that(out, equal_to([("tuple", (1, 2), ("t", "t2")), ("list", [1, 2], ("l",))]))


# ---------------------------------------------------------------------------------- CoGroupByKey


def test_cogroup_by_key_dict(runner):
    with beam.Pipeline(runner=runner) as p:
        emails = p | "Emails" >> beam.Create([("amy", "a@x"), ("bob", "b@x"), ("amy", "a@y")])
        phones = p | "Phones" >> beam.Create([("amy", "111"), ("carl", "333")])
        out = ({"emails": emails, "phones": phones} | beam.CoGroupByKey()
               | beam.MapTuple(lambda k, g: (k, sorted(g["emails"]), sorted(g["phones"]))))
        assert_that(out, equal_to([("amy", ["a@x", "a@y"], ["111"]), ("bob", ["b@x"], []),
                                   ("carl", [], ["333"])]))


def test_cogroup_by_key_dict_has_every_tag(runner):
    with beam.Pipeline(runner=runner) as p:
        a = p | "A" >> beam.Create([("k", 1)])
        b = p | "B" >> beam.Create([])
        out = {"a": a, "b": b} | beam.CoGroupByKey() | beam.MapTuple(lambda k, g: (k, sorted(g)))
        assert_that(out, equal_to([("k", ["a", "b"])]))


@pytest.mark.parametrize("container", [tuple, list])
def test_cogroup_by_key_sequence(runner, container):
    with beam.Pipeline(runner=runner) as p:
        a = p | "A" >> beam.Create([(1, "a1"), (2, "a2")])
        b = p | "B" >> beam.Create([(1, "b1"), (3, "b3"), (1, "b1'")])
        c = p | "C" >> beam.Create([(3, "c3")])
        out = (container([a, b, c]) | beam.CoGroupByKey()
               | beam.MapTuple(lambda k, g: (k, tuple(sorted(v) for v in g))))
        assert_that(out, equal_to([(1, (["a1"], ["b1", "b1'"], [])), (2, (["a2"], [], [])),
                                   (3, ([], ["b3"], ["c3"]))]))


def test_cogroup_by_key_same_pcollection_twice(runner):
    with beam.Pipeline(runner=runner) as p:
        a = p | beam.Create([("k", 1)])
        out = (a, a) | beam.CoGroupByKey() | beam.MapTuple(lambda k, g: (k, tuple(g[0] + g[1])))
        assert_that(out, equal_to([("k", (1, 1))]))


# -------------------------------------------------------------------------------------- Distinct


def test_distinct(runner):
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create([1, 2, 2, 3, 3, 3, "3", (1, 2), (1, 2), None, None]) \
            | beam.Distinct()
        assert_that(out, equal_to([1, 2, 3, "3", (1, 2), None]))


def test_remove_duplicates_alias(runner):
    with beam.Pipeline(runner=runner) as p:
        assert_that(p | beam.Create(["a", "a"]) | beam.RemoveDuplicates(), equal_to(["a"]))


def test_distinct_is_per_window(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([TimestampedValue("x", 1), TimestampedValue("x", 2),
                                TimestampedValue("x", 12)])
                 | beam.WindowInto(FixedWindows(10)) | beam.Distinct()
                 | beam.Map(lambda x, w=beam.DoFn.WindowParam: (x, w)))
        assert_that(out, equal_to([("x", IntervalWindow(0, 10)), ("x", IntervalWindow(10, 20))]))


# ------------------------------------------------------------------------------------- Reshuffle


def _project(expected):
    """A matcher over reified elements: compares ``(value, timestamp, windows)``."""
    check = equal_to(expected)
    return lambda actual: check([(v.value, v.timestamp.micros, tuple(v.windows)) for v in actual])


def test_reshuffle_preserves_elements(runner):
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create([1, 2, 2, "x", (3, 4)]) | beam.Reshuffle()
        assert_that(out, equal_to([1, 2, 2, "x", (3, 4)]))


def test_reshuffle_preserves_timestamps_and_windows(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([TimestampedValue("a", 5), TimestampedValue("b", 1),
                                TimestampedValue("c", 12)])
                 | beam.WindowInto(FixedWindows(10)) | beam.Reshuffle())
        assert_that(out, _project([("a", 5_000_000, (IntervalWindow(0, 10),)),
                                   ("b", 1_000_000, (IntervalWindow(0, 10),)),
                                   ("c", 12_000_000, (IntervalWindow(10, 20),))]),
                    reify_windows=True)
        # Still windowed downstream: a GroupByKey after it groups per window.
        grouped = (out | beam.WithKeys("k") | beam.GroupByKey()
                       | beam.MapTuple(lambda k, vs: sorted(vs)))
        assert_that(grouped, equal_to([["a", "b"], ["c"]]), label="grouped")


def test_reshuffle_in_sliding_windows_keeps_each_window(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([TimestampedValue("a", 7)])
                 | beam.WindowInto(beam.window.SlidingWindows(10, 5)) | beam.Reshuffle())
        assert_that(out, _project([("a", 7_000_000, (IntervalWindow(0, 10),)),
                                   ("a", 7_000_000, (IntervalWindow(5, 15),))]), reify_windows=True)


# ------------------------------------------------------------------------------------- Partition


class _ModFn(beam.PartitionFn):
    def partition_for(self, element, num_partitions, offset=0):
        return (element + offset) % num_partitions


def test_partition_with_callable(runner):
    with beam.Pipeline(runner=runner) as p:
        parts = p | beam.Create(range(7)) | beam.Partition(lambda x, n: x % n, 3)
        assert len(list(parts)) == 3
        for i, part in enumerate(parts):
            assert_that(part, equal_to([x for x in range(7) if x % 3 == i]), label=f"p{i}")


def test_partition_with_partition_fn_and_extra_args(runner):
    with beam.Pipeline(runner=runner) as p:
        nums = p | beam.Create([1, 2, 3, 4])
        a, b, c = nums | "Kw" >> beam.Partition(_ModFn(), 3, offset=1)
        even, odd = nums | "Pos" >> beam.Partition(lambda x, n, off: (x + off) % n, 2, 1)
        assert_that(a, equal_to([2]), label="a")
        assert_that(b, equal_to([3]), label="b")
        assert_that(c, equal_to([1, 4]), label="c")
        assert_that(even, equal_to([1, 3]), label="even")
        assert_that(odd, equal_to([2, 4]), label="odd")


def test_partition_indexing(runner):
    with beam.Pipeline(runner=runner) as p:
        parts = p | beam.Create([1, 2, 3]) | beam.Partition(lambda x, n: 0 if x < 3 else 1, 2)
        assert_that(parts[0], equal_to([1, 2]), label="first")
        assert_that(parts[1], equal_to([3]), label="second")


@pytest.mark.parametrize("index", [3, -1])
def test_partition_out_of_range_fails(runner, index):
    run_fails(lambda p: p | beam.Create([1]) | beam.Partition(lambda x, n: index, 3), runner,
              ValueError, match="out-of-bounds partition index")


# --------------------------------------------------------------------------------------- Flatten


def test_flatten_two_and_three(runner):
    with beam.Pipeline(runner=runner) as p:
        a = p | "A" >> beam.Create([1, 2])
        b = p | "B" >> beam.Create([3])
        c = p | "C" >> beam.Create([])
        assert_that((a, b) | "Two" >> beam.Flatten(), equal_to([1, 2, 3]), label="two")
        assert_that([a, b, c] | "Three" >> beam.Flatten(), equal_to([1, 2, 3]), label="three")


def test_flatten_same_pcollection_twice(runner):
    with beam.Pipeline(runner=runner) as p:
        a = p | beam.Create([1, 2])
        assert_that((a, a) | beam.Flatten(), equal_to([1, 1, 2, 2]))


def test_flatten_nothing(runner):
    with beam.Pipeline(runner=runner) as p:
        assert_that(() | beam.Flatten(pipeline=p), is_empty())


def test_flatten_of_different_window_functions_keeps_each_elements_windows(runner):
    # As Beam: allowed (with a warning); the output takes the first input's windowing.
    with beam.Pipeline(runner=runner) as p:
        a = (p | "A" >> beam.Create([TimestampedValue(("k", 1), 1)])
               | "WA" >> beam.WindowInto(FixedWindows(10)))
        b = (p | "B" >> beam.Create([TimestampedValue(("k", 2), 2)])
               | "WB" >> beam.WindowInto(FixedWindows(100)))
        out = ((a, b) | beam.Flatten() | beam.GroupByKey()
               | beam.MapTuple(lambda k, vs, w=beam.DoFn.WindowParam: (w, sorted(vs))))
        assert_that(out, equal_to([(IntervalWindow(0, 10), [1]), (IntervalWindow(0, 100), [2])]))


def test_flatten_windowed_inputs_keep_windows(runner):
    with beam.Pipeline(runner=runner) as p:
        fixed = FixedWindows(10)
        a = (p | "A" >> beam.Create([TimestampedValue(("k", 1), 1)])
               | "WA" >> beam.WindowInto(fixed))
        b = (p | "B" >> beam.Create([TimestampedValue(("k", 2), 15), TimestampedValue(("k", 3), 2)])
               | "WB" >> beam.WindowInto(fixed))
        out = ((a, b) | beam.Flatten() | beam.GroupByKey()
               | beam.MapTuple(lambda k, vs, w=beam.DoFn.WindowParam: (w, sorted(vs))))
        assert_that(out, equal_to([(IntervalWindow(0, 10), [1, 3]),
                                   (IntervalWindow(10, 20), [2])]))
