"""Shared fixtures: every test runs once per runner under test.

``HEADRACE_TEST_RUNNERS`` names the runners, comma-separated (default
``direct,multiprocess``), e.g. ``HEADRACE_TEST_RUNNERS=direct pytest tests/unit``.
The ``runner`` fixture is automatic: while a test runs, pipelines built
without a runner use it, and tests that name runners ask for ``runner``.
"""
import os

import pytest

from headrace.sdk import runner as runner_registry

# Fixtures for checkpoint storage: a moto S3 server (started only by tests that ask for it).
pytest_plugins = ["state.checkpoint_storage_support"]

TEST_RUNNERS = [name.strip()
                for name in os.environ.get("HEADRACE_TEST_RUNNERS",
                                           "direct,multiprocess").split(",")
                if name.strip()] or ["direct"]


def pytest_configure(config):
    config.addinivalue_line("markers", "direct_only(why): the test's subject exists only on "
                                       "the direct runner; skipped on the others, saying why")
    config.addinivalue_line("markers", "no_pipeline: the test runs no pipeline, so it runs once "
                                       "(on the first runner)")
    config.addinivalue_line("markers", "slow: over ~10 s and covered in kind by faster tests; "
                                       "run with -m slow (tox -e slow)")


def pytest_collection_modifyitems(config, items):
    """Run tests that build no pipeline once, not once per runner; slow tests only when
    selected with ``-m slow``, to keep the default suite short."""
    keep, drop = [], []
    run_slow = "slow" in (config.getoption("-m") or "")
    for item in items:
        if item.get_closest_marker("slow") is not None and not run_slow:
            drop.append(item)
            continue
        callspec = getattr(item, "callspec", None)
        runner_name = callspec.params.get("runner") if callspec is not None else None
        once = item.get_closest_marker("no_pipeline") is not None
        if once and runner_name not in (None, TEST_RUNNERS[0]):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True, params=TEST_RUNNERS)
def runner(request, monkeypatch):
    """The name of the runner under test; also the default runner while the test runs."""
    marker = request.node.get_closest_marker("direct_only")
    if marker is not None and request.param != "direct":
        pytest.skip(f"direct runner only: {marker.args[0]}")
    monkeypatch.setattr(runner_registry, "DEFAULT_RUNNER", request.param)
    return request.param


#: ``HEADRACE_TEST_STATE_BACKEND=rocksdb`` runs every pipeline's keyed state on that backend
#: (default: what the pipeline's options say, memory unless ``--state_backend`` is given).
#: (Multiprocess jobs started after the test process used RocksDB get workers from a fork
#: server, where this fixture's patch does not reach: run the runners in separate pytest
#: processes, ``HEADRACE_TEST_RUNNERS=direct`` then ``=multiprocess``.)
TEST_STATE_BACKEND = os.environ.get("HEADRACE_TEST_STATE_BACKEND", "").strip().lower()


@pytest.fixture(autouse=True)
def _test_state_backend(monkeypatch):
    """Keyed operators get ``TEST_STATE_BACKEND`` whatever their pipeline's options say."""
    if not TEST_STATE_BACKEND:
        return
    from headrace.runners.state import factory
    from headrace.sdk.options import PipelineOptions

    forced = PipelineOptions([f"--state_backend={TEST_STATE_BACKEND}"])
    make, restore = factory.make_state_backend, factory.restore_state_backend
    monkeypatch.setattr(factory, "make_state_backend",
                        lambda options=None, key_groups=None, max_parallelism=None, **kw:
                        make(forced, key_groups, max_parallelism, **kw))
    monkeypatch.setattr(factory, "restore_state_backend",
                        lambda options, snapshots, key_groups, max_parallelism=None, **kw:
                        restore(forced, snapshots, key_groups, max_parallelism, **kw))
