"""The trigger API: construction, validation, equality, pickling, continuation, Beam's checks."""
import pickle

import apache_beam
import apache_beam.transforms.trigger as bt
import cloudpickle
import pytest

import headrace as beam
import headrace.transforms.trigger as t
from headrace.sdk.timestamp import Duration
from headrace.sdk.windowing import Windowing
from headrace.window import FixedWindows, GlobalWindows, Sessions


def _all_kinds(m):
    """The same trigger trees, built with either SDK's trigger module ``m``."""
    return [
        m.DefaultTrigger(),
        m.AfterWatermark(),
        m.AfterWatermark(early=m.AfterCount(2)),
        m.AfterWatermark(early=m.AfterProcessingTime(10), late=m.AfterCount(1)),
        m.AfterCount(3),
        m.AfterProcessingTime(5),
        m.Repeatedly(m.AfterCount(2)),
        m.AfterAny(m.AfterCount(2), m.AfterProcessingTime(5)),
        m.AfterAll(m.AfterCount(2), m.AfterWatermark()),
        m.AfterEach(m.AfterCount(2), m.AfterWatermark(late=m.AfterCount(1))),
        m.OrFinally(m.Repeatedly(m.AfterCount(2)), m.AfterCount(5)),
        m.Always(),
    ]


@pytest.mark.parametrize("index", range(len(_all_kinds(t))))
def test_triggers_are_values(index):
    trigger = _all_kinds(t)[index]
    twin = _all_kinds(t)[index]
    assert trigger == twin and hash(trigger) == hash(twin) and not trigger != twin
    assert pickle.loads(pickle.dumps(trigger)) == trigger
    assert cloudpickle.loads(cloudpickle.dumps(trigger)) == trigger
    others = [x for i, x in enumerate(_all_kinds(t)) if i != index]
    assert all(trigger != other for other in others)


@pytest.mark.parametrize("index", range(len(_all_kinds(t))))
def test_like_beam_repr_ontime_pane_and_continuation(index):
    ours, beams = _all_kinds(t)[index], _all_kinds(bt)[index]
    assert repr(ours) == repr(beams)
    assert ours.has_ontime_pane() == bool(beams.has_ontime_pane())
    if not isinstance(ours, t.Always):
        # Beam's private _AfterSynchronizedProcessingTime is public here.
        ours_next = repr(ours.get_continuation_trigger())
        assert (ours_next.replace("AfterSynchronized", "_AfterSynchronized")
                == repr(beams.get_continuation_trigger()))


@pytest.mark.parametrize("lateness", [0, 10])
@pytest.mark.parametrize("index", range(len(_all_kinds(t))))
def test_may_lose_data_like_beam(index, lateness):
    from apache_beam.transforms.core import Windowing as BeamWindowing
    ours, beams = _all_kinds(t)[index], _all_kinds(bt)[index]
    beam_windowing = BeamWindowing(apache_beam.window.FixedWindows(10), beams,
                                   bt.AccumulationMode.DISCARDING, allowed_lateness=lateness)
    windowing = Windowing(FixedWindows(10), allowed_lateness_micros=lateness * 1_000_000,
                          trigger=ours, accumulation_mode=t.AccumulationMode.DISCARDING)
    assert ours.may_lose_data(windowing).name == beams.may_lose_data(beam_windowing).name


def test_accumulation_modes_are_beams():
    assert t.AccumulationMode.DISCARDING == bt.AccumulationMode.DISCARDING
    assert t.AccumulationMode.ACCUMULATING == bt.AccumulationMode.ACCUMULATING


@pytest.mark.parametrize("make, name", [
    (lambda: t.AfterCount(0), "AfterCount"),
    (lambda: t.AfterCount(-2), "AfterCount"),
    (lambda: t.AfterCount(1.5), "AfterCount"),
    (lambda: t.AfterProcessingTime(-1), "AfterProcessingTime"),
    (lambda: t.AfterProcessingTime("5"), "AfterProcessingTime"),
    (lambda: t.Repeatedly(3), "Repeatedly"),
    (lambda: t.Repeatedly(t.AfterCount), "Repeatedly"),
    (lambda: t.AfterAny(), "AfterAny"),
    (lambda: t.AfterAll(t.AfterCount(1), "x"), "AfterAll"),
    (lambda: t.AfterEach(), "AfterEach"),
    (lambda: t.AfterWatermark(early=5), "AfterWatermark"),
], ids=["count0", "count-2", "count1.5", "delay-1", "delay_str", "repeat_int", "repeat_class",
        "any_empty", "all_str", "each_empty", "watermark_int"])
def test_invalid_triggers_name_the_trigger(make, name):
    with pytest.raises((TypeError, ValueError), match=name):
        make()


def test_orfinally_and_processing_time_durations():
    assert t.AfterCount(2).orfinally(t.AfterCount(5)) == t.OrFinally(t.AfterCount(2),
                                                                     t.AfterCount(5))
    assert t.AfterProcessingTime(Duration(micros=1500)).delay_micros == 1500
    assert t.AfterProcessingTime(2.5).delay == 2.5 and t.AfterProcessingTime(3).delay == 3
    assert t.AfterWatermark(early=t.Repeatedly(t.AfterCount(1))).early == t.Repeatedly(
        t.AfterCount(1))


# --------------------------------------------------------------------------- WindowInto


def test_window_into_defaults_like_beam():
    w = beam.WindowInto(FixedWindows(10)).windowing
    assert w.trigger == t.DefaultTrigger()
    assert w.accumulation_mode == t.AccumulationMode.DISCARDING
    assert w.allowed_lateness_micros == 0 and w.late_data_tag is None
    assert Windowing(GlobalWindows()).is_default() and not w.is_default()


def test_window_into_needs_an_accumulation_mode_for_other_triggers():
    # Beam refuses it in batch and streaming alike.
    with pytest.raises(ValueError, match="accumulation_mode must be provided"):
        apache_beam.WindowInto(apache_beam.window.FixedWindows(10), trigger=bt.AfterCount(2))
    with pytest.raises(ValueError, match="accumulation_mode must be provided"):
        beam.WindowInto(FixedWindows(10), trigger=t.AfterCount(2))
    # ...but not for the default trigger.
    beam.WindowInto(FixedWindows(10), trigger=t.DefaultTrigger())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"trigger": "AfterCount(2)"}, TypeError, "trigger"),
    ({"trigger": t.AfterCount}, TypeError, "class AfterCount"),
    ({"trigger": t.AfterCount(1), "accumulation_mode": 7}, ValueError, "accumulation_mode"),
    ({"allowed_lateness": -1}, ValueError, "allowed_lateness"),
    ({"allowed_lateness": "1h"}, TypeError, "allowed_lateness"),
])
def test_window_into_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        beam.WindowInto(FixedWindows(10), **kwargs)


def test_window_into_lateness_as_seconds_or_duration():
    assert beam.WindowInto(FixedWindows(10), allowed_lateness=2.5).windowing \
        .allowed_lateness_micros == 2_500_000
    assert beam.WindowInto(FixedWindows(10), allowed_lateness=Duration(60)).windowing \
        .allowed_lateness_micros == 60_000_000


def test_window_into_accepts_a_windowing_as_beam_does():
    base = Windowing(Sessions(5), trigger=t.AfterCount(3),
                     accumulation_mode=t.AccumulationMode.ACCUMULATING,
                     allowed_lateness_micros=7_000_000)
    w = beam.WindowInto(base).windowing
    assert w == base
    w = beam.WindowInto(base, accumulation_mode=t.AccumulationMode.DISCARDING).windowing
    assert w.accumulation_mode == t.AccumulationMode.DISCARDING and w.trigger == t.AfterCount(3)


def test_grouping_outputs_get_the_continuation_trigger():
    with beam.Pipeline() as p:
        windowed = (p | beam.Create([("a", 1)])
                    | beam.WindowInto(FixedWindows(10),
                                      trigger=t.AfterWatermark(early=t.AfterCount(5)),
                                      accumulation_mode=t.AccumulationMode.ACCUMULATING))
        grouped = windowed | beam.GroupByKey()
        combined = windowed | beam.CombinePerKey(sum)
    for out in (grouped, combined):
        assert out.windowing.trigger == t.AfterWatermark(early=t.AfterCount(1))
        assert out.windowing.accumulation_mode == t.AccumulationMode.ACCUMULATING


@pytest.mark.parametrize("grouping", ["GroupByKey", "CombinePerKey"])
def test_unsafe_triggers_are_refused_like_beam(grouping):
    def apply(sdk, p, trigger_module, options_flags):
        windowed = (p | sdk.Create([("a", 1)])
                    | sdk.WindowInto(sdk.window.FixedWindows(10),
                                     trigger=trigger_module.AfterCount(1),
                                     accumulation_mode=trigger_module.AccumulationMode.DISCARDING))
        return windowed | (sdk.GroupByKey() if grouping == "GroupByKey"
                           else sdk.CombinePerKey(sum))

    for sdk, module in ((apache_beam, bt), (beam, t)):
        p = sdk.Pipeline()
        with pytest.raises(ValueError, match="Unsafe trigger.*may lose data.*MAY_FINISH"):
            apply(sdk, p, module, [])
    p = beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(
        ["--allow_unsafe_triggers"]))
    apply(beam, p, t, [])


def test_windowing_pickles_with_its_trigger():
    w = Windowing(Sessions(5), trigger=t.AfterWatermark(early=t.AfterCount(2)),
                  accumulation_mode=t.AccumulationMode.ACCUMULATING,
                  allowed_lateness_micros=3, late_data_tag="late")
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        back = loads(dumps(w))
        assert back == w and back.late_data_tag == "late"
        assert back.accumulation_mode is t.AccumulationMode.ACCUMULATING
