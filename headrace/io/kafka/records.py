"""The elements Kafka IO produces: records with their metadata, and dead letters.

>>> record = KafkaRecord("k", {"n": 1}, "orders", 2, 17, 1700000000.0, (("source", b"web"),))
>>> record.topic, record.partition, record.offset
('orders', 2, 17)
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

Headers = Tuple[Tuple[str, Optional[bytes]], ...]


class KafkaRecord(NamedTuple):
    """One consumed record with its metadata (``ReadFromKafka(with_metadata=True)``).

    ``timestamp`` is the record's Kafka timestamp in seconds (None if the broker has none).
    """

    key: Any
    value: Any
    topic: str
    partition: int
    offset: int
    timestamp: Optional[float]
    headers: Headers = ()


class DeadLetter(NamedTuple):
    """A record whose key or value could not be deserialized, with the raw bytes and why.

    Routed to the ``dead_letters`` output of ``ReadFromKafka(with_dead_letters=True)``.
    """

    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    error: str
    timestamp: Optional[float] = None
    headers: Headers = ()
