"""``WriteToKafka``: a PCollection of ``(key, value)`` pairs (or ``KafkaRecord`` s) to a topic.

``delivery="at_least_once"`` waits for every record of a bundle to be acknowledged at the
bundle's end (and will also flush on every checkpoint once headrace checkpoints), so a
failure surfaces before the job moves on; ``"none"`` is fire-and-forget.
``"exactly_once"`` (Kafka transactions committed when a checkpoint completes) needs the
checkpoint runtime and is refused until it exists; docs/ARCHITECTURE.md has the design.

>>> WriteToKafka("127.0.0.1:9092", "alerts", delivery="exactly_once")
Traceback (most recent call last):
...
NotImplementedError: WriteToKafka(alerts): delivery='exactly_once' needs checkpointing ...
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from headrace.io.kafka.client import client_config, list_topics, require_confluent
from headrace.io.kafka.records import KafkaRecord
from headrace.io.kafka.serde import resolve_serializer
from headrace.sdk.dofn import DoFn
from headrace.sdk.pardo import ParDo
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import PCollection

_DELIVERIES = ("at_least_once", "none", "exactly_once")
HeadersSpec = Union[None, Dict[str, Any], List[tuple], Callable[[Any], Any]]


class _KafkaWriteFn(DoFn):
    """Produces each element; at_least_once flushes and checks deliveries per bundle."""

    def __init__(self, sink: "WriteToKafka") -> None:
        self.owner = sink.owner
        self.bootstrap_servers = sink.bootstrap_servers
        self.topic = sink.topic
        self.delivery = sink.delivery
        self.key_serializer = sink.key_serializer
        self.value_serializer = sink.value_serializer
        self.partitioner = sink.partitioner
        self.headers = sink.headers
        self.producer_config = sink.producer_config
        self.connection_timeout = sink.connection_timeout
        self.flush_timeout = sink.flush_timeout

    def setup(self) -> None:
        kafka = require_confluent(self.owner)
        self.kafka = kafka
        settings: Dict[str, Any] = {"enable.idempotence": self.delivery == "at_least_once",
                                    "acks": "all" if self.delivery == "at_least_once" else "1"}
        if isinstance(self.partitioner, str):
            settings["partitioner"] = self.partitioner
        settings.update(self.producer_config)
        self.producer = kafka.Producer(client_config(self.owner, self.bootstrap_servers,
                                                     settings))
        topics = list_topics(self.owner, self.producer, self.bootstrap_servers,
                             self.connection_timeout)
        if self.topic not in topics or topics[self.topic].error is not None:
            raise LookupError(f"{self.owner}: Kafka topic {self.topic!r} does not exist on "
                              f"{self.bootstrap_servers}; create it first")
        self.num_partitions = len(topics[self.topic].partitions)
        self.encode_key = resolve_serializer(self.key_serializer, "key", self.owner)
        self.encode_value = resolve_serializer(self.value_serializer, "value", self.owner)
        self.errors: List[str] = []

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is not None and len(self.errors) < 10:
            self.errors.append(error.str())

    def _headers(self, element: Any, record_headers: Any) -> Any:
        spec = self.headers
        if callable(spec):
            spec = spec(element)
        if spec is None:
            return list(record_headers) or None
        items = list(spec.items()) if isinstance(spec, dict) else list(spec)
        return [(name, value.encode("utf-8") if isinstance(value, str) else value)
                for name, value in list(record_headers) + items]

    def process(self, element: Any) -> Iterator[Any]:
        if isinstance(element, KafkaRecord):
            key, value, record_headers = element.key, element.value, element.headers
        elif isinstance(element, tuple) and len(element) == 2:
            key, value = element
            record_headers = ()
        else:
            raise TypeError(f"{self.owner}: elements must be (key, value) pairs or "
                            f"KafkaRecords, got {element!r:.100}")
        headers = self._headers(element, record_headers)
        key_bytes = self.encode_key(key, self.topic, headers)
        value_bytes = self.encode_value(value, self.topic, headers)
        extra = {}
        if callable(self.partitioner):
            extra["partition"] = int(self.partitioner(key, value, self.num_partitions))
        while True:
            try:
                self.producer.produce(self.topic, value_bytes, key_bytes, headers=headers,
                                      on_delivery=self._on_delivery, **extra)
                break
            except BufferError:  # local queue full: let librdkafka send, then retry
                self.producer.poll(0.1)
            except self.kafka.KafkaException as exc:
                raise RuntimeError(f"{self.owner}: cannot produce to topic {self.topic!r}: "
                                   f"{exc.args[0].str()}") from None
        self.producer.poll(0)
        return iter(())

    def finish_bundle(self) -> None:
        if self.delivery == "at_least_once":
            self.flush()
        else:
            self.producer.poll(0)

    def flush(self) -> None:
        """Wait until every produced record is acknowledged; raise on any failed delivery.
        (The checkpoint runtime will call this on every barrier.)"""
        remaining = self.producer.flush(self.flush_timeout)
        if self.errors:
            errors, self.errors = self.errors, []
            raise RuntimeError(f"{self.owner}: Kafka did not accept records for topic "
                               f"{self.topic!r}: {'; '.join(errors)}")
        if remaining:
            raise TimeoutError(f"{self.owner}: {remaining} records for topic {self.topic!r} "
                               f"were not acknowledged within {self.flush_timeout:g}s")

    def teardown(self) -> None:
        producer, self.producer = getattr(self, "producer", None), None
        if producer is not None:
            # Best effort for "none": give queued records a moment before the process ends.
            producer.flush(min(self.flush_timeout, 5.0))
            # Dropping the last reference destroys the librdkafka handle now, not in a
            # forked child that might inherit it.
            del producer


class WriteToKafka(PTransform):
    """Write ``(key, value)`` pairs (or :class:`KafkaRecord` s) to a Kafka topic.

    Args:
      delivery: ``"at_least_once"`` (idempotent producer, ``acks=all``, flushed and checked
        at every bundle end), ``"none"`` (fire-and-forget) or ``"exactly_once"`` (refused
        until headrace has checkpoints).
      key_serializer, value_serializer: ``"bytes"``, ``"str"``, ``"json"``, a function or a
        ``confluent_kafka`` Serializer (schema-registry Avro, ...).
      partitioner: ``None`` (librdkafka's default: by key hash), a librdkafka partitioner
        name (``"murmur2_random"`` is the Java client's) or ``fn(key, value, num_partitions)``.
      headers: a dict or ``[(name, value)]`` added to every record, or ``fn(element)``.
      connection_timeout: seconds to wait for the cluster at start before failing.
      flush_timeout: seconds a flush may wait for acknowledgements before failing.
    """

    def __init__(self, bootstrap_servers: str, topic: str, *,
                 delivery: str = "at_least_once", key_serializer: Any = "bytes",
                 value_serializer: Any = "bytes", partitioner: Any = None,
                 headers: HeadersSpec = None, producer_config: Optional[Dict[str, Any]] = None,
                 connection_timeout: float = 10.0, flush_timeout: float = 30.0) -> None:
        super().__init__()
        self.owner = owner = f"WriteToKafka({topic})"
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"{owner}: topic must be a non-empty string")
        if delivery not in _DELIVERIES:
            raise ValueError(f"{owner}: delivery must be one of {_DELIVERIES}, got {delivery!r}")
        if delivery == "exactly_once":
            raise NotImplementedError(
                f"{owner}: delivery='exactly_once' needs checkpointing (a Kafka transaction "
                f"per checkpoint, committed when the checkpoint completes), which headrace "
                f"does not have yet; it comes with the checkpoint runtime. Use "
                f"delivery='at_least_once' until then.")
        if not (partitioner is None or isinstance(partitioner, str) or callable(partitioner)):
            raise TypeError(f"{owner}: partitioner must be None, a librdkafka partitioner "
                            f"name or fn(key, value, num_partitions), got {partitioner!r:.100}")
        if not (headers is None or isinstance(headers, (dict, list)) or callable(headers)):
            raise TypeError(f"{owner}: headers must be a dict, a list of (name, value) or "
                            f"fn(element), got {headers!r:.100}")
        if connection_timeout <= 0 or flush_timeout <= 0:
            raise ValueError(f"{owner}: connection_timeout and flush_timeout must be > 0")
        client_config(owner, bootstrap_servers)
        resolve_serializer(key_serializer, "key", owner)
        resolve_serializer(value_serializer, "value", owner)
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.delivery = delivery
        self.key_serializer = key_serializer
        self.value_serializer = value_serializer
        self.partitioner = partitioner
        self.headers = headers
        self.producer_config = dict(producer_config or {})
        self.connection_timeout = connection_timeout
        self.flush_timeout = flush_timeout

    def expand(self, pcoll: PCollection) -> PCollection:
        return pcoll | "Produce" >> ParDo(_KafkaWriteFn(self))
