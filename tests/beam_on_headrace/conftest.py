"""Fixtures for running unmodified Beam pipelines on HeadraceRunner and on Beam's runner."""
from __future__ import annotations

from typing import Any, Callable

import pytest

beam = pytest.importorskip("apache_beam")

from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from headrace.runners.beam.headrace_runner import HeadraceRunner  # noqa: E402


def _pipeline_maker(runner_name: str) -> Callable[..., Any]:
    headrace_runner = {"headrace": "direct", "headrace-multiprocess": "multiprocess"}

    def make(streaming: bool = False) -> Any:
        options = PipelineOptions(
            [f"--headrace_runner={headrace_runner.get(runner_name, 'direct')}"],
            streaming=streaming)
        runner = HeadraceRunner() if runner_name in headrace_runner else "DirectRunner"
        return beam.Pipeline(runner=runner, options=options)

    make.runner_name = runner_name  # type: ignore[attr-defined]
    return make


@pytest.fixture(params=["headrace", "beam"])
def make_pipeline(request: Any) -> Callable[..., Any]:
    """``make_pipeline(streaming=False)``: a Beam pipeline on HeadraceRunner or, for the
    baseline, on Beam's own DirectRunner; every test asserts the same output on both."""
    return _pipeline_maker(request.param)


@pytest.fixture(params=["headrace", "headrace-multiprocess", "beam"])
def make_pipeline_mp(request: Any) -> Callable[..., Any]:
    """As ``make_pipeline``, and also on HeadraceRunner over headrace's multiprocess runner
    (for what crosses process boundaries, such as metrics)."""
    return _pipeline_maker(request.param)


@pytest.fixture
def runner() -> str:
    """HeadraceRunner picks its runner with ``--headrace_runner``: once is enough."""
    return "direct"
