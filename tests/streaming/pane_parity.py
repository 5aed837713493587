"""Run one streaming scenario on Apache Beam and on headrace; compare the panes.

A scenario is a *script* of TestStream events and a *transform builder*:

* the script is a list of ``("elements", [(value, seconds), ...])``,
  ``("watermark", seconds)``, ``("processing", seconds)`` and
  ``("infinity",)`` steps, replayed by each SDK's ``TestStream`` (each
  ``elements`` step is one bundle on both);
* ``build(beam)`` returns the PTransform to apply to the stream, written
  once against whichever SDK module it is given (``apache_beam`` or
  ``headrace``), e.g. ``beam.WindowInto(...) | beam.GroupByKey()``; it
  must output ``(key, value)`` pairs (GroupByKey or CombinePerKey output).

Each output element becomes a comparable row: key, value (sorted when it is
an iterable), window bounds in µs (``"global"`` for the global window), the
element's timestamp in µs, and its pane: timing, index, non-speculative
index, is_first, is_last. Rows are collected with the file collector of
``tests/parity/harness.py`` (so the check also holds for runners that run
user code in other processes) and compared as sorted lists.

Beam runs on its ``BundleBasedDirectRunner`` in streaming mode, the Beam
runner that executes TestStream with processing time and triggers; headrace
on each runner in ``HEADRACE_TEST_RUNNERS`` (default ``direct``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import apache_beam

import headrace
from headrace.sdk import runner as runner_registry

try:  # pytest puts tests/ on sys.path (tests/parity is a package)
    from parity.harness import append_line, read_lines
except ImportError:  # pragma: no cover - imported from the repository root
    from tests.parity.harness import append_line, read_lines

Script = Sequence[Tuple[Any, ...]]
_TIMINGS = ("EARLY", "ON_TIME", "LATE", "UNKNOWN")


def pane_row(element: Any, window: Any, timestamp: Any, pane: Any) -> tuple:
    """The comparable description of one grouped output element."""
    key, value = element
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        shown = value
    else:
        shown = sorted(value)
    bounds = ("global" if not hasattr(window, "start") or type(window).__name__ == "GlobalWindow"
              else (window.start.micros, window.end.micros))
    return (key, shown, bounds, timestamp.micros, _TIMINGS[pane.timing], pane.index,
            pane.nonspeculative_index, pane.is_first, pane.is_last)


def _stream(sdk: Any, script: Script) -> Any:
    if sdk is apache_beam:
        from apache_beam.testing.test_stream import TestStream
    else:
        from headrace.testing.test_stream import TestStream
    stream = TestStream()
    stamped = sdk.window.TimestampedValue
    for step in script:
        kind = step[0]
        if kind == "elements":
            stream = stream.add_elements([stamped(value, t) for value, t in step[1]])
        elif kind == "watermark":
            stream = stream.advance_watermark_to(step[1])
        elif kind == "processing":
            stream = stream.advance_processing_time(step[1])
        elif kind == "infinity":
            stream = stream.advance_watermark_to_infinity()
        else:
            raise ValueError(f"unknown script step {step!r}")
    return stream


def _options(sdk: Any, runner: str, unsafe: bool) -> Any:
    flags = [f"--runner={runner}"] + (["--allow_unsafe_triggers"] if unsafe else [])
    if sdk is apache_beam:
        from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
        options = PipelineOptions(flags)
        options.view_as(StandardOptions).streaming = True
        return options
    return headrace.options.pipeline_options.PipelineOptions(flags)


def run_panes(sdk: Any, script: Script, build: Callable[[Any], Any], *,
              runner: Optional[str] = None, unsafe: bool = False,
              out_dir: Any = None) -> Tuple[List[str], Any]:
    """Run the scenario on ``sdk``; return its sorted rows (as ``repr`` lines) and the result.

    For Beam, ``runner`` is ignored: it always runs on the BundleBasedDirectRunner;
    headrace runs on ``runner`` or, if None, the default (the runner under test).
    """
    if sdk is apache_beam:
        runner = "BundleBasedDirectRunner"
    elif runner is None:
        runner = runner_registry.DEFAULT_RUNNER
    out_dir = str(out_dir or tempfile.mkdtemp(prefix="panes-"))
    os.makedirs(out_dir, exist_ok=True)
    pipeline = sdk.Pipeline(options=_options(sdk, runner, unsafe))

    class Describe(sdk.DoFn):
        def process(self, element, window=sdk.DoFn.WindowParam,
                    timestamp=sdk.DoFn.TimestampParam, pane=sdk.DoFn.PaneInfoParam):
            yield pane_row(element, window, timestamp, pane)

    _ = (pipeline | "Stream" >> _stream(sdk, script) | "Under test" >> build(sdk)
         | "Describe" >> sdk.ParDo(Describe())
         | "Collect" >> sdk.Map(append_line, out_dir, "panes"))
    result = pipeline.run()
    result.wait_until_finish()
    return read_lines(out_dir, ["panes"])["panes"], result


def rows(lines: List[str]) -> List[tuple]:
    """Parse collected lines back into row tuples (for hand-written expectations)."""
    import ast
    return [ast.literal_eval(line) for line in lines]


_beam_cache: Dict[Any, List[str]] = {}


def assert_same_panes(script: Script, build: Callable[[Any], Any], *,
                      runner: Optional[str] = None,
                      unsafe: bool = False, tmp_path: Any = None, key: Any = None,
                      allow_empty: bool = False) -> Tuple[List[tuple], Any]:
    """Assert Beam and headrace emit identical panes; return headrace's rows and result."""
    base = Path(tmp_path or tempfile.mkdtemp(prefix="panes-"))
    cache_key = key
    if cache_key is None or cache_key not in _beam_cache:
        expected, _ = run_panes(apache_beam, script, build, unsafe=unsafe, out_dir=base / "beam")
        if cache_key is not None:
            _beam_cache[cache_key] = expected
    else:
        expected = _beam_cache[cache_key]
    if not allow_empty:
        assert expected, "Beam emitted no panes: the scenario is wrong"
    actual, result = run_panes(headrace, script, build, runner=runner, unsafe=unsafe,
                               out_dir=base / f"headrace-{runner}")
    assert actual == expected, _diff(expected, actual)
    return rows(actual), result


def _diff(expected: List[str], actual: List[str]) -> str:
    missing = [line for line in expected if line not in actual]
    extra = [line for line in actual if line not in expected]
    return ("panes differ from Beam's\n  only in Beam:     " + "\n    ".join(missing)
            + "\n  only in headrace: " + "\n    ".join(extra))


def system_counter(result: Any, name: str) -> int:
    """The total of a runner metric (namespace ``headrace``) over all steps."""
    from headrace.metrics.metric import MetricsFilter
    from headrace.sdk.metrics import SYSTEM_NAMESPACE
    found = result.metrics().query(MetricsFilter().with_namespace(SYSTEM_NAMESPACE)
                                   .with_name(name))["counters"]
    return sum(c.committed for c in found)
