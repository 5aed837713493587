"""Connecting to Kafka with confluent-kafka: the import guard, client configuration and
metadata look-ups that turn an unreachable broker or a missing topic into a clear error.

>>> client_config("ReadFromKafka", "h:9092", {"client.id": "me"})["bootstrap.servers"]
'h:9092'
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from headrace.io.kafka.dev import EXTRA_HINT

#: librdkafka's own log lines go to this logger instead of stderr.
LOGGER = logging.getLogger("headrace.io.kafka.librdkafka")


def require_confluent(owner: str) -> Any:
    """The ``confluent_kafka`` module, or an ImportError naming the extra to install."""
    try:
        import confluent_kafka
    except ImportError:
        raise ImportError(f"{owner} needs the confluent-kafka package; {EXTRA_HINT}") from None
    return confluent_kafka


def client_config(owner: str, bootstrap_servers: str,
                  extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """librdkafka settings: the bootstrap servers, logs routed to logging, user overrides."""
    if not isinstance(bootstrap_servers, str) or not bootstrap_servers.strip():
        raise ValueError(f"{owner}: bootstrap_servers must be a non-empty 'host:port[,...]' "
                         f"string, got {bootstrap_servers!r}")
    config: Dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "logger": LOGGER}
    config.update(extra or {})
    return config


def list_topics(owner: str, client: Any, bootstrap_servers: str, timeout: float) -> Dict[str, Any]:
    """All topics' metadata (``{name: TopicMetadata}``), asked for without naming a topic
    so that brokers that auto-create topics do not create one; a clear error if the
    cluster cannot be reached within ``timeout`` seconds."""
    kafka = require_confluent(owner)
    try:
        metadata = client.list_topics(timeout=timeout)
    except kafka.KafkaException as exc:
        raise ConnectionError(f"{owner}: cannot reach the Kafka cluster at {bootstrap_servers} "
                              f"within {timeout:g}s (connection_timeout): {exc}") from None
    return metadata.topics


def partitions_of(owner: str, topics: Dict[str, Any], names: List[str],
                  bootstrap_servers: str) -> List[tuple]:
    """``(topic, partition)`` pairs of the named topics, sorted; a clear error for a topic
    the cluster does not have."""
    pairs = []
    for name in names:
        meta = topics.get(name)
        if meta is None or meta.error is not None:
            reason = "does not exist" if meta is None else str(meta.error)
            raise LookupError(f"{owner}: Kafka topic {name!r} {reason} on {bootstrap_servers}")
        pairs.extend((name, partition) for partition in meta.partitions)
    return sorted(pairs)
