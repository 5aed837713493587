"""User-facing errors: failures in user code, bad keys, unpicklable code, misuse of the API.

Every failing pipeline here must fail promptly (none may hang), with an error that names the
transform and keeps the user's exception type and traceback, as Beam does.
"""
import threading
import traceback

import pytest

import headrace as beam
from headrace.testing.util import BeamAssertException, assert_that, equal_to, is_empty

from .helpers import run_fails


class CodedError(Exception):
    """A user exception whose constructor takes more than a message."""

    def __init__(self, message, code):
        super().__init__(message, code)
        self.code = code


def fail_in_user_code(x, *unused):
    raise ZeroDivisionError(f"user failure on {x!r}")


class FailingDoFn(beam.DoFn):
    def __init__(self, where, exc_type=ZeroDivisionError):
        self.where = where
        self.exc_type = exc_type

    def _maybe_fail(self, where):
        if where == self.where:
            raise self.exc_type(f"user failure in {where}")

    def setup(self):
        self._maybe_fail("setup")

    def start_bundle(self):
        self._maybe_fail("start_bundle")

    def process(self, element):
        self._maybe_fail("process")
        yield element

    def finish_bundle(self):
        self._maybe_fail("finish_bundle")


class FailingCombineFn(beam.CombineFn):
    def create_accumulator(self):
        return 0

    def add_input(self, acc, x):
        if x == 2:
            raise ZeroDivisionError("user failure in add_input")
        return acc + x

    def merge_accumulators(self, accs):
        return sum(accs)

    def extract_output(self, acc):
        return acc


class Wrapper(beam.PTransform):
    """Puts the failing transform inside a composite, so its full label is ``Outer/Fail``."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def expand(self, pcoll):
        return pcoll | "Fail" >> self.make()


USER_FAILURES = {
    "map": (lambda: beam.Map(fail_in_user_code), "fail_in_user_code"),
    "flatmap": (lambda: beam.FlatMap(fail_in_user_code), "fail_in_user_code"),
    "filter": (lambda: beam.Filter(fail_in_user_code), "fail_in_user_code"),
    "process": (lambda: beam.ParDo(FailingDoFn("process")), "_maybe_fail"),
    "start_bundle": (lambda: beam.ParDo(FailingDoFn("start_bundle")), "_maybe_fail"),
    "finish_bundle": (lambda: beam.ParDo(FailingDoFn("finish_bundle")), "_maybe_fail"),
    "setup": (lambda: beam.ParDo(FailingDoFn("setup")), "_maybe_fail"),
    "combine_add_input": (lambda: beam.CombinePerKey(FailingCombineFn()), "add_input"),
    "combine_globally": (lambda: beam.CombineGlobally(FailingCombineFn()), "add_input"),
}


@pytest.mark.parametrize("case", list(USER_FAILURES))
def test_user_code_failure_keeps_type_label_and_traceback(runner, case):
    make, function_name = USER_FAILURES[case]
    needs_kv = case == "combine_add_input"

    def build(p):
        nums = p | beam.Create([("k", 1), ("k", 2)] if needs_kv else [1, 2])
        nums | "Outer" >> Wrapper(make)

    info = run_fails(build, runner, ZeroDivisionError)
    assert "Outer/Fail" in str(info.value)
    assert "user failure" in str(info.value)
    frames = traceback.extract_tb(info.value.__traceback__)
    assert any(f.name == function_name and f.filename == __file__ for f in frames), \
        [(f.filename, f.name) for f in frames]


@pytest.mark.parametrize("exc_type", [KeyError, ValueError, CodedError, BeamAssertException],
                         ids=lambda t: t.__name__)
def test_user_exception_types_are_kept(runner, exc_type):
    class Raise(beam.DoFn):
        def process(self, element):
            if exc_type is CodedError:
                raise CodedError("user failure", 42)
            raise exc_type("user failure")

    info = run_fails(lambda p: p | beam.Create([1]) | "Raiser" >> beam.ParDo(Raise()), runner,
                     exc_type)
    assert "Raiser" in str(info.value)
    if exc_type is CodedError:
        assert info.value.args[1] == 42


def test_failure_downstream_names_the_failing_transform(runner):
    def build(p):
        (p | beam.Create([1]) | "First" >> beam.Map(lambda x: x)
           | "Second" >> beam.Map(fail_in_user_code))

    info = run_fails(build, runner, ZeroDivisionError)
    assert "Second" in str(info.value)
    assert "First" not in str(info.value)


# ------------------------------------------------------------------------------- bad GroupByKey


@pytest.mark.parametrize("element", [5, (1, 2, 3), "ab", None], ids=["int", "triple", "str",
                                                                     "none"])
def test_group_by_key_needs_pairs(runner, element):
    def build(p):
        p | beam.Create([("ok", 1), element]) | "MyGBK" >> beam.GroupByKey()

    info = run_fails(build, runner, TypeError)
    assert "MyGBK" in str(info.value)
    assert repr(element) in str(info.value)


def test_group_by_key_needs_pairs_after_a_map(runner):
    def build(p):
        p | beam.Create([1]) | beam.Map(lambda x: [x] * 3) | "MyGBK" >> beam.GroupByKey()

    info = run_fails(build, runner, TypeError)
    assert "MyGBK" in str(info.value)
    assert "[1, 1, 1]" in str(info.value)


class Opaque:
    """Compared by identity: no deterministic encoding."""


@pytest.mark.parametrize("key", [Opaque(), (1, Opaque())], ids=["object", "nested"])
def test_non_deterministic_keys_are_refused(runner, key):
    # Beam refuses them too (dicts and sets, by contrast, are grouped by their contents).
    def build(p):
        p | beam.Create([(key, 1)]) | "MyGBK" >> beam.GroupByKey()

    info = run_fails(build, runner, TypeError)
    assert "Opaque" in str(info.value)
    assert "MyGBK" in str(info.value)


def test_non_deterministic_key_in_combine_per_key(runner):
    info = run_fails(lambda p: p | beam.Create([(Opaque(), 1)]) | "Sum" >> beam.CombinePerKey(sum),
                     runner, TypeError)
    assert "Opaque" in str(info.value)


# ------------------------------------------------------------------------ unpicklable user code


_LOCK = threading.Lock()


def _locked_closure():
    lock = threading.Lock()
    return lambda x: (lock, x)[1]


class LockedDoFn(beam.DoFn):
    def __init__(self):
        self.lock = threading.Lock()

    def process(self, element):
        yield element


class LockedCombineFn(FailingCombineFn):
    def __init__(self):
        self.lock = threading.Lock()


@pytest.mark.parametrize("make", [
    lambda: beam.Map(_locked_closure()),
    lambda: beam.ParDo(LockedDoFn()),
    lambda: beam.Map(lambda x, lock: x, _LOCK),
    lambda: beam.CombinePerKey(LockedCombineFn()),
], ids=["closure", "dofn", "argument", "combinefn"])
def test_unpicklable_user_code_fails_at_construction(make):
    p = beam.Pipeline()
    nums = p | beam.Create([("k", 1)])
    with pytest.raises(TypeError, match="Locked"):
        nums | "Locked" >> make()


# --------------------------------------------------------------------------- API misuse (eager)


class NotADoFn:
    def process(self, element):
        yield element


def test_pardo_needs_a_dofn_instance():
    with pytest.raises(TypeError):
        beam.ParDo(NotADoFn())
    with pytest.raises(TypeError):
        beam.ParDo(5)
    with pytest.raises(ValueError, match=r"FailingDoFn\(\)"):
        beam.ParDo(FailingDoFn)


@pytest.mark.parametrize("factory", [beam.Map, beam.FlatMap, beam.Filter, beam.MapTuple,
                                     beam.FlatMapTuple])
def test_callable_transforms_need_a_callable(factory):
    with pytest.raises(TypeError, match="callable"):
        factory(5)


def test_raw_pcollection_as_an_argument_is_refused():
    p = beam.Pipeline()
    side = p | "Side" >> beam.Create([1])
    nums = p | "Nums" >> beam.Create([1])
    with pytest.raises(Exception, match="AsSingleton"):
        nums | beam.Map(lambda x, s: x, side)
    with pytest.raises(Exception, match="AsSingleton"):
        nums | "Kw" >> beam.Map(lambda x, s: x, s=side)


# ------------------------------------------------------------------------------ singleton views


def test_singleton_view_of_many_elements_fails(runner):
    def build(p):
        side = p | "Side" >> beam.Create([1, 2])
        p | "Main" >> beam.Create([0]) | "Use" >> beam.Map(lambda x, s: x + s,
                                                            beam.pvalue.AsSingleton(side))

    info = run_fails(build, runner, ValueError)
    assert "more than one element accessed as a singleton view" in str(info.value)
    assert "Use" in str(info.value)


def test_singleton_view_of_empty_pcollection(runner):
    # Beam passes an EmptySideInput marker when there is no element and no default.
    with beam.Pipeline(runner=runner) as p:
        side = p | "Side" >> beam.Create([])
        out = p | "Main" >> beam.Create([0]) | beam.Map(
            lambda x, s: isinstance(s, beam.pvalue.EmptySideInput), beam.pvalue.AsSingleton(side))
        assert_that(out, equal_to([True]))


@pytest.mark.parametrize("default", [7, None, []], ids=["int", "none", "list"])
def test_singleton_view_default_value(runner, default):
    with beam.Pipeline(runner=runner) as p:
        side = p | "Side" >> beam.Create([])
        out = p | "Main" >> beam.Create([0]) | beam.Map(
            lambda x, s: (x, s), beam.pvalue.AsSingleton(side, default_value=default))
        assert_that(out, equal_to([(0, default)]))


# ----------------------------------------------------------------------------- tagged outputs


def test_undeclared_tagged_output_is_dropped(runner):
    # As in Beam: a ParDo without with_outputs() has only its main output.
    def fn(x):
        yield x
        yield beam.pvalue.TaggedOutput("extra", -x)

    with beam.Pipeline(runner=runner) as p:
        assert_that(p | beam.Create([1, 2]) | beam.FlatMap(fn), equal_to([1, 2]))


def test_tagged_output_tag_must_be_a_string():
    with pytest.raises(TypeError):
        beam.pvalue.TaggedOutput(1, "x")


# --------------------------------------------------------------------------------- assert_that


def test_failed_assert_names_missing_and_unexpected_elements(runner):
    def build(p):
        assert_that(p | beam.Create([1, 3, 3]), equal_to([1, 2, 3]))

    message = str(run_fails(build, runner, BeamAssertException).value)
    assert "unexpected elements [3]" in message
    assert "missing elements [2]" in message


def test_failed_assert_with_unhashable_elements(runner):
    def build(p):
        assert_that(p | beam.Create([[1], [3]]), equal_to([[1], [2]]))

    message = str(run_fails(build, runner, BeamAssertException).value)
    assert "unexpected elements [[3]]" in message
    assert "missing elements [[2]]" in message


def test_failed_is_empty(runner):
    run_fails(lambda p: assert_that(p | beam.Create([1]), is_empty()), runner,
              BeamAssertException)


def test_custom_matcher_failure(runner):
    def at_least_three(actual):
        if len(actual) < 3:
            raise BeamAssertException(f"too few: {len(actual)}")

    run_fails(lambda p: assert_that(p | beam.Create([1]), at_least_three), runner,
              BeamAssertException, match="too few: 1")
