"""Pytest fixtures for Kafka tests: a session-wide broker and fresh topics.

Without ``HEADRACE_KAFKA_BOOTSTRAP`` the fixtures start a local Tansu broker once per test
session (and stop it at the end); with it (``host:port``) they use that cluster instead.
Use them from a ``conftest.py``: ``from headrace.testing.kafka import kafka_bootstrap,
kafka_topic``.

>>> callable(make_topic)
True
"""
from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Iterable, Iterator

import pytest

from headrace.io.kafka.dev import KafkaDevBroker

ENV_VAR = "HEADRACE_KAFKA_BOOTSTRAP"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``bootstrap_servers`` of the cluster under test."""
    pytest.importorskip("confluent_kafka", reason="Kafka tests need headrace[kafka]")
    external = os.environ.get(ENV_VAR, "").strip()
    if external:
        yield external
        return
    with KafkaDevBroker() as broker:
        yield broker.bootstrap_servers


def make_topic(bootstrap_servers: str, partitions: int = 1, prefix: str = "t") -> str:
    """Create a uniquely named topic with ``partitions`` partitions; returns its name."""
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)
    return name


@pytest.fixture
def kafka_topic(kafka_bootstrap: str) -> Callable[..., str]:
    """``kafka_topic(partitions=1, prefix="t")`` creates a fresh topic on the test cluster."""
    return lambda partitions=1, prefix="t": make_topic(kafka_bootstrap, partitions, prefix)


def produce(bootstrap_servers: str, topic: str, records: Iterable[tuple], **config: Any) -> None:
    """Write test records with confluent-kafka directly and wait until all are acknowledged.

    ``records``: ``(partition, key, value, timestamp_seconds[, headers])`` tuples.
    """
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 5, **config})
    for record in records:
        partition, key, value, seconds = record[:4]
        headers = record[4] if len(record) > 4 else None
        producer.produce(topic, value=value, key=key, partition=partition,
                         timestamp=int(seconds * 1000), headers=headers)
    remaining = producer.flush(10)
    if remaining:
        raise TimeoutError(f"{remaining} test records for {topic!r} were not acknowledged")
