"""``WriteToKafka``: a PCollection of ``(key, value)`` pairs (or ``KafkaRecord`` s) to a topic.

``delivery="at_least_once"`` waits for every record of a bundle to be acknowledged at the
bundle's end, so a failure surfaces before the job moves on; ``"none"`` is fire-and-forget.
``"exactly_once"`` writes the records between two checkpoint barriers in one Kafka
transaction per sink subtask, committed when the checkpoint completes (without
checkpointing: one transaction per subtask, committed at the end of the input); the
protocol is in docs/ARCHITECTURE.md and ``headrace.io.kafka.transactional``. Readers must
use ``isolation.level=read_committed`` (``ReadFromKafka``'s default).

>>> WriteToKafka("127.0.0.1:9092", "alerts", delivery="exactly_once",
...              transaction_timeout=1, flush_timeout=5)
Traceback (most recent call last):
...
ValueError: WriteToKafka(alerts): transaction_timeout (1s) must exceed flush_timeout (5s)
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from headrace.io.kafka.client import client_config, require_confluent
from headrace.io.kafka.producing import RecordEncoder, produce, topic_partitions
from headrace.io.kafka.serde import resolve_serializer
from headrace.sdk.dofn import DoFn
from headrace.sdk.options import CheckpointingOptions, HeadraceOptions
from headrace.sdk.pardo import ParDo
from headrace.sdk.primitives import Write
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
        num_partitions = topic_partitions(self.owner, self.producer, self.bootstrap_servers,
                                          self.topic, self.connection_timeout)
        self.encoder = RecordEncoder(self.owner, self.topic, self.key_serializer,
                                     self.value_serializer, self.partitioner, self.headers,
                                     num_partitions)
        self.errors: List[str] = []

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is not None and len(self.errors) < 10:
            self.errors.append(error.str())

    def process(self, element: Any) -> Iterator[Any]:
        produce(self.kafka, self.producer, self.owner, self.topic,
                self.encoder.encode(element), self._on_delivery)
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
        at every bundle end), ``"none"`` (fire-and-forget) or ``"exactly_once"`` (Kafka
        transactions committed when checkpoints complete).
      key_serializer, value_serializer: ``"bytes"``, ``"str"``, ``"json"``, a function or a
        ``confluent_kafka`` Serializer (schema-registry Avro, ...).
      partitioner: ``None`` (librdkafka's default: by key hash), a librdkafka partitioner
        name (``"murmur2_random"`` is the Java client's) or ``fn(key, value, num_partitions)``.
      headers: a dict or ``[(name, value)]`` added to every record, or ``fn(element)``.
      connection_timeout: seconds to wait for the cluster at start before failing.
      flush_timeout: seconds a flush (or a transaction's commit) may wait before failing.
      transactional_id_prefix: exactly_once only: transactional ids are
        ``<prefix>/<subtask>/<k>``; must stay the same when a job restarts from a
        checkpoint and differ between jobs running at once (default: the job name, the
        transform's label and the topic).
      transaction_timeout: exactly_once only: seconds the broker lets a transaction stay
        open (``transaction.timeout.ms``); must exceed the checkpoint interval, since a
        transaction spans one, and stay within the broker's
        ``transaction.max.timeout.ms``.
      producer_pool_size: exactly_once only: transactional producers per subtask
        (>= 2 + checkpoints in flight).
    """

    def __init__(self, bootstrap_servers: str, topic: str, *,
                 delivery: str = "at_least_once", key_serializer: Any = "bytes",
                 value_serializer: Any = "bytes", partitioner: Any = None,
                 headers: HeadersSpec = None, producer_config: Optional[Dict[str, Any]] = None,
                 connection_timeout: float = 10.0, flush_timeout: float = 30.0,
                 transactional_id_prefix: Optional[str] = None,
                 transaction_timeout: float = 300.0, producer_pool_size: int = 3) -> None:
        super().__init__()
        self.owner = owner = f"WriteToKafka({topic})"
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"{owner}: topic must be a non-empty string")
        if delivery not in _DELIVERIES:
            raise ValueError(f"{owner}: delivery must be one of {_DELIVERIES}, got {delivery!r}")
        if not (partitioner is None or isinstance(partitioner, str) or callable(partitioner)):
            raise TypeError(f"{owner}: partitioner must be None, a librdkafka partitioner "
                            f"name or fn(key, value, num_partitions), got {partitioner!r:.100}")
        if not (headers is None or isinstance(headers, (dict, list)) or callable(headers)):
            raise TypeError(f"{owner}: headers must be a dict, a list of (name, value) or "
                            f"fn(element), got {headers!r:.100}")
        if connection_timeout <= 0 or flush_timeout <= 0:
            raise ValueError(f"{owner}: connection_timeout and flush_timeout must be > 0")
        if delivery == "exactly_once" and transaction_timeout <= flush_timeout:
            # A transaction must outlive its own flush and commit.
            raise ValueError(f"{owner}: transaction_timeout ({transaction_timeout:g}s) must "
                             f"exceed flush_timeout ({flush_timeout:g}s)")
        if producer_pool_size < 2:
            raise ValueError(f"{owner}: producer_pool_size must be >= 2 (output after a "
                             f"barrier must not wait for that checkpoint's commit), got "
                             f"{producer_pool_size}")
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
        self.transactional_id_prefix = transactional_id_prefix
        self.transaction_timeout = transaction_timeout
        self.producer_pool_size = producer_pool_size

    def expand(self, pcoll: PCollection) -> PCollection:
        if self.delivery != "exactly_once":
            return pcoll | "Produce" >> ParDo(_KafkaWriteFn(self))
        return pcoll | "Transactions" >> Write(self._transactional_sink(pcoll))

    def _transactional_sink(self, pcoll: PCollection) -> Any:
        from headrace.io.kafka.transactional import KafkaTransactionalSink

        options = pcoll.pipeline.options
        interval = options.view_as(CheckpointingOptions).checkpoint_interval
        if interval is not None and self.transaction_timeout <= interval:
            raise ValueError(
                f"{self.owner}: transaction_timeout ({self.transaction_timeout:g}s) must "
                f"exceed --checkpoint_interval ({interval:g}s): a transaction stays open "
                f"from one checkpoint barrier until the next checkpoint completes")
        prefix = self.transactional_id_prefix
        if prefix is None:
            job = options.view_as(HeadraceOptions).job_name or "headrace"
            prefix = f"{job}/{pcoll.pipeline.current_node().full_label}/{self.topic}"
        config = {"transaction.timeout.ms": int(self.transaction_timeout * 1000),
                  **self.producer_config}
        encoding = {"key_serializer": self.key_serializer,
                    "value_serializer": self.value_serializer,
                    "partitioner": self.partitioner, "headers": self.headers}
        return KafkaTransactionalSink(
            self.bootstrap_servers, self.topic, prefix, encoding, self.flush_timeout,
            producer_config=config, connection_timeout=self.connection_timeout,
            pool_size=self.producer_pool_size, owner=self.owner)
