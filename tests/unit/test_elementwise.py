"""Create and the per-element transforms: Map, FlatMap, Filter, *Tuple forms, ParDo, KV helpers."""
import pytest

import headrace as beam
from headrace.testing.util import assert_that, equal_to
from headrace.window import FixedWindows, IntervalWindow, TimestampedValue

from .helpers import run_fails

# ---------------------------------------------------------------------------------------- Create


@pytest.mark.parametrize("values, expected", [
    ([1, 2, 3], [1, 2, 3]),
    ([1, 1, 2], [1, 1, 2]),
    (lambda: (x * x for x in range(4)), [0, 1, 4, 9]),  # a fresh generator per run
    (range(3), [0, 1, 2]),
    ({"a": 1, "b": 2}, [("a", 1), ("b", 2)]),
    ({3, 4}, [3, 4]),
    ([], []),
    (["a", "bc"], ["a", "bc"]),
    ([None, (1, "x"), [2]], [None, (1, "x"), [2]]),
], ids=["list", "duplicates", "generator", "range", "dict", "set", "empty", "strings",
        "mixed"])
def test_create(runner, values, expected):
    if callable(values):
        values = values()
    with beam.Pipeline(runner=runner) as p:
        assert_that(p | beam.Create(values), equal_to(expected))


@pytest.mark.parametrize("value", ["abc", b"abc", ""])
def test_create_refuses_strings(value):
    with pytest.raises(TypeError, match="Refusing to treat string as an iterable"):
        beam.Create(value)


def test_create_timestamped_values(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([TimestampedValue("a", 5), TimestampedValue("b", 17.5)])
                 | beam.Map(lambda x, ts=beam.DoFn.TimestampParam: (x, ts.micros)))
        assert_that(out, equal_to([("a", 5_000_000), ("b", 17_500_000)]))


# ------------------------------------------------------------------------------ Map and friends


def test_map(runner):
    with beam.Pipeline(runner=runner) as p:
        assert_that(p | beam.Create(["ab", "c"]) | beam.Map(len), equal_to([2, 1]))


def test_map_extra_args_and_kwargs(runner):
    def scale(x, factor, offset=0):
        return x * factor + offset

    with beam.Pipeline(runner=runner) as p:
        nums = p | beam.Create([1, 2])
        assert_that(nums | "Pos" >> beam.Map(scale, 10), equal_to([10, 20]), label="pos")
        assert_that(nums | "Kw" >> beam.Map(scale, 10, offset=1), equal_to([11, 21]), label="kw")
        assert_that(nums | "AllKw" >> beam.Map(scale, factor=3, offset=2), equal_to([5, 8]),
                    label="allkw")


def test_map_none_is_an_output(runner):
    with beam.Pipeline(runner=runner) as p:
        assert_that(p | beam.Create([1, 2]) | beam.Map(lambda x: None), equal_to([None, None]))


def test_flatmap(runner):
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create(["a b", "", "c"]) | beam.FlatMap(str.split)
        assert_that(out, equal_to(["a", "b", "c"]))


def test_flatmap_generator_and_extra_args(runner):
    def repeat(x, times, sep=None):
        for i in range(times):
            yield x if sep is None else f"{x}{sep}{i}"

    with beam.Pipeline(runner=runner) as p:
        words = p | beam.Create(["a", "b"])
        assert_that(words | "Pos" >> beam.FlatMap(repeat, 2), equal_to(["a", "a", "b", "b"]),
                    label="pos")
        assert_that(words | "Kw" >> beam.FlatMap(repeat, 2, sep="-"),
                    equal_to(["a-0", "a-1", "b-0", "b-1"]), label="kw")


def test_flatmap_default_is_identity(runner):
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create([[1, 2], [], (3,)]) | beam.FlatMap()
        assert_that(out, equal_to([1, 2, 3]))


def test_flatmap_none_means_no_output(runner):
    with beam.Pipeline(runner=runner) as p:
        assert_that(p | beam.Create([1, 2]) | beam.FlatMap(lambda x: None), equal_to([]))


@pytest.mark.parametrize("result", ["ab", b"ab"], ids=["str", "bytes"])
def test_flatmap_returning_str_raises_type_error(runner, result):
    run_fails(lambda p: p | beam.Create([1]) | beam.FlatMap(lambda x: result), runner,
              TypeError, match=f"Returning a {type(result).__name__} from a ParDo or FlatMap")


def test_filter(runner):
    with beam.Pipeline(runner=runner) as p:
        nums = p | beam.Create(range(10))
        assert_that(nums | "Even" >> beam.Filter(lambda x: x % 2 == 0),
                    equal_to([0, 2, 4, 6, 8]), label="even")
        assert_that(nums | "Args" >> beam.Filter(lambda x, lo, hi=100: lo <= x < hi, 3, hi=5),
                    equal_to([3, 4]), label="args")
        assert_that(nums | "Truthy" >> beam.Filter(lambda x: x), equal_to(list(range(1, 10))),
                    label="truthy")


def test_maptuple_and_flatmaptuple(runner):
    with beam.Pipeline(runner=runner) as p:
        pairs = p | beam.Create([("a", 2), ("b", 3)])
        assert_that(pairs | "MT" >> beam.MapTuple(lambda k, v: f"{k}{v}"),
                    equal_to(["a2", "b3"]), label="mt")
        assert_that(pairs | "MTArgs" >> beam.MapTuple(lambda k, v, mul=1, add=0: v * mul + add,
                                                      10, add=1),
                    equal_to([21, 31]), label="mt_args")
        assert_that(pairs | "FMT" >> beam.FlatMapTuple(lambda k, v: [k] * v),
                    equal_to(["a", "a", "b", "b", "b"]), label="fmt")
        assert_that(pairs | "FMTArgs" >> beam.FlatMapTuple(lambda k, v, extra=0: [k] * (v + extra),
                                                           extra=-1),
                    equal_to(["a", "b", "b"]), label="fmt_args")


def test_maptuple_with_longer_tuples(runner):
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create([(1, 2, 3), (4, 5, 6)]) | beam.MapTuple(lambda a, b, c: a + b + c)
        assert_that(out, equal_to([6, 15]))


# ------------------------------------------------------------------- side inputs and DoFn params


def test_callables_with_side_inputs(runner):
    with beam.Pipeline(runner=runner) as p:
        nums = p | "Nums" >> beam.Create([1, 2, 3])
        total = p | "Total" >> beam.Create([100])
        limit = p | "Limit" >> beam.Create([2])
        mapped = nums | beam.Map(lambda x, t: x + t, beam.pvalue.AsSingleton(total))
        filtered = nums | beam.Filter(lambda x, lim: x <= lim, lim=beam.pvalue.AsSingleton(limit))
        flat = nums | beam.FlatMap(lambda x, all_: [x] * len(all_), beam.pvalue.AsList(limit))
        tup = (nums | "Pair" >> beam.Map(lambda x: (x, x))
               | beam.MapTuple(lambda a, b, t=0: a + b + t, t=beam.pvalue.AsSingleton(total)))
        assert_that(mapped, equal_to([101, 102, 103]), label="map")
        assert_that(filtered, equal_to([1, 2]), label="filter")
        assert_that(flat, equal_to([1, 2, 3]), label="flatmap")
        assert_that(tup, equal_to([102, 104, 106]), label="maptuple")


def test_timestamp_and_window_params_in_lambdas(runner):
    with beam.Pipeline(runner=runner) as p:
        stamped = (p | beam.Create([("a", 3), ("b", 14)])
                     | "Stamp" >> beam.MapTuple(lambda v, t: TimestampedValue(v, t))
                     | beam.WindowInto(FixedWindows(10)))
        out = stamped | beam.Map(
            lambda x, ts=beam.DoFn.TimestampParam, w=beam.DoFn.WindowParam:
                (x, float(ts), float(w.start), float(w.end)))
        assert_that(out, equal_to([("a", 3.0, 0.0, 10.0), ("b", 14.0, 10.0, 20.0)]))
        windows = stamped | "Win" >> beam.FlatMap(lambda x, w=beam.DoFn.WindowParam: [w])
        assert_that(windows, equal_to([IntervalWindow(0, 10), IntervalWindow(10, 20)]),
                    label="windows")


def test_timestamp_param_in_maptuple_and_filter(runner):
    with beam.Pipeline(runner=runner) as p:
        pairs = (p | beam.Create([TimestampedValue(("a", 1), 5), TimestampedValue(("b", 2), 50)]))
        tup = pairs | beam.MapTuple(lambda k, v, ts=beam.DoFn.TimestampParam: (k, v, int(ts)))
        late = pairs | beam.Filter(lambda kv, ts=beam.DoFn.TimestampParam: ts > 10)
        assert_that(tup, equal_to([("a", 1, 5), ("b", 2, 50)]), label="tuple")
        assert_that(late, equal_to([("b", 2)]), label="filter")


def test_map_can_set_timestamps(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([1, 2])
                 | beam.Map(lambda x: TimestampedValue(x, x * 10))
                 | "Read" >> beam.Map(lambda x, ts=beam.DoFn.TimestampParam: (x, int(ts))))
        assert_that(out, equal_to([(1, 10), (2, 20)]))


# ----------------------------------------------------------------------------------------- ParDo


class _SplitWithArgs(beam.DoFn):
    def process(self, element, sep, upper=False):
        for word in element.split(sep):
            yield word.upper() if upper else word


class _WithContext(beam.DoFn):
    def process(self, element, prefix, timestamp=beam.DoFn.TimestampParam,
                window=beam.DoFn.WindowParam):
        yield f"{prefix}{element}@{int(timestamp)}:{int(window.start)}"


def test_pardo_with_dofn(runner):
    with beam.Pipeline(runner=runner) as p:
        lines = p | beam.Create(["a,b", "c"])
        assert_that(lines | "Plain" >> beam.ParDo(_SplitWithArgs(), ","),
                    equal_to(["a", "b", "c"]), label="plain")
        assert_that(lines | "Kw" >> beam.ParDo(_SplitWithArgs(), ",", upper=True),
                    equal_to(["A", "B", "C"]), label="kw")


def test_pardo_dofn_params_and_args(runner):
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([TimestampedValue("x", 12)])
                 | beam.WindowInto(FixedWindows(5))
                 | beam.ParDo(_WithContext(), "p-"))
        assert_that(out, equal_to(["p-x@12:10"]))


def test_pardo_with_plain_callable(runner):
    with beam.Pipeline(runner=runner) as p:
        out = p | beam.Create([1, 2]) | beam.ParDo(lambda x: [x, -x])
        assert_that(out, equal_to([1, -1, 2, -2]))


def test_pardo_process_returning_list(runner):
    class ReturnsList(beam.DoFn):
        def process(self, element):
            return [element, element]

    with beam.Pipeline(runner=runner) as p:
        assert_that(p | beam.Create([1]) | beam.ParDo(ReturnsList()), equal_to([1, 1]))


def test_dofn_lifecycle_outputs_from_finish_bundle(runner):
    class CountInBundle(beam.DoFn):
        def start_bundle(self):
            self.count = 0

        def process(self, element):
            self.count += 1

        def finish_bundle(self):
            yield beam.window.GlobalWindows.windowed_value(("count", self.count))

    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create(range(5)) | beam.ParDo(CountInBundle())
                 | beam.CombinePerKey(sum))
        assert_that(out, equal_to([("count", 5)]))


# ------------------------------------------------------------------------------------ KV helpers


def test_keys_values_kvswap(runner):
    with beam.Pipeline(runner=runner) as p:
        kvs = p | beam.Create([("a", 1), ("b", 2), ("a", 3)])
        assert_that(kvs | beam.Keys(), equal_to(["a", "b", "a"]), label="keys")
        assert_that(kvs | beam.Values(), equal_to([1, 2, 3]), label="values")
        assert_that(kvs | beam.KvSwap(), equal_to([(1, "a"), (2, "b"), (3, "a")]), label="swap")


def test_with_keys(runner):
    with beam.Pipeline(runner=runner) as p:
        words = p | beam.Create(["apple", "bob"])
        assert_that(words | "Const" >> beam.WithKeys("k"),
                    equal_to([("k", "apple"), ("k", "bob")]), label="const")
        assert_that(words | "Fn" >> beam.WithKeys(lambda w: w[0]),
                    equal_to([("a", "apple"), ("b", "bob")]), label="fn")
        assert_that(words | "None" >> beam.WithKeys(None),
                    equal_to([(None, "apple"), (None, "bob")]), label="none")


def test_key_param_without_state_is_the_elements_key(runner):
    # As Beam: KeyParam needs (key, value) input, not a stateful DoFn.
    with beam.Pipeline(runner=runner) as p:
        out = (p | beam.Create([("a", 1), ("b", 2)])
                 | beam.Map(lambda _, key=beam.DoFn.KeyParam: key))
        assert_that(out, equal_to(["a", "b"]))


def test_start_bundle_may_not_output(runner):
    # As Beam: only finish_bundle outputs; a start_bundle that returns values is an error.
    class Outputs(beam.DoFn):
        def start_bundle(self):
            return [1]

        def process(self, element):
            yield element

    with pytest.raises(RuntimeError, match="start_bundle should not output"):
        with beam.Pipeline(runner=runner) as p:
            _ = p | beam.Create([1]) | beam.ParDo(Outputs())
