"""Mistakes in stateful DoFns: clear errors that name the transform (hand-written cases).

Beam's own checks keep Beam's wording (duplicate names, a TimerSpec without
callback, an overwritten callback, non-keyed input); the others say what to
declare instead.
"""
import pickle

import cloudpickle
import pytest

import headrace as beam
from headrace.sdk.timestamp import Duration
from headrace.testing.test_stream import TestStream
from headrace.transforms.timeutil import TimeDomain
from headrace.transforms.userstate import (
    BagStateSpec,
    CombiningValueStateSpec,
    MapStateSpec,
    ReadModifyWriteStateSpec,
    SetStateSpec,
    StateTtl,
    TimerSpec,
    get_dofn_specs,
    is_stateful_dofn,
    on_timer,
    validate_stateful_dofn,
)

from .userstate_support import wire_stateful_pardo


@pytest.fixture(autouse=True)
def _wired(monkeypatch):
    wire_stateful_pardo(monkeypatch)


def run_keyed(fn, elements=(("k", 1),), label="Stateful"):
    with beam.Pipeline() as p:
        _ = p | beam.Create(list(elements)) | label >> beam.ParDo(fn)


class Base(beam.DoFn):
    BUFFER = BagStateSpec("buffer")
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def process(self, kv, buffer=beam.DoFn.StateParam(BUFFER),
                flush=beam.DoFn.TimerParam(FLUSH)):
        buffer.add(kv[1])
        flush.set(0)

    @on_timer(FLUSH)
    def on_flush(self, buffer=beam.DoFn.StateParam(BUFFER)):
        yield sorted(buffer.read())


OTHER_STATE = BagStateSpec("other")
OTHER_TIMER = TimerSpec("other", TimeDomain.WATERMARK)


def test_state_param_whose_spec_the_dofn_does_not_declare():
    class UsesForeignState(beam.DoFn):
        MINE = BagStateSpec("mine")

        def process(self, kv, mine=beam.DoFn.StateParam(MINE),
                    other=beam.DoFn.StateParam(OTHER_STATE)):
            yield kv

    with pytest.raises(ValueError, match=r"'Stateful': UsesForeignState.process: parameter "
                                         r"'other' asks for state BagStateSpec\(other\), which "
                                         r"UsesForeignState does not declare \(it declares MINE\)"):
        run_keyed(UsesForeignState())


def test_timer_param_in_a_dofn_that_declares_no_timers():
    class NoTimers(beam.DoFn):
        COUNT = CombiningValueStateSpec("count", sum)

        def process(self, kv, count=beam.DoFn.StateParam(COUNT),
                    timer=beam.DoFn.TimerParam(OTHER_TIMER)):
            timer.set(10)

    with pytest.raises(ValueError, match="'Stateful': NoTimers.process: parameter 'timer' asks "
                                         r"for timer TimerSpec\(ts-other\), but NoTimers "
                                         "declares no timers"):
        run_keyed(NoTimers())


def test_specs_made_outside_the_class_are_declared_by_use():
    """Beam's GroupIntoBatches style: specs local to a function, used as defaults."""
    def make():
        buffer = BagStateSpec("buffer")
        flush = TimerSpec("flush", TimeDomain.WATERMARK)

        class Fn(beam.DoFn):
            def process(self, kv, b=beam.DoFn.StateParam(buffer),
                        t=beam.DoFn.TimerParam(flush)):
                b.add(kv[1])
                t.set(0)

            @on_timer(flush)
            def on_flush(self, b=beam.DoFn.StateParam(buffer)):
                yield sorted(b.read())

        return Fn()

    validate_stateful_dofn(make())
    run_keyed(make())


def test_on_timer_for_an_undeclared_timer():
    class Stray(beam.DoFn):
        BUFFER = BagStateSpec("buffer")

        def process(self, kv, buffer=beam.DoFn.StateParam(BUFFER)):
            buffer.add(kv)

        @on_timer(TimerSpec("stray", TimeDomain.WATERMARK))
        def on_stray(self):
            yield "never"

    with pytest.raises(ValueError, match=r"'Stateful': Stray.on_stray is an @on_timer callback "
                                         r"for TimerSpec\(ts-stray\), but Stray declares no "
                                         "such timer"):
        run_keyed(Stray())


def test_duplicate_state_names():
    class Duplicates(beam.DoFn):
        A = BagStateSpec("same")
        B = ReadModifyWriteStateSpec("same")
        T = TimerSpec("t", TimeDomain.WATERMARK)

        def process(self, kv, a=beam.DoFn.StateParam(A), t=beam.DoFn.TimerParam(T)):
            yield kv

        @on_timer(T)
        def on_t(self, b=beam.DoFn.StateParam(B)):
            yield b.read()

    with pytest.raises(ValueError, match=r"'Stateful': DoFn Duplicates has multiple StateSpecs "
                                         r"with the same name: \['same'\]"):
        run_keyed(Duplicates())


def test_duplicate_timer_names():
    class Duplicates(beam.DoFn):
        A = TimerSpec("t", TimeDomain.WATERMARK)
        B = TimerSpec("t", TimeDomain.REAL_TIME)

        def process(self, kv, a=beam.DoFn.TimerParam(A)):
            yield kv

        @on_timer(A)
        def on_a(self, b=beam.DoFn.TimerParam(B)):
            yield 1

        @on_timer(B)
        def on_b(self):
            yield 2

    with pytest.raises(ValueError, match="multiple TimerSpecs with the same name"):
        validate_stateful_dofn(Duplicates())


def test_duplicate_parameters_in_one_method():
    class Twice(beam.DoFn):
        BUFFER = BagStateSpec("buffer")

        def process(self, kv, a=beam.DoFn.StateParam(BUFFER),
                    b=beam.DoFn.StateParam(BUFFER)):
            yield kv

    with pytest.raises(ValueError, match=r"DoFn Twice has duplicate process method parameters: "
                                         r"\['StateParam\(buffer\)', 'StateParam\(buffer\)'\]"):
        run_keyed(Twice())


@pytest.mark.parametrize("element", [1, "ab", ("only-one",), ("a", "b", "c"), None])
def test_stateful_dofn_on_non_keyed_elements(element):
    with pytest.raises(TypeError, match=r"Input elements to the transform 'Stateful' with "
                                        r"stateful DoFn must be key-value pairs.*state used in "
                                        r"a non-keyed DoFn"):
        run_keyed(Base(), [element])


def test_non_deterministic_key():
    class Opaque:
        pass

    with pytest.raises(Exception, match="Opaque") as info:
        run_keyed(Base(), [(Opaque(), 1)])
    assert "Stateful" in str(info.value)


def test_timer_spec_without_callback():
    class NoCallback(beam.DoFn):
        T = TimerSpec("t", TimeDomain.WATERMARK)

        def process(self, kv, t=beam.DoFn.TimerParam(T)):
            t.set(1)

    with pytest.raises(ValueError, match=r"DoFn NoCallback has a TimerSpec without an "
                                         r"associated on_timer callback: TimerSpec\(ts-t\)."):
        run_keyed(NoCallback())


def test_overwritten_callback():
    class Overwritten(beam.DoFn):
        T1 = TimerSpec("t1", TimeDomain.WATERMARK)
        T2 = TimerSpec("t2", TimeDomain.WATERMARK)

        def process(self, kv, t1=beam.DoFn.TimerParam(T1), t2=beam.DoFn.TimerParam(T2)):
            pass

        @on_timer(T1)
        def on_expiry(self):
            yield 1

        @on_timer(T2)
        def on_expiry(self):  # noqa: F811 (the mistake under test)
            yield 2

    with pytest.raises(ValueError, match=r"The on_timer callback for TimerSpec\(ts-t1\) is not "
                                         r"the specified .on_expiry method for DoFn Overwritten "
                                         r"\(perhaps it was overwritten\?\)."):
        validate_stateful_dofn(Overwritten())


def test_two_callbacks_for_one_timer():
    with pytest.raises(ValueError, match=r"Multiple on_timer callbacks registered for "
                                         r"TimerSpec\(ts-t\)."):
        class Twice(beam.DoFn):  # noqa: F841
            T = TimerSpec("t", TimeDomain.WATERMARK)

            @on_timer(T)
            def first(self):
                pass

            @on_timer(T)
            def second(self):
                pass


def test_wrong_spec_kinds_in_params():
    class StateFromTimer(beam.DoFn):
        T = TimerSpec("t", TimeDomain.WATERMARK)

        def process(self, kv, s=beam.DoFn.StateParam(T)):
            pass

    class TimerFromState(beam.DoFn):
        S = BagStateSpec("s")

        def process(self, kv, t=beam.DoFn.TimerParam(S)):
            pass

    with pytest.raises(ValueError, match="DoFn.StateParam expects a StateSpec"):
        run_keyed(StateFromTimer())
    with pytest.raises(ValueError, match="DoFn.TimerParam expects a TimerSpec"):
        run_keyed(TimerFromState())


def test_context_params_where_they_cannot_be():
    class TagInProcess(Base):
        def process(self, kv, tag=beam.DoFn.DynamicTimerTagParam,
                    buffer=beam.DoFn.StateParam(Base.BUFFER)):
            pass

    class ElementInCallback(Base):
        @on_timer(TimerSpec("late", TimeDomain.WATERMARK))
        def on_late(self, element=beam.DoFn.ElementParam):
            pass

    class PositionalCallback(beam.DoFn):
        T = TimerSpec("t", TimeDomain.WATERMARK)

        def process(self, kv, t=beam.DoFn.TimerParam(T)):
            pass

        @on_timer(T)
        def on_t(self, element):
            pass

    class StateInStartBundle(Base):
        def start_bundle(self, buffer=beam.DoFn.StateParam(Base.BUFFER)):
            pass

    with pytest.raises(ValueError, match="TagInProcess.process asks for "
                                         "DoFn.DynamicTimerTagParam"):
        validate_stateful_dofn(TagInProcess(), "T")
    with pytest.raises(ValueError, match="timer callback gets no element"):
        validate_stateful_dofn(ElementInCallback(), "T")
    with pytest.raises(ValueError, match="its parameter 'element' has no default"):
        validate_stateful_dofn(PositionalCallback(), "T")
    with pytest.raises(ValueError, match="StateInStartBundle.start_bundle asks for "
                                         r"StateParam\(BagStateSpec\(buffer\)\)"):
        validate_stateful_dofn(StateInStartBundle(), "T")


def test_timer_output_timestamp_rules():
    class Fn(beam.DoFn):
        T = TimerSpec("t", TimeDomain.WATERMARK)

        def process(self, kv, t=beam.DoFn.TimerParam(T)):
            if kv[1] == "before-input":
                t.set(20, output_timestamp=4)
            else:
                t.set(20, output_timestamp=21)

        @on_timer(T)
        def on_t(self):
            pass

    for command, message in (("before-input", "is before the timestamp of the current input"),
                             ("after-firing", "is after the firing time")):
        with pytest.raises(ValueError, match=message):
            with beam.Pipeline() as p:
                _ = (p | TestStream().add_elements([beam.window.TimestampedValue(
                    ("k", command), 5)]) | beam.ParDo(Fn()))


def test_dynamic_timer_tag_must_be_a_string():
    class Fn(Base):
        def process(self, kv, flush=beam.DoFn.TimerParam(Base.FLUSH)):
            flush.set(5, dynamic_timer_tag=3)

    with pytest.raises(TypeError, match="dynamic_timer_tag must be a str"):
        run_keyed(Fn())


def test_spec_construction_errors():
    with pytest.raises(TypeError, match="name is not a string"):
        BagStateSpec(123)
    with pytest.raises(TypeError, match="coder is not of type Coder"):
        SetStateSpec("s", object())
    with pytest.raises(TypeError, match="CombineFn or a callable"):
        CombiningValueStateSpec("c", beam.coders.VarIntCoder(), object())
    with pytest.raises(ValueError, match="combine_fn must be provided"):
        CombiningValueStateSpec("c")
    with pytest.raises(ValueError, match="Unsupported TimeDomain"):
        TimerSpec("t", "bogus_time_domain")
    with pytest.raises(ValueError, match="Unsupported TimeDomain"):
        TimerSpec("t", TimeDomain.DEPENDENT_REAL_TIME)
    with pytest.raises(ValueError, match="not deterministic"):
        MapStateSpec("m", key_coder=beam.coders.PickleCoder())
    with pytest.raises(ValueError, match="expected TimerSpec"):
        on_timer(BagStateSpec("b"))
    spec = CombiningValueStateSpec("c", beam.coders.VarIntCoder(), sum)
    assert spec.coder == beam.coders.VarIntCoder() and spec.combine_fn.apply([1, 2]) == 3
    assert TimerSpec("t", TimeDomain.REAL_TIME).name == "ts-t"  # Beam's prefix
    assert MapStateSpec("m", ttl=StateTtl(Duration(1))).ttl.ttl_micros == 1_000_000


def test_stateful_detection():
    assert not is_stateful_dofn(beam.DoFn())
    assert is_stateful_dofn(Base())
    assert get_dofn_specs(Base()) == ({Base.BUFFER}, {Base.FLUSH})
    assert not is_stateful_dofn(object())


def test_specs_keep_their_identity_when_pickled():
    class Sub(Base):  # pickled by value; Base (importable) by reference
        def process(self, kv, buffer=beam.DoFn.StateParam(Base.BUFFER)):
            buffer.add(kv)

    sub = pickle.loads(cloudpickle.dumps(Sub()))
    default = type(sub).process.__defaults__[0].spec
    assert default is Base.BUFFER
    validate_stateful_dofn(sub)

    def local():
        class Local(beam.DoFn):  # entirely by value: a consistent copy
            S = BagStateSpec("s")

            def process(self, kv, s=beam.DoFn.StateParam(S)):
                pass

        return Local()

    copy = pickle.loads(cloudpickle.dumps(local()))
    assert type(copy).process.__defaults__[0].spec is type(copy).S
