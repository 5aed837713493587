import pytest

from .harness import HEADRACE_RUNNERS


@pytest.fixture(params=HEADRACE_RUNNERS)
def runner(request):
    """The headrace runner under test (``HEADRACE_TEST_RUNNERS=direct,multiprocess`` for more).

    Same values as the suite-wide fixture in tests/conftest.py; defined here too so that
    the parity tests do not depend on that file.
    """
    return request.param
