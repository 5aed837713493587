"""A pytest plugin that lets Apache Beam's own test files run against a chosen runner.

Beam's wheel ships its ``*_test.py`` files but not the repository-level
``conftest.py`` that registers ``--test-pipeline-options``, which Beam's
``TestPipeline`` reads to pick the runner. Load this plugin with
``-p headrace.testing.beam_suite_plugin``::

    pytest -p headrace.testing.beam_suite_plugin \\
        --test-pipeline-options="--runner=headrace.runners.beam.HeadraceRunner \\
                                 --headrace_runner=direct" \\
        .../site-packages/apache_beam/transforms/create_test.py

It imports nothing from headrace's runners, so it also serves Beam's own runners.
"""
from __future__ import annotations

from typing import Any


def pytest_addoption(parser: Any) -> None:
    parser.addoption("--test-pipeline-options", action="store", type=str, default=None,
                     help="pipeline options for Beam's TestPipeline, e.g. '--runner=...'")


def pytest_configure(config: Any) -> None:
    options = config.getoption("--test-pipeline-options")
    # Beam's own conftest.py does the same: TestPipeline falls back to this attribute.
    from apache_beam.testing.test_pipeline import TestPipeline

    TestPipeline.pytest_test_pipeline_options = options
    # Markers Beam's tests use, so that pytest does not warn about each of them.
    for marker in ("it_postcommit", "it_validatesrunner", "no_sickbay_batch",
                   "no_sickbay_streaming", "no_xdist", "uses_pytorch", "uses_tensorflow",
                   "sickbay_direct", "sickbay_flink", "sickbay_spark", "sickbay_dataflow",
                   "uses_testcontainer", "it_dataflow_arm", "uses_dill"):
        config.addinivalue_line("markers", f"{marker}: Beam test marker")
