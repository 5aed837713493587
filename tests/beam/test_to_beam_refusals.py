"""``--runner=beam`` refuses, before anything runs, what Apache Beam cannot express; each
error names the feature and the transform's full label."""
from __future__ import annotations

from typing import Any

import pytest

import headrace as hr
from headrace.sdk.primitives import Read
from headrace.sdk.watermarks import WatermarkStrategy
from headrace.transforms.userstate import (
    BagStateSpec,
    MapStateSpec,
    StateTtl,
)

from .conftest import skip_unless_beam_installed

skip_unless_beam_installed()


def _translate(p: Any) -> None:
    p.runner.beam_pipeline(p, p.options)


def _pipeline() -> Any:
    return hr.Pipeline(runner="beam")


class UsesMapState(hr.DoFn):
    BY_USER = MapStateSpec("by_user")

    def process(self, kv, by_user=hr.DoFn.StateParam(BY_USER)):
        by_user.put(kv[0], kv[1])


class UsesTtl(hr.DoFn):
    BUFFER = BagStateSpec("buffer", ttl=StateTtl(60))

    def process(self, kv, buffer=hr.DoFn.StateParam(BUFFER)):
        buffer.add(kv[1])


def test_map_state_is_refused_naming_the_transform():
    p = _pipeline()
    _ = p | hr.Create([("k", 1)]) | "Outer" >> hr.ParDo(UsesMapState())
    with pytest.raises(NotImplementedError, match=r"^Outer: MapStateSpec 'by_user' \(MapState\)"):
        _translate(p)


def test_state_ttl_is_refused_naming_the_transform():
    p = _pipeline()
    _ = p | hr.Create([("k", 1)]) | "WithTtl" >> hr.ParDo(UsesTtl())
    with pytest.raises(NotImplementedError, match=r"^WithTtl: state time-to-live"):
        _translate(p)


def test_late_data_output_is_refused_naming_the_transform():
    p = _pipeline()
    _ = (p | hr.Create([1])
         | "Window" >> hr.WindowInto(hr.window.FixedWindows(10)).with_late_data_output("late"))
    with pytest.raises(NotImplementedError, match=r"^Window: .*with_late_data_output\('late'\)"):
        _translate(p)


def test_idleness_is_refused_naming_the_transform():
    p = _pipeline()
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(5).with_idleness(10)
    _ = p | "Idle" >> Read(_in_memory([1])).with_watermark_strategy(strategy)
    with pytest.raises(NotImplementedError, match=r"^Idle: watermark idleness"):
        _translate(p)


def _in_memory(values: list) -> Any:
    from headrace.transforms.create import InMemorySource
    return InMemorySource(values)


def test_refusal_happens_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"

    def touch(x):
        marker.write_text("ran")
        return x

    p = _pipeline()
    _ = p | hr.Create([("k", 1)]) | hr.Map(touch) | "Bad" >> hr.ParDo(UsesMapState())
    with pytest.raises(NotImplementedError, match="Bad"):
        p.run()
    assert not marker.exists()
