"""What every Kafka sink does to produce a record: check the topic, turn an element into
key, value, headers and partition, and hand it to librdkafka with clear errors.

>>> encoder = RecordEncoder("WriteToKafka(t)", "t", "str", "json", None, {"via": "x"}, 3)
>>> encoder.encode(("k", {"n": 1}))
(b'k', b'{"n":1}', [('via', b'x')], None)
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from headrace.io.kafka.client import list_topics
from headrace.io.kafka.records import KafkaRecord
from headrace.io.kafka.serde import resolve_serializer

#: ``(key, value, headers, partition)``: a record ready for ``Producer.produce``.
Encoded = Tuple[Optional[bytes], Optional[bytes], Optional[List[tuple]], Optional[int]]


def topic_partitions(owner: str, client: Any, bootstrap_servers: str, topic: str,
                     timeout: float) -> int:
    """The number of partitions of ``topic``; a clear error if the cluster cannot be
    reached or has no such topic. Asks for all topics' metadata, because naming a topic
    makes brokers that auto-create topics create it."""
    topics = list_topics(owner, client, bootstrap_servers, timeout)
    if topic not in topics or topics[topic].error is not None:
        raise LookupError(f"{owner}: Kafka topic {topic!r} does not exist on "
                          f"{bootstrap_servers}; create it first")
    return len(topics[topic].partitions)


class RecordEncoder:
    """Serializes elements (``(key, value)`` pairs or :class:`KafkaRecord` s) for one topic."""

    def __init__(self, owner: str, topic: str, key_serializer: Any, value_serializer: Any,
                 partitioner: Any, headers: Any, num_partitions: int) -> None:
        self.owner = owner
        self.topic = topic
        self.encode_key = resolve_serializer(key_serializer, "key", owner)
        self.encode_value = resolve_serializer(value_serializer, "value", owner)
        self.partitioner: Optional[Callable] = partitioner if callable(partitioner) else None
        self.headers = headers
        self.num_partitions = num_partitions

    def _headers(self, element: Any, record_headers: Any) -> Any:
        spec = self.headers
        if callable(spec):
            spec = spec(element)
        if spec is None:
            return list(record_headers) or None
        items = list(spec.items()) if isinstance(spec, dict) else list(spec)
        return [(name, value.encode("utf-8") if isinstance(value, str) else value)
                for name, value in list(record_headers) + items]

    def encode(self, element: Any) -> Encoded:
        """``(key bytes, value bytes, headers, partition or None)`` of one element."""
        if isinstance(element, KafkaRecord):
            key, value, record_headers = element.key, element.value, element.headers
        elif isinstance(element, tuple) and len(element) == 2:
            key, value = element
            record_headers = ()
        else:
            raise TypeError(f"{self.owner}: elements must be (key, value) pairs or "
                            f"KafkaRecords, got {element!r:.100}")
        headers = self._headers(element, record_headers)
        partition = None
        if self.partitioner is not None:
            partition = int(self.partitioner(key, value, self.num_partitions))
        return (self.encode_key(key, self.topic, headers),
                self.encode_value(value, self.topic, headers), headers, partition)


def produce(kafka: Any, producer: Any, owner: str, topic: str, record: Encoded,
            on_delivery: Callable) -> None:
    """Produce one encoded record, waiting while librdkafka's local queue is full; errors
    that the broker will never accept (a message too large) name the sink and topic."""
    key, value, headers, partition = record
    extra = {} if partition is None else {"partition": partition}
    while True:
        try:
            producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery,
                             **extra)
            return
        except BufferError:  # local queue full: let librdkafka send, then retry
            producer.poll(0.1)
        except kafka.KafkaException as exc:
            raise RuntimeError(f"{owner}: cannot produce to topic {topic!r}: "
                               f"{exc.args[0].str()}") from None
