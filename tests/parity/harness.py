"""Run one pipeline builder on Apache Beam and on headrace and compare the outputs.

A builder is ``build(beam, p)``: it gets the SDK module (``apache_beam`` or
``headrace``, always under the name ``beam``) and a pipeline, and returns a
PCollection, or a dict ``{name: PCollection}``, of plain comparable values.
The harness appends a collector to each returned PCollection that writes one
``repr`` line per element to files in a temporary directory (one file per
process and thread, opened in append mode per element), so it works whatever
process or thread the runner executes the collector in. The lines of each
output are then read back and compared as sorted lists.

Runners: Beam always runs on ``DirectRunner``; headrace runs on each runner named
in the comma-separated ``HEADRACE_TEST_RUNNERS`` (default ``direct``), the same
variable that tests/conftest.py reads for the rest of the suite.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import apache_beam

import headrace

BEAM_RUNNER = "DirectRunner"
HEADRACE_RUNNERS = [
    r.strip() for r in os.environ.get("HEADRACE_TEST_RUNNERS", "direct,multiprocess").split(",")
    if r.strip()
]


def canonical(value) -> str:
    """``repr`` with dict and set entries sorted, so insertion order does not matter."""
    if isinstance(value, dict):
        items = sorted((canonical(k), canonical(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(canonical(v) for v in value)) + "}"
    if isinstance(value, tuple):
        inner = ", ".join(canonical(v) for v in value)
        return "(" + inner + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(canonical(v) for v in value) + "]"
    return repr(value)


def append_line(element, out_dir, tag):
    """The collector: append ``canonical(element)`` to this process's and thread's file."""
    path = os.path.join(out_dir, f"{tag}.{os.getpid()}.{threading.get_ident()}.txt")
    with open(path, "a", encoding="utf-8") as f:
        f.write(canonical(element).replace("\n", "\\n") + "\n")


def read_lines(out_dir, tags):
    lines = {tag: [] for tag in tags}
    for path in Path(out_dir).glob("*.txt"):
        tag = path.name.split(".", 1)[0]
        lines[tag].extend(path.read_text(encoding="utf-8").splitlines())
    return {tag: sorted(found) for tag, found in lines.items()}


def make_pipeline(beam, runner):
    options = beam.options.pipeline_options.PipelineOptions([f"--runner={runner}"])
    return beam.Pipeline(options=options)


def run(beam, runner, build, out_dir):
    """Build and run the pipeline; return ``({tag: sorted lines}, pipeline result)``."""
    out_dir = str(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    p = make_pipeline(beam, runner)
    outputs = build(beam, p)
    if not isinstance(outputs, dict):
        outputs = {"out": outputs}
    for tag, pcoll in outputs.items():
        assert tag.isidentifier(), tag
        _ = pcoll | f"Collect_{tag}" >> beam.Map(append_line, out_dir, tag)
    result = p.run()
    result.wait_until_finish()
    return read_lines(out_dir, outputs), result


_beam_cache: dict = {}


def beam_outputs(build, tmp_path, key=None):
    """Beam's outputs for ``build``, computed once per test session."""
    key = key or f"{build.__module__}.{build.__qualname__}"
    if key not in _beam_cache:
        _beam_cache[key] = run(apache_beam, BEAM_RUNNER, build, Path(tmp_path) / "beam")[0]
    return _beam_cache[key]


def assert_parity(build, runner, tmp_path, *, key=None, allow_empty=()):
    """Run ``build`` on Beam and on headrace's ``runner``; assert identical outputs.

    Every output must be non-empty on Beam unless its tag is in ``allow_empty``,
    so that a builder cannot pass by producing nothing on both sides.
    """
    expected = beam_outputs(build, tmp_path, key)
    for tag, lines in expected.items():
        if tag not in allow_empty:
            assert lines, f"Beam produced no output for {tag!r}: the builder is wrong"
    actual, _ = run(headrace, runner, build, Path(tmp_path) / f"headrace-{runner}")
    for tag in expected:
        assert actual[tag] == expected[tag], f"output {tag!r} differs from Beam's"
    return expected
