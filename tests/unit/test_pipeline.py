"""Pipeline construction (labels, composition, ptransform_fn), running, metrics, options."""
import pytest

import headrace as beam
from headrace.metrics import Metrics
from headrace.metrics.metric import MetricsFilter
from headrace.options.pipeline_options import PipelineOptions, StandardOptions
from headrace.testing.test_pipeline import TestPipeline
from headrace.testing.util import BeamAssertException, assert_that, equal_to

# ------------------------------------------------------------------------------------------ labels


def test_explicit_and_default_labels():
    p = beam.Pipeline()
    nums = p | "Nums" >> beam.Create([1])
    assert nums.producer.full_label.split("/")[0] == "Nums"
    assert (nums | "Named" >> beam.Map(str)).producer.full_label == "Named"
    assert (nums | beam.Map(len)).producer.full_label == "Map(len)"
    assert (nums | beam.Map(lambda x: x)).producer.full_label.startswith(
        "Map(<lambda at test_pipeline.py:")
    assert (nums | beam.FlatMap(str.split)).producer.full_label == "FlatMap(split)"


class Inner(beam.PTransform):
    def expand(self, pcoll):
        return pcoll | "Inner" >> beam.Map(lambda x: x + 1)


class Outer(beam.PTransform):
    def expand(self, pcoll):
        return pcoll | "Middle" >> Inner() | "Last" >> beam.Map(lambda x: x * 10)


def test_nested_composite_full_labels(runner):
    with beam.Pipeline(runner=runner) as p:
        nums = p | beam.Create([1, 2])
        inner = nums | "Solo" >> Inner()
        outer = nums | "Outer" >> Outer()
        assert inner.producer.full_label == "Solo/Inner"
        assert outer.producer.full_label == "Outer/Last"
        assert_that(inner, equal_to([2, 3]), label="inner")
        assert_that(outer, equal_to([20, 30]), label="outer")


def test_default_label_of_a_composite_is_its_class_name():
    p = beam.Pipeline()
    out = p | beam.Create([1]) | Outer()
    assert out.producer.full_label == "Outer/Last"


def test_duplicate_label_raises_runtime_error():
    p = beam.Pipeline()
    nums = p | beam.Create([1])
    nums | "M" >> beam.Map(str)
    with pytest.raises(RuntimeError,
                       match=r'A transform with label "M" already exists in the pipeline\. '
                             r'To apply a transform with a specified label, write '
                             r'pvalue \| "label" >> transform'):
        nums | "M" >> beam.Map(str)


def test_duplicate_default_label_raises_runtime_error():
    p = beam.Pipeline()
    nums = p | beam.Create([1])
    nums | beam.Map(len)
    with pytest.raises(RuntimeError, match=r'label "Map\(len\)" already exists'):
        nums | beam.Map(len)


def test_same_label_in_different_composites_is_fine(runner):
    with beam.Pipeline(runner=runner) as p:
        nums = p | beam.Create([1])
        a = nums | "A" >> Inner()
        b = nums | "B" >> Inner()
        assert_that((a, b) | beam.Flatten(), equal_to([2, 2]))


def test_transform_instance_reused_with_new_labels(runner):
    double = beam.Map(lambda x: 2 * x)
    with beam.Pipeline(runner=runner) as p:
        nums = p | beam.Create([1, 2])
        twice = nums | "Once" >> double | "Twice" >> double
        assert_that(twice, equal_to([4, 8]))


# ----------------------------------------------------------------------------- applying things


@pytest.mark.parametrize("thing", [5, "text", len, lambda x: x, None],
                         ids=["int", "str", "builtin", "lambda", "none"])
def test_applying_a_non_ptransform_raises_type_error(thing):
    p = beam.Pipeline()
    nums = p | beam.Create([1])
    with pytest.raises(TypeError):
        nums | thing
    with pytest.raises(TypeError):
        p | thing


def test_chained_transforms(runner):
    chain = (beam.Map(lambda x: x + 1)
             | beam.Map(lambda x: x * 10)
             | beam.Filter(lambda x: x > 20))
    with beam.Pipeline(runner=runner) as p:
        nums = p | beam.Create([1, 2, 3])
        assert_that(nums | chain, equal_to([30, 40]), label="chain")
        again = beam.Map(str) | beam.Map(len)
        assert_that(nums | "Labelled" >> again, equal_to([1, 1, 1]), label="labelled")


def test_pipeline_apply_method(runner):
    with beam.Pipeline(runner=runner) as p:
        nums = p.apply(beam.Create([1, 2]), p, label="Nums")
        doubled = nums.apply(beam.Map(lambda x: 2 * x), "Double")
        assert doubled.producer.full_label == "Double"
        assert_that(doubled, equal_to([2, 4]))


@beam.ptransform_fn
def Double(pcoll):
    return pcoll | "Twice" >> beam.Map(lambda x: 2 * x)


@beam.ptransform_fn
def Scale(pcoll, factor, offset=0):
    return pcoll | beam.Map(lambda x: x * factor + offset)


def test_ptransform_fn(runner):
    with beam.Pipeline(runner=runner) as p:
        nums = p | beam.Create([1, 2])
        doubled = nums | Double()
        assert doubled.producer.full_label == "Double/Twice"
        assert_that(doubled, equal_to([2, 4]), label="double")
        assert_that(nums | "S" >> Scale(10, offset=1), equal_to([11, 21]), label="scale")


def test_ptransform_fn_with_different_args_gets_different_labels(runner):
    # Beam labels a ptransform_fn applied with arguments Name(first_arg).
    with beam.Pipeline(runner=runner) as p:
        nums = p | beam.Create([1, 2])
        assert_that(nums | Scale(2), equal_to([2, 4]), label="by2")
        assert_that(nums | Scale(3), equal_to([3, 6]), label="by3")


# ------------------------------------------------------------------------------------ running


def _write_to(path):
    def write(x):
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{x}\n")
    return write


def test_context_manager_runs_on_exit(runner, tmp_path):
    path = str(tmp_path / "out.txt")
    with beam.Pipeline(runner=runner) as p:
        p | beam.Create([1, 2]) | beam.Map(_write_to(path))
        assert not (tmp_path / "out.txt").exists()
    assert sorted(open(path, encoding="utf-8").read().split()) == ["1", "2"]


def test_context_manager_does_not_run_when_the_body_fails(runner, tmp_path):
    path = tmp_path / "out.txt"
    with pytest.raises(KeyError):
        with beam.Pipeline(runner=runner) as p:
            p | beam.Create([1]) | beam.Map(_write_to(str(path)))
            raise KeyError("construction failed")
    assert not path.exists()


def test_run_and_wait_until_finish(runner):
    p = beam.Pipeline(runner=runner)
    assert_that(p | beam.Create([1, 2]) | beam.Map(lambda x: x + 1), equal_to([2, 3]))
    result = p.run()
    assert result.wait_until_finish() == "DONE"
    assert result.state == "DONE"


def test_run_fails_on_failed_assert(runner):
    p = beam.Pipeline(runner=runner)
    assert_that(p | beam.Create([1]), equal_to([2]))
    with pytest.raises(BeamAssertException):
        p.run().wait_until_finish()


def test_test_pipeline(runner):
    with TestPipeline(runner=runner) as p:
        assert_that(p | beam.Create(["a"]) | beam.Map(str.upper), equal_to(["A"]))


def test_empty_pipeline_runs(runner):
    result = beam.Pipeline(runner=runner).run()
    assert result.wait_until_finish() == "DONE"


# -------------------------------------------------------------------------------------- metrics


class Instrumented(beam.DoFn):
    def __init__(self):
        self.seen = Metrics.counter("test", "seen")
        self.sizes = Metrics.distribution("test", "size")
        self.last = Metrics.gauge("test", "last")
        self.by_class = Metrics.counter(Instrumented, "seen")

    def process(self, element):
        self.seen.inc()
        self.by_class.inc(2)
        self.sizes.update(element)
        self.last.set(element)
        yield element


class InstrumentedComposite(beam.PTransform):
    def expand(self, pcoll):
        return pcoll | "Inside" >> beam.ParDo(Instrumented())


def _metrics_result(runner):
    p = beam.Pipeline(runner=runner)
    nums = p | beam.Create([3, 1, 4])
    nums | "First" >> beam.ParDo(Instrumented())
    nums | "Outer" >> InstrumentedComposite()
    result = p.run()
    result.wait_until_finish()
    return result.metrics()


def test_metrics_counters_by_name_namespace_and_step(runner):
    metrics = _metrics_result(runner)
    by_name = metrics.query(MetricsFilter().with_name("seen"))["counters"]
    assert sorted((r.key.step, r.key.metric.namespace, r.result) for r in by_name) == sorted([
        ("First", "test", 3), ("Outer/Inside", "test", 3),
        ("First", f"{__name__}.Instrumented", 6), ("Outer/Inside", f"{__name__}.Instrumented", 6)])
    by_step = metrics.query(MetricsFilter().with_name("seen").with_namespace("test")
                            .with_step("First"))["counters"]
    assert [(r.key.step, r.result) for r in by_step] == [("First", 3)]
    composite = metrics.query(MetricsFilter().with_step("Outer").with_namespace(Instrumented))
    assert [(r.key.step, r.key.metric.name, r.result) for r in composite["counters"]] == [
        ("Outer/Inside", "seen", 6)]
    assert metrics.query(MetricsFilter().with_name("missing"))["counters"] == []


def test_metrics_distributions_and_gauges(runner):
    metrics = _metrics_result(runner)
    found = metrics.query(MetricsFilter().with_step("First").with_namespace("test"))
    (dist,) = found["distributions"]
    assert dist.key.metric.name == "size"
    assert (dist.result.sum, dist.result.count, dist.result.min, dist.result.max) == (8, 3, 1, 4)
    assert dist.result.mean == pytest.approx(8 / 3)
    (gauge,) = found["gauges"]
    assert gauge.key.metric.name == "last"
    assert gauge.result.value in (3, 1, 4)
    everything = metrics.query()
    assert {len(everything["distributions"]), len(everything["gauges"])} == {2}


# -------------------------------------------------------------------------------------- options


def test_unknown_runner_lists_available_runners():
    with pytest.raises(ValueError, match="(?i)direct"):
        beam.Pipeline(runner="no_such_runner")
    with pytest.raises(ValueError, match="(?i)direct"):
        beam.Pipeline(options=PipelineOptions(["--runner=no_such_runner"]))


@pytest.mark.parametrize("name", ["DirectRunner", "headrace.runners.direct.DirectRunner"])
def test_runner_by_beam_name_and_dotted_path(name):
    with beam.Pipeline(options=PipelineOptions([f"--runner={name}"])) as p:
        assert_that(p | beam.Create([1]), equal_to([1]))
    with beam.Pipeline(runner=name) as p:
        assert_that(p | beam.Create([2]), equal_to([2]))


def test_runner_option_is_visible_through_views():
    options = PipelineOptions(["--runner=DirectRunner"])
    assert options.view_as(StandardOptions).runner == "DirectRunner"


class _MyOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--threshold", type=int, default=1)


def test_unknown_flags_are_passed_through(runner):
    options = PipelineOptions(["--threshold=3", "--my_flag=x", "--other", "y", "--bare"])
    assert options.view_as(_MyOptions).threshold == 3
    all_options = options.get_all_options(retain_unknown_options=True)
    assert all_options["my_flag"] == "x"
    assert all_options["other"] == "y"
    assert all_options["bare"] is True
    with beam.Pipeline(runner=runner, options=options) as p:
        assert_that(p | beam.Create([1]), equal_to([1]))


def test_pipeline_options_are_kept(runner):
    options = PipelineOptions(["--threshold=7"])
    p = beam.Pipeline(runner=runner, options=options)
    assert p.options.view_as(_MyOptions).threshold == 7
