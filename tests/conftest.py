"""Shared fixtures: every pipeline test runs once per runner under test.

``HEADRACE_TEST_RUNNERS`` names the runners, comma-separated (default ``direct``),
e.g. ``HEADRACE_TEST_RUNNERS=direct,multiprocess pytest tests/unit``.
"""
import os

import pytest

TEST_RUNNERS = [name.strip()
                for name in os.environ.get("HEADRACE_TEST_RUNNERS", "direct").split(",")
                if name.strip()] or ["direct"]


@pytest.fixture(params=TEST_RUNNERS)
def runner(request):
    """The name of the runner to build pipelines with: ``beam.Pipeline(runner=runner)``."""
    return request.param
