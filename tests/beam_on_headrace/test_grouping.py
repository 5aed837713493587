"""Around a grouping, HeadraceRunner does what Beam's runners do: keys headrace cannot encode
are grouped by Beam's key coder, and grouped outputs carry millisecond timestamps."""
from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import TypeOptions
from apache_beam.testing.util import assert_that, equal_to

from headrace.runners.beam.from_beam_grouping import BeamCodedKey, BeamGroupedOutput
from headrace.sdk.coders import decode_key, encode_key


class _ByIdentity:
    """Compared by identity: headrace has no encoding of its own for it."""

    def __init__(self, value):
        self.value = value


def test_non_deterministic_key_coders_when_the_pipeline_allows_them(make_pipeline):
    p = make_pipeline()
    p._options.view_as(TypeOptions).allow_non_deterministic_key_coders = True
    with p:
        pairs = p | beam.Create([(_ByIdentity(10), 1), (_ByIdentity(10), 2),
                                 (_ByIdentity(11), 3)])
        grouped = (pairs | beam.GroupByKey()
                   | beam.MapTuple(lambda k, vs: (k.value, sorted(vs))))
        assert_that(grouped, equal_to([(10, [1, 2]), (11, [3])]), label="gbk")
        summed = (pairs | beam.CombinePerKey(sum)
                  | beam.MapTuple(lambda k, total: (k.value, total)))
        assert_that(summed, equal_to([(10, 3), (11, 3)]), label="combine")


def test_row_key_with_a_field_beam_pickles(make_pipeline):
    with make_pipeline() as p:
        out = (p | beam.Create(["a", "a", "b"])
               | beam.Map(lambda s: beam.Row(key1=_ByIdentity(s), key2=s.upper(), value=0))
               | beam.GroupBy("key1", "key2")
               | beam.MapTuple(lambda k, vs: (k.key1.value, k.key2, len(list(vs)))))
        assert_that(out, equal_to([("a", "A", 2), ("b", "B", 1)]))


def test_without_beam_permission_the_key_is_still_refused():
    from headrace.runners.beam.headrace_runner import HeadraceRunner

    p = beam.Pipeline(runner=HeadraceRunner())
    _ = p | beam.Create([(_ByIdentity(10), 1)]) | beam.GroupByKey()
    with pytest.raises(TypeError, match="compares by identity"):
        p.run()


def test_coded_keys_survive_headrace_key_encoding():
    key = BeamCodedKey(b"\x01abc", "original")
    decoded = decode_key(encode_key(key))
    assert decoded == key and encode_key(decoded) == encode_key(key)

    class _Coder:
        def decode(self, encoded):
            return encoded.decode()

    class _Ts:
        micros = 5_000

    out = BeamGroupedOutput(_Coder()).process((decoded, [1]), _Ts(), None, None)
    assert list(out) == [("\x01abc", [1])]


class _Stamp(beam.DoFn):
    def process(self, element, ts=beam.DoFn.TimestampParam):
        yield element if not isinstance(element, tuple) else element[0], ts.micros


def test_grouped_outputs_have_millisecond_timestamps(make_pipeline):
    with make_pipeline() as p:
        timed = (p | beam.Create([("a", 1), ("b", 2)])
                 | beam.Map(lambda kv: beam.window.TimestampedValue(kv, 1.000123)))
        # In one fused stage Beam keeps microseconds; a grouping is a stage boundary.
        assert_that(timed | "Before" >> beam.ParDo(_Stamp()),
                    equal_to([("a", 1_000_123), ("b", 1_000_123)]), label="before")
        windowed = timed | beam.WindowInto(beam.window.FixedWindows(10))
        grouped = windowed | beam.GroupByKey() | "AfterGbk" >> beam.ParDo(_Stamp())
        assert_that(grouped, equal_to([("a", 9_999_000), ("b", 9_999_000)]), label="gbk")
        combined = windowed | beam.CombinePerKey(sum) | "AfterCombine" >> beam.ParDo(_Stamp())
        assert_that(combined, equal_to([("a", 9_999_000), ("b", 9_999_000)]),
                    label="combine")
        earliest = (timed | "Earliest" >> beam.WindowInto(
                        beam.window.FixedWindows(10),
                        timestamp_combiner=beam.window.TimestampCombiner.OUTPUT_AT_EARLIEST)
                    | "GbkEarliest" >> beam.GroupByKey()
                    | "AfterEarliest" >> beam.ParDo(_Stamp()))
        assert_that(earliest, equal_to([("a", 1_000_000), ("b", 1_000_000)]),
                    label="earliest")


def test_key_coder_from_beam_registry_fallback(make_pipeline):
    from unittest.mock import patch

    fresh = beam.coders.typecoders.CoderRegistry()
    with patch.object(beam.coders, "registry", fresh), \
            patch.object(beam.coders.typecoders, "registry", fresh):
        fresh.register_fallback_coder(beam.coders.coders.FakeDeterministicFastPrimitivesCoder())
        with make_pipeline() as p:
            out = (p | beam.Create([(_ByIdentity(10), 1), (_ByIdentity(10), 2)])
                   | beam.GroupByKey() | beam.MapTuple(lambda k, vs: (k.value, sorted(vs))))
            assert_that(out, equal_to([(10, [1, 2])]))


class _CountPerKey(beam.DoFn):
    COUNT = beam.transforms.userstate.ReadModifyWriteStateSpec("count", beam.coders.VarIntCoder())
    DONE = beam.transforms.userstate.TimerSpec("done", beam.TimeDomain.WATERMARK)

    def process(self, kv, count=beam.DoFn.StateParam(COUNT), key=beam.DoFn.KeyParam,
                done=beam.DoFn.TimerParam(DONE), window=beam.DoFn.WindowParam):
        n = (count.read() or 0) + 1
        count.write(n)
        done.set(window.max_timestamp())
        yield key.name.value, kv[0].name.value, n

    @beam.transforms.userstate.on_timer(DONE)
    def on_done(self, key=beam.DoFn.KeyParam, count=beam.DoFn.StateParam(COUNT)):
        yield "total", key.name.value, count.read()


def test_stateful_dofn_keys_by_beam_coder(make_pipeline_mp):
    if make_pipeline_mp.runner_name == "beam":
        pytest.skip("Beam 2.77's DirectRunner fails on Row keys of stateful DoFns "
                    "(TypeError: unhashable type: 'dict_items')")
    with make_pipeline_mp() as p:
        out = (p | beam.Create(["a", "a", "b"])
               | beam.Map(lambda s: (beam.Row(name=_ByIdentity(s), upper=s.upper()), 0))
               | beam.ParDo(_CountPerKey()))
        assert_that(out, equal_to([("a", "a", 1), ("a", "a", 2), ("b", "b", 1),
                                   ("total", "a", 2), ("total", "b", 1)]))
