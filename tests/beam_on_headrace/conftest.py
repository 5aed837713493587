"""Fixtures for running unmodified Beam pipelines on HeadraceRunner and on Beam's runner."""
from __future__ import annotations

from typing import Any, Callable

import pytest

beam = pytest.importorskip("apache_beam")

from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from headrace.runners.beam.headrace_runner import HeadraceRunner  # noqa: E402


@pytest.fixture(params=["headrace", "beam"])
def make_pipeline(request: Any) -> Callable[..., Any]:
    """``make_pipeline(streaming=False)``: a Beam pipeline on HeadraceRunner or, for the
    baseline, on Beam's own DirectRunner; every test asserts the same output on both."""

    def make(streaming: bool = False) -> Any:
        options = PipelineOptions(["--headrace_runner=direct"], streaming=streaming)
        runner = HeadraceRunner() if request.param == "headrace" else "DirectRunner"
        return beam.Pipeline(runner=runner, options=options)

    make.runner_name = request.param  # type: ignore[attr-defined]
    return make


@pytest.fixture
def runner() -> str:
    """HeadraceRunner picks its runner with ``--headrace_runner``: once is enough."""
    return "direct"
