"""Fixtures of the IO tests: a Kafka broker for the session (or HEADRACE_KAFKA_BOOTSTRAP)."""
from headrace.testing.kafka import kafka_bootstrap, kafka_topic  # noqa: F401 (fixtures)


def pytest_configure(config):
    config.addinivalue_line("markers", "kafka_chaos: long exactly-once runs with many random "
                                       "SIGKILLs; run with -m kafka_chaos (tox -e kafka-chaos)")


def pytest_collection_modifyitems(config, items):
    if "kafka_chaos" in (config.getoption("-m") or ""):
        return
    import pytest

    skip = pytest.mark.skip(reason="long chaos run: select it with -m kafka_chaos")
    for item in items:
        if item.get_closest_marker("kafka_chaos") is not None:
            item.add_marker(skip)
