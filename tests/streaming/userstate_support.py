"""Helpers for the state-and-timer tests: wiring, running on Beam and headrace, operators.

``wire_stateful_pardo`` routes stateful ParDos to ``StatefulParDoOperator``
in the direct runner's executor unless the executor already does.
``run_streaming`` runs one builder on Beam's BundleBasedDirectRunner
(streaming) or on headrace, collecting each output as sorted ``repr`` lines
(see tests/parity/harness.py). ``OperatorHarness`` drives one
``StatefulParDoOperator`` by hand, with a manual clock, for the tests that
look inside its state backend.
"""
from __future__ import annotations

import os
import threading
import types
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import apache_beam
import apache_beam.testing.test_stream
import apache_beam.transforms.timeutil
import apache_beam.transforms.userstate
from apache_beam.options.pipeline_options import PipelineOptions as BeamOptions
from apache_beam.options.pipeline_options import StandardOptions as BeamStandardOptions

import headrace
import headrace.testing.test_stream
import headrace.transforms.timeutil
import headrace.transforms.userstate
from headrace.runners.direct import executor
from headrace.runners.operators.base import Operator
from headrace.runners.operators.clock import ManualClock
from headrace.runners.operators.stateful_pardo import StatefulParDoOperator, make_stateful_operator
from headrace.sdk.pardo import ParDo
from headrace.sdk.serialization import dumps_user_code
from headrace.sdk.userstate import is_stateful_dofn
from headrace.sdk.windowed_value import WindowedValue
from headrace.sdk.windowing import DEFAULT_WINDOWING, Windowing

SDKS = {"beam": apache_beam, "headrace": headrace}


def canonical(value: Any) -> str:
    """``repr`` with set and dict entries sorted, so that hash order does not matter."""
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(canonical(v) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(sorted(f"{canonical(k)}: {canonical(v)}"
                                      for k, v in value.items())) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(canonical(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(canonical(v) for v in value) + "]"
    return repr(value)


def append_line(element: Any, out_dir: str, tag: str) -> None:
    """The collector: one line per element, in a file per process and thread."""
    path = os.path.join(out_dir, f"{tag}.{os.getpid()}.{threading.get_ident()}.txt")
    with open(path, "a", encoding="utf-8") as f:
        f.write(canonical(element) + "\n")


def read_lines(out_dir: str, tags: Any) -> Dict[str, List[str]]:
    lines: Dict[str, List[str]] = {tag: [] for tag in tags}
    for path in Path(out_dir).glob("*.txt"):
        lines[path.name.split(".", 1)[0]].extend(path.read_text(encoding="utf-8").splitlines())
    return {tag: sorted(found) for tag, found in lines.items()}


def wire_stateful_pardo(monkeypatch: Any) -> None:
    """Make the direct runner run stateful DoFns with ``StatefulParDoOperator``."""
    if getattr(executor, "make_stateful_operator", None) is not None:
        return  # the executor is wired already
    original = executor._make_operator

    def make(node: Any) -> Operator:
        transform = node.transform
        if isinstance(transform, ParDo) and is_stateful_dofn(transform.fn):
            return make_stateful_operator(node.full_label, transform,
                                          node.main_inputs[0].windowing,
                                          [view.pvalue.windowing for view in node.side_inputs],
                                          list(node.outputs))
        return original(node)

    monkeypatch.setattr(executor, "_make_operator", make)


def record_operators(monkeypatch: Any) -> List[StatefulParDoOperator]:
    """Collect every StatefulParDoOperator created from now on (to inspect after a run;
    ``backend_empty_at_close`` tells whether its backend held state when it closed)."""
    created: List[StatefulParDoOperator] = []
    original = StatefulParDoOperator.__init__

    def init(self: StatefulParDoOperator, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        created.append(self)

    original_close = StatefulParDoOperator.close

    def close(self: StatefulParDoOperator) -> None:
        # Closing releases the backend: what it held is recorded first.
        self.backend_empty_at_close = self.backend.is_empty()
        original_close(self)

    monkeypatch.setattr(StatefulParDoOperator, "__init__", init)
    monkeypatch.setattr(StatefulParDoOperator, "close", close)
    return created


def streaming_pipeline(sdk: str) -> Any:
    if sdk == "beam":
        options = BeamOptions()
        options.view_as(BeamStandardOptions).streaming = True
        return apache_beam.Pipeline(runner="BundleBasedDirectRunner", options=options)
    return headrace.Pipeline()


def batch_pipeline(sdk: str) -> Any:
    return apache_beam.Pipeline(runner="DirectRunner") if sdk == "beam" else \
        headrace.Pipeline()


def run_builder(sdk: str, build: Callable[[Any, Any], Any], out_dir: Path,
                streaming: bool = True) -> Dict[str, List[str]]:
    """Run ``build(beam_module, pipeline)``; return ``{output tag: sorted repr lines}``."""
    out = str(out_dir / sdk)
    os.makedirs(out, exist_ok=True)
    beam = SDKS[sdk]
    p = streaming_pipeline(sdk) if streaming else batch_pipeline(sdk)
    outputs = build(beam, p)
    if not isinstance(outputs, dict):
        outputs = {"out": outputs}
    for tag, pcoll in outputs.items():
        _ = pcoll | f"Collect_{tag}" >> beam.Map(append_line, out, tag)
    p.run().wait_until_finish()
    return read_lines(out, outputs)


def assert_same_as_beam(build: Callable[[Any, Any], Any], tmp_path: Path,
                        streaming: bool = True) -> Dict[str, List[str]]:
    """Both SDKs give identical, non-empty outputs; returns them."""
    expected = run_builder("beam", build, tmp_path, streaming)
    for tag, lines in expected.items():
        assert lines, f"Beam produced nothing for {tag!r}: the scenario is wrong"
    actual = run_builder("headrace", build, tmp_path, streaming)
    assert actual == expected
    return expected


def userstate(beam: Any) -> Any:
    return beam.transforms.userstate


def time_domain(beam: Any) -> Any:
    return beam.transforms.timeutil.TimeDomain


def test_stream(beam: Any) -> Any:
    return beam.testing.test_stream.TestStream()


test_stream.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def with_timestamps(beam: Any) -> Any:
    """A Map to ``(element, timestamp seconds)``, comparable across the SDKs."""
    return beam.Map(lambda x, ts=beam.DoFn.TimestampParam: (x, float(ts)))


def window_bounds(window: Any) -> Any:
    """A window as comparable plain data: ``(start, end)`` seconds, or ``'global'``."""
    if not hasattr(window, "start") or type(window).__name__ == "GlobalWindow":
        return "global"
    return (float(window.start), float(window.end))


class Collector(Operator):
    """Records what an operator emits, per output tag."""

    def __init__(self) -> None:
        super().__init__("collect", 1)
        self.batches: List[WindowedValue] = []

    def process_batch(self, index: int, batch: List[WindowedValue]) -> None:
        self.batches.extend(batch)

    def values(self) -> List[Any]:
        return [wv.value for wv in self.batches]

    def timestamped(self) -> List[tuple]:
        return [(wv.value, wv.timestamp_micros / 1e6) for wv in self.batches]


class OperatorHarness:
    """One StatefulParDoOperator driven by hand: elements, watermarks, processing time."""

    def __init__(self, fn: Any, windowing: Optional[Windowing] = None,
                 label: str = "Stateful") -> None:
        transform = types.SimpleNamespace(
            fn=fn, serialized_fn=dumps_user_code((fn, (), {}), label, "DoFn"), side_inputs=[],
            output_tags=None)
        self.op = StatefulParDoOperator(label, transform, windowing or DEFAULT_WINDOWING, [],
                                        [None])
        self.clock = ManualClock()
        self.op.clock = self.clock
        self.out = Collector()
        self.op.receivers[None] = [(self.out, 0)]
        self.op.start()

    def add(self, *elements: Any, windows: Optional[tuple] = None) -> None:
        """Elements as ``(value, timestamp seconds)``, in the global window unless told."""
        from headrace.sdk.window import GLOBAL_WINDOW

        batch = []
        for value, seconds in elements:
            micros = int(round(seconds * 1e6))
            if windows is None:
                ws = (GLOBAL_WINDOW,)
            else:
                ws = windows
            batch.append(WindowedValue.of(value, micros, ws))
        self.op.process_batch(0, batch)

    def watermark(self, seconds: float) -> None:
        self.op.on_watermark(0, int(round(seconds * 1e6)))

    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(int(round(seconds * 1e6)))
        due = self.op.next_processing_time()
        if due is not None and due <= self.clock.now():
            self.op.on_processing_time(self.clock.now())

    def close(self) -> None:
        self.op.close()
