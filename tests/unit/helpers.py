"""Helpers shared by the unit tests: matchers and small pipeline builders."""
import math

from headrace.testing.util import BeamAssertException


def run_fails(build, runner, exc_type, match=None):
    """Build a pipeline with ``build(p)``, run it, and return the raised exception info."""
    import pytest

    import headrace as beam

    with pytest.raises(exc_type, match=match) as info:
        with beam.Pipeline(runner=runner) as p:
            build(p)
    return info


def is_nan():
    """A matcher: exactly one element, which is NaN."""

    def _match(actual):
        actual = list(actual)
        if len(actual) != 1 or not math.isnan(actual[0]):
            raise BeamAssertException(f"expected [nan], got {actual!r}")

    return _match


def sorted_values():
    """A Map function making ``(key, values)`` comparable: ``(key, sorted(values))``."""
    return lambda kv: (kv[0], sorted(kv[1]))


def satisfies(predicate, description="predicate"):
    """A matcher: ``predicate(list_of_elements)`` is true."""

    def _match(actual):
        actual = list(actual)
        if not predicate(actual):
            raise BeamAssertException(f"{description} failed on {actual!r:.500}")

    return _match
