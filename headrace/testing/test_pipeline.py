"""``TestPipeline``: a Pipeline whose options come from the test run's command line.

Like Beam's, it reads ``--test-pipeline-options="--runner=..."`` from ``sys.argv``;
``HEADRACE_TEST_PIPELINE_OPTIONS`` in the environment does the same, so a test
suite can be run against another runner without changing any test.

>>> from headrace.testing.test_pipeline import TestPipeline
>>> import headrace as beam
>>> with TestPipeline() as p:
...     _ = p | beam.Create([1])
"""
from __future__ import annotations

import os
import shlex
import sys
from typing import Any, List, Optional

from headrace.sdk.options import PipelineOptions
from headrace.sdk.pipeline import Pipeline

ENV_VAR = "HEADRACE_TEST_PIPELINE_OPTIONS"


def _test_pipeline_args(argv: List[str]) -> List[str]:
    for i, arg in enumerate(argv):
        if arg.startswith("--test-pipeline-options="):
            return shlex.split(arg.split("=", 1)[1])
        if arg == "--test-pipeline-options" and i + 1 < len(argv):
            return shlex.split(argv[i + 1])
    return shlex.split(os.environ.get(ENV_VAR, ""))


class TestPipeline(Pipeline):
    """A pipeline for tests; runs and waits on ``with`` exit when ``blocking``."""

    __test__ = False  # not a pytest test class

    def __init__(self, runner: Any = None, options: Optional[PipelineOptions] = None,
                 argv: Optional[List[str]] = None, is_integration_test: bool = False,
                 blocking: bool = True, additional_pipeline_args: Optional[List[str]] = None,
                 **unused: Any) -> None:
        self.blocking = blocking
        if options is None:
            args = _test_pipeline_args(sys.argv if argv is None else argv)
            options = PipelineOptions(args + list(additional_pipeline_args or []))
        super().__init__(runner, options)

    def run(self, test_runner_api: Any = None):
        result = super().run()
        if self.blocking:
            result.wait_until_finish()
        return result

    def get_option(self, name: str) -> Any:
        return self.options.get_all_options().get(name)
