"""CombineGlobally/PerKey/Values, CombineFn lifecycle, and the ready-made combiners."""
from collections import Counter

import pytest

import headrace as beam
from headrace.testing.util import assert_that, equal_to, is_empty
from headrace.window import FixedWindows, IntervalWindow, TimestampedValue

from .helpers import is_nan, satisfies

combiners = beam.combiners
NUMS = [3, 1, 4, 1, 5, 9, 2, 6]
KVS = [("a", 1), ("a", 5), ("a", 3), ("b", 2)]


class AverageFn(beam.CombineFn):
    def create_accumulator(self):
        return 0, 0

    def add_input(self, acc, x):
        return acc[0] + x, acc[1] + 1

    def merge_accumulators(self, accs):
        sums, counts = zip(*accs)
        return sum(sums), sum(counts)

    def extract_output(self, acc):
        return acc[0] / acc[1] if acc[1] else float("nan")


# ---------------------------------------------------------------------------- CombineGlobally


def test_combine_globally(runner):
    with beam.Pipeline(runner=runner) as p:
        nums = p | beam.Create(NUMS)
        assert_that(nums | "Sum" >> beam.CombineGlobally(sum), equal_to([31]), label="sum")
        assert_that(nums | "Max" >> beam.CombineGlobally(max), equal_to([9]), label="max")
        assert_that(nums | "Lambda" >> beam.CombineGlobally(lambda xs: min(xs, default=None)),
                    equal_to([1]), label="lambda")
        assert_that(nums | "Avg" >> beam.CombineGlobally(AverageFn()), equal_to([31 / 8]),
                    label="avg")


def test_combine_globally_many_elements(runner):
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create(range(1000)) | beam.CombineGlobally(sum)
        assert_that(out, equal_to([sum(range(1000))]))


def test_combine_globally_empty_input(runner):
    with beam.Pipeline(runner=runner) as p:
        empty = p | beam.Create([])
        assert_that(empty | "Default" >> beam.CombineGlobally(sum), equal_to([0]),
                    label="default")
        assert_that(empty | "With" >> beam.CombineGlobally(sum).with_defaults(), equal_to([0]),
                    label="with")
        assert_that(empty | "Without" >> beam.CombineGlobally(sum).without_defaults(),
                    is_empty(), label="without")
        assert_that(empty | "Avg" >> beam.CombineGlobally(AverageFn()), is_nan(), label="avg")


def test_combine_globally_without_defaults_non_empty(runner):
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create([1, 2]) | beam.CombineGlobally(sum).without_defaults()
        assert_that(out, equal_to([3]))


def test_combine_globally_as_singleton_view(runner):
    with beam.Pipeline(runner=runner) as p:
        nums = p | "Nums" >> beam.Create([1, 2, 3])
        total = nums | "Total" >> beam.CombineGlobally(sum).as_singleton_view()
        empty_total = (p | "Empty" >> beam.Create([])
                       | "EmptyTotal" >> beam.CombineGlobally(sum).as_singleton_view())
        shares = nums | "Share" >> beam.Map(lambda x, t: (x, t), total)
        defaults = nums | "Default" >> beam.Map(lambda x, t: t, empty_total)
        assert_that(shares, equal_to([(1, 6), (2, 6), (3, 6)]), label="shares")
        assert_that(defaults, equal_to([0, 0, 0]), label="defaults")


def test_combine_globally_on_non_global_windows_needs_without_defaults():
    p = beam.Pipeline()
    windowed = (p | beam.Create([TimestampedValue(1, 1)]) | beam.WindowInto(FixedWindows(10)))
    with pytest.raises(ValueError, match=r"Default values are not yet supported in "
                                         r"CombineGlobally\(\) if the output\s+PCollection is "
                                         r"not windowed by GlobalWindows"):
        windowed | beam.CombineGlobally(sum)


def test_combine_globally_per_window_without_defaults(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([TimestampedValue(x, t) for x, t in [(1, 1), (2, 8), (5, 12)]])
                 | beam.WindowInto(FixedWindows(10))
                 | beam.CombineGlobally(sum).without_defaults()
                 | beam.Map(lambda s, w=beam.DoFn.WindowParam: (s, w)))
        assert_that(out, equal_to([(3, IntervalWindow(0, 10)), (5, IntervalWindow(10, 20))]))


# ---------------------------------------------------------------------- CombinePerKey / Values


def test_combine_per_key(runner):
    with beam.Pipeline(runner=runner) as p:
        kvs = p | beam.Create(KVS)
        assert_that(kvs | "Sum" >> beam.CombinePerKey(sum), equal_to([("a", 9), ("b", 2)]),
                    label="sum")
        assert_that(kvs | "Max" >> beam.CombinePerKey(max), equal_to([("a", 5), ("b", 2)]),
                    label="max")
        assert_that(kvs | "Avg" >> beam.CombinePerKey(AverageFn()),
                    equal_to([("a", 3.0), ("b", 2.0)]), label="avg")


def test_combine_values(runner):
    with beam.Pipeline(runner=runner) as p:
        grouped = p | beam.Create(KVS) | beam.GroupByKey()
        assert_that(grouped | "Sum" >> beam.CombineValues(sum), equal_to([("a", 9), ("b", 2)]),
                    label="sum")
        assert_that(grouped | "Avg" >> beam.CombineValues(AverageFn()),
                    equal_to([("a", 3.0), ("b", 2.0)]), label="avg")
        literal = p | "Lit" >> beam.Create([("k", [4, 6]), ("e", [])]) | "Lsum" >> \
            beam.CombineValues(sum)
        assert_that(literal, equal_to([("k", 10), ("e", 0)]), label="literal")


# ------------------------------------------------------------------------ CombineFn lifecycle


class _LifecycleFn(beam.CombineFn):
    """Records setup/teardown in a file (works whatever process runs it)."""

    def __init__(self, path):
        self.path = path
        self.ready = False

    def _log(self, event):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(event + "\n")

    def setup(self):
        self.ready = True
        self._log("setup")

    def create_accumulator(self):
        return []

    def add_input(self, acc, x):
        if not self.ready:
            raise AssertionError("add_input called before setup")
        return acc + [x]

    def merge_accumulators(self, accs):
        return [x for acc in accs for x in acc]

    def extract_output(self, acc):
        return (self.ready, sorted(acc))

    def teardown(self):
        self._log("teardown")


@pytest.mark.parametrize("per_key", [False, True], ids=["globally", "per_key"])
def test_combine_fn_setup_and_teardown_are_called(runner, tmp_path, per_key):
    path = str(tmp_path / "events.txt")
    with beam.Pipeline(runner=runner) as p:
        nums = p | beam.Create([2, 1])
        if per_key:
            out = nums | beam.WithKeys("k") | beam.CombinePerKey(_LifecycleFn(path))
            expected = [("k", (True, [1, 2]))]
        else:
            out = nums | beam.CombineGlobally(_LifecycleFn(path))
            expected = [(True, [1, 2])]
        assert_that(out, equal_to(expected))
    events = Counter(open(path, encoding="utf-8").read().split())
    assert events["setup"] >= 1
    assert events["teardown"] == events["setup"]


def test_combine_fn_setup_called_for_default_on_empty_input(runner, tmp_path):
    path = str(tmp_path / "events.txt")
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create([]) | beam.CombineGlobally(_LifecycleFn(path))
        assert_that(out, equal_to([(True, [])]))
    assert "setup" in open(path, encoding="utf-8").read()


# ------------------------------------------------------------------------------ Count and Mean


def test_count(runner):
    with beam.Pipeline(runner=runner) as p:
        words = p | "Words" >> beam.Create(["a", "b", "a", "c", "a"])
        assert_that(words | "G" >> combiners.Count.Globally(), equal_to([5]), label="globally")
        assert_that(words | "E" >> combiners.Count.PerElement(),
                    equal_to([("a", 3), ("b", 1), ("c", 1)]), label="per_element")
        assert_that(p | "KVs" >> beam.Create(KVS) | "K" >> combiners.Count.PerKey(),
                    equal_to([("a", 3), ("b", 1)]), label="per_key")
        assert_that(p | "Empty" >> beam.Create([]) | "Z" >> combiners.Count.Globally(),
                    equal_to([0]), label="empty")


def test_mean(runner):
    with beam.Pipeline(runner=runner) as p:
        assert_that(p | "Nums" >> beam.Create([1, 2, 6]) | "G" >> combiners.Mean.Globally(),
                    equal_to([3.0]), label="globally")
        assert_that(p | "KVs" >> beam.Create(KVS) | "K" >> combiners.Mean.PerKey(),
                    equal_to([("a", 3.0), ("b", 2.0)]), label="per_key")
        assert_that(p | "Empty" >> beam.Create([]) | "E" >> combiners.Mean.Globally(),
                    is_nan(), label="empty")


# ------------------------------------------------------------------------------------------ Top


@pytest.mark.parametrize("make, expected", [
    (lambda: combiners.Top.Of(3), [9, 6, 5]),
    (lambda: combiners.Top.Of(3, key=lambda x: -x), [1, 1, 2]),
    (lambda: combiners.Top.Of(3, reverse=True), [1, 1, 2]),
    (lambda: combiners.Top.Of(3, key=lambda x: -x, reverse=True), [9, 6, 5]),
    (lambda: combiners.Top.Of(20), [9, 6, 5, 4, 3, 2, 1, 1]),
    (lambda: combiners.Top.Of(0), []),
    (lambda: combiners.Top.Largest(2), [9, 6]),
    (lambda: combiners.Top.Smallest(2), [1, 1]),
], ids=["of", "of_key", "of_reverse", "of_key_reverse", "of_more_than_all", "of_zero",
        "largest", "smallest"])
def test_top_globally(runner, make, expected):
    with beam.Pipeline(runner=runner) as p:
        assert_that(p | beam.Create(NUMS) | make(), equal_to([expected]))


def test_top_of_strings_by_key(runner):
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create(["aaa", "b", "cc"]) | combiners.Top.Of(2, key=len)
        assert_that(out, equal_to([["aaa", "cc"]]))


def test_top_of_empty(runner):
    with beam.Pipeline(runner=runner) as p:
        assert_that(p | beam.Create([]) | combiners.Top.Of(3), equal_to([[]]))


@pytest.mark.parametrize("make, expected_a", [
    (lambda: combiners.Top.PerKey(2), [5, 3]),
    (lambda: combiners.Top.PerKey(2, key=lambda v: -v), [1, 3]),
    (lambda: combiners.Top.PerKey(2, reverse=True), [1, 3]),
    (lambda: combiners.Top.LargestPerKey(2), [5, 3]),
    (lambda: combiners.Top.SmallestPerKey(2), [1, 3]),
], ids=["per_key", "per_key_key", "per_key_reverse", "largest_per_key", "smallest_per_key"])
def test_top_per_key(runner, make, expected_a):
    with beam.Pipeline(runner=runner) as p:
        assert_that(p | beam.Create(KVS) | make(), equal_to([("a", expected_a), ("b", [2])]))


# ----------------------------------------------------------------------- ToList, ToDict, ToSet


def test_to_list_dict_set(runner):
    with beam.Pipeline(runner=runner) as p:
        nums = p | "Nums" >> beam.Create([3, 1, 3])
        kvs = p | "KVs" >> beam.Create([("a", 1), ("b", 2)])
        as_list = nums | "L" >> combiners.ToList() | "Sort" >> beam.Map(sorted)
        assert_that(as_list, equal_to([[1, 3, 3]]), label="list")
        assert_that(kvs | "D" >> combiners.ToDict(), equal_to([{"a": 1, "b": 2}]), label="dict")
        assert_that(nums | "S" >> combiners.ToSet(), equal_to([{1, 3}]), label="set")
        empty = p | "Empty" >> beam.Create([])
        assert_that(empty | "EL" >> combiners.ToList(), equal_to([[]]), label="empty_list")
        assert_that(empty | "ED" >> combiners.ToDict(), equal_to([{}]), label="empty_dict")


# ---------------------------------------------------------------------------------------- Sample


def _is_sample_of(population, size):
    def check(samples):
        return (len(samples) == 1 and len(samples[0]) == size
                and not Counter(samples[0]) - Counter(population))
    return satisfies(check, f"sample of size {size}")


@pytest.mark.parametrize("n", [0, 3, 8, 20])
def test_sample_fixed_size_globally(runner, n):
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create(NUMS) | combiners.Sample.FixedSizeGlobally(n)
        assert_that(out, _is_sample_of(NUMS, min(n, len(NUMS))))


def test_sample_fixed_size_per_key(runner):
    population = {"a": [1, 2, 3, 4, 5], "b": [7]}

    def check(samples):
        return (sorted(k for k, _ in samples) == ["a", "b"]
                and all(len(s) == min(2, len(population[k]))
                        and not Counter(s) - Counter(population[k]) for k, s in samples))

    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([(k, v) for k, vs in population.items() for v in vs])
                 | combiners.Sample.FixedSizePerKey(2))
        assert_that(out, satisfies(check, "per-key samples"))


# ---------------------------------------------------------------------------------------- Latest


def test_latest_globally(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([TimestampedValue("a", 5), TimestampedValue("c", 30),
                                TimestampedValue("b", 12)])
                 | combiners.Latest.Globally())
        assert_that(out, equal_to(["c"]))


def test_latest_globally_empty(runner):
    with beam.Pipeline(runner=runner) as p:
        assert_that(p | beam.Create([]) | combiners.Latest.Globally(), equal_to([None]))


def test_latest_per_key(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([TimestampedValue(("a", 1), 10), TimestampedValue(("a", 2), 3),
                                TimestampedValue(("b", 3), 1), TimestampedValue(("b", 4), 2)])
                 | combiners.Latest.PerKey())
        assert_that(out, equal_to([("a", 1), ("b", 4)]))


def test_latest_uses_timestamps_set_by_map(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([(1, "x"), (3, "z"), (2, "y")])
                 | beam.MapTuple(lambda t, v: TimestampedValue(v, t))
                 | combiners.Latest.Globally())
        assert_that(out, equal_to(["z"]))
