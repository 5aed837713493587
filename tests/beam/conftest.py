"""Shared by the ``--runner=beam`` tests."""
import pytest


def skip_unless_beam_installed() -> None:
    pytest.importorskip("apache_beam")


@pytest.fixture
def runner():
    """These tests run on Apache Beam's runner: once is enough."""
    return "direct"
