"""``--runner=beam`` on streaming pipelines: TestStream with triggers (tests/streaming's pane
scenarios) and stateful DoFns with timers (tests/streaming/test_userstate.py's builders) give,
pane for pane and element for element, what headrace's direct runner gives.

Each scenario is one Beam pipeline (one TestStream each) on Beam's BundleBasedDirectRunner.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from streaming import test_triggers as triggers
from streaming import test_userstate as userstate
from streaming.pane_parity import run_panes
from streaming.userstate_support import append_line, read_lines, wire_stateful_pardo

import headrace

from .conftest import skip_unless_beam_installed

skip_unless_beam_installed()

w = triggers
SCENARIOS: Dict[str, tuple] = {
    # early (count) and late firings, GroupByKey and CombinePerKey, both accumulation modes
    "early_late_discarding": (w.EARLY_LATE, w.windowed(
        w.fixed(10), lambda t: t.AfterWatermark(early=t.AfterCount(2), late=t.AfterCount(1)),
        "DISCARDING", lateness=20)),
    "early_late_accumulating": (w.EARLY_LATE, w.windowed(
        w.fixed(10), lambda t: t.AfterWatermark(early=t.AfterCount(2), late=t.AfterCount(1)),
        "ACCUMULATING", lateness=20)),
    "early_late_combined_accumulating": (w.EARLY_LATE, w.windowed(
        w.fixed(10), lambda t: t.AfterWatermark(early=t.AfterCount(2), late=t.AfterCount(1)),
        "ACCUMULATING", lateness=20, combine=True)),
    # processing-time early firings
    "early_processing_time": (w.PROCESSING_THEN_LATE, w.windowed(
        w.fixed(100), lambda t: t.AfterWatermark(early=t.AfterProcessingTime(5),
                                                 late=t.AfterCount(1)),
        "ACCUMULATING", lateness=300)),
    # allowed lateness and expiry
    "lateness_expiry": (w.LATENESS, w.windowed(w.fixed(10), lambda t: t.DefaultTrigger(),
                                               "DISCARDING", lateness=5)),
    # merging windows, with an earliest-timestamp CombinePerKey
    "sessions_late_merge": (w.SESSIONS_LATE_MERGE, w.windowed(
        lambda win: win.Sessions(5), lambda t: t.DefaultTrigger(), "ACCUMULATING",
        lateness=30, combiner="OUTPUT_AT_EARLIEST", combine=True)),
    # composite triggers
    "after_each": (w.COUNTED[:10] + [("watermark", 100), ("infinity",)], w.windowed(
        w.fixed(100), lambda t: t.Repeatedly(t.AfterEach(t.AfterCount(2), t.AfterCount(3))),
        "DISCARDING")),
    "sliding_early": ([("elements", w._kv("k", (1, 1), (2, 6))), ("elements", w._kv("k", (3, 7))),
                       ("watermark", 10), ("elements", w._kv("k", (4, 8))), ("infinity",)],
                      w.windowed(lambda win: win.SlidingWindows(10, 5),
                                 lambda t: t.AfterWatermark(early=t.AfterCount(2),
                                                            late=t.AfterCount(1)),
                                 "DISCARDING", lateness=10)),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_panes_same_on_beam_as_on_direct(name, tmp_path):
    script, build = SCENARIOS[name]
    direct, _ = run_panes(headrace, script, build, runner="direct", out_dir=tmp_path / "direct")
    on_beam, _ = run_panes(headrace, script, build, runner="beam", out_dir=tmp_path / "beam")
    assert direct, "the scenario emits nothing"
    assert on_beam == direct


# -- state and timers ---------------------------------------------------------------------------

def _run(build: Callable[[Any, Any], Any], runner: str, out: Path,
         flags: List[str]) -> Dict[str, List[str]]:
    os.makedirs(out, exist_ok=True)
    p = headrace.Pipeline(argv=[f"--runner={runner}", *flags])
    outputs = build(headrace, p)
    if not isinstance(outputs, dict):
        outputs = {"out": outputs}
    for tag, pcoll in outputs.items():
        _ = pcoll | f"Collect_{tag}" >> headrace.Map(append_line, str(out), tag)
    p.run().wait_until_finish()
    return read_lines(str(out), outputs)


USERSTATE = {
    "buffer_and_flush": userstate.build_buffer_and_flush,
    "timers_reset_and_output_timestamps": userstate.build_timers_reset_and_output_timestamps,
    "processing_time_timers": userstate.build_processing_time_timers,
    "bag_state_cleared_by_timer": userstate.build_bag_state_cleared_by_timer,
    "combining_state": userstate.build_combining_state,
    "set_state": userstate.build_set_state,
    "read_modify_write_state": userstate.build_read_modify_write_state,
    "dynamic_timers": userstate.build_dynamic_timers,
    "timer_window_and_key": userstate.build_timer_window_and_key,
}


@pytest.mark.parametrize("name", sorted(USERSTATE))
def test_userstate_same_on_beam_as_on_direct(name, tmp_path, monkeypatch):
    wire_stateful_pardo(monkeypatch)
    build = USERSTATE[name]
    direct = _run(build, "direct", tmp_path / "direct", [])
    on_beam = _run(build, "beam", tmp_path / "beam", [])
    assert all(direct.values()), "the scenario emits nothing"
    assert on_beam == direct
