"""``ReadFromKafka``: Kafka topics as an unbounded (or bounded) PCollection.

>>> read = ReadFromKafka("127.0.0.1:9092", topics=["orders"], value_deserializer="json",
...                      stop_at="end")
>>> read.source.display_name()
'Kafka(orders)'
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

from headrace.io.kafka.client import client_config
from headrace.io.kafka.records import DeadLetter
from headrace.io.kafka.serde import resolve_deserializer
from headrace.io.kafka.source import KafkaReadConfig, KafkaSource
from headrace.sdk.dofn import DoFn
from headrace.sdk.metrics import Metrics
from headrace.sdk.pardo import ParDo
from headrace.sdk.primitives import Read
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import PBegin, TaggedOutput
from headrace.sdk.timestamp import to_micros
from headrace.sdk.watermarks import WatermarkStrategy

_STARTS = ("earliest", "latest", "committed")


class _RouteDeadLetters(DoFn):
    """Dead letters to the ``dead_letters`` output, counted; records to the main one."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    def setup(self) -> None:
        self.counter = Metrics.counter("kafka", "dead_letters")

    def process(self, element: Any) -> Iterator[Any]:
        if isinstance(element, DeadLetter):
            self.counter.inc()
            yield TaggedOutput("dead_letters", element)
        else:
            yield element


class _FailOnDeadLetter(DoFn):
    """Without a dead-letter output a record that cannot be deserialized fails the job."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    def process(self, element: Any) -> Iterator[Any]:
        if isinstance(element, DeadLetter):
            raise ValueError(f"{self.owner}: cannot deserialize the record at topic "
                             f"{element.topic!r} partition {element.partition} offset "
                             f"{element.offset}: {element.error} (pass with_dead_letters=True "
                             f"to route such records to a 'dead_letters' output instead)")
        yield element


def _skip_dead_letters(strategy: WatermarkStrategy) -> WatermarkStrategy:
    """The user's timestamp assigner sees deserialized records only; a dead letter keeps
    its Kafka timestamp."""
    assigner = strategy.timestamp_assigner
    if assigner is None:
        return strategy

    def assign(element: Any, previous: Any) -> Any:
        if isinstance(element, DeadLetter):
            return element.timestamp if element.timestamp is not None else (previous or 0.0)
        return assigner(element, previous)

    return WatermarkStrategy(strategy.max_out_of_orderness_micros, assign,
                             strategy.idle_timeout_micros)


def _check_stop_at(owner: str, stop_at: Any) -> Any:
    if stop_at is None or stop_at == "end":
        return stop_at
    if isinstance(stop_at, dict):
        ends = {}
        for key, offset in stop_at.items():
            if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)
                    and isinstance(key[1], int) and isinstance(offset, int) and offset >= 0):
                raise ValueError(f"{owner}: stop_at maps (topic, partition) to an end offset "
                                 f"(exclusive), got {key!r}: {offset!r}")
            ends[key] = offset
        return ends
    raise ValueError(f"{owner}: stop_at must be None, 'end' or a {{(topic, partition): "
                     f"offset}} dict, got {stop_at!r}")


class ReadFromKafka(PTransform):
    """Read Kafka topics; each partition is a split, read from ``start`` onwards.

    Elements are ``(key, value)`` pairs, or :class:`KafkaRecord` s with
    ``with_metadata=True`` (topic, partition, offset, timestamp, headers), timestamped with
    the record's Kafka timestamp. Each partition keeps its own watermark (the
    ``watermark_strategy``, by default bounded out-of-orderness 0 on the Kafka timestamps;
    add ``.with_idleness(...)`` so that an idle partition does not hold windows back).

    Args:
      bootstrap_servers: ``host:port[,host:port...]``.
      topics: topic names; or ``pattern``, a regular expression matched against every topic
        (new matching topics are picked up every ``discovery_interval`` seconds).
      start: ``"earliest"``, ``"latest"``, ``"committed"`` (the ``group_id``'s committed
        offsets, else earliest) or an event time (seconds or datetime): the first record
        at or after it.
      stop_at: ``None`` (unbounded), ``"end"`` (stop once caught up with each partition's
        end, for tests and batch jobs), or ``{(topic, partition): end_offset}``.
      max_records_per_partition: stop each partition after this many records (bounded).
      key_deserializer, value_deserializer: ``"bytes"``, ``"str"``, ``"json"``, a function
        of the bytes, or a ``confluent_kafka`` Deserializer (e.g. schema-registry Avro).
      with_dead_letters: route records that fail to deserialize to a ``dead_letters``
        output (:class:`DeadLetter`, counted as metric ``kafka/dead_letters``); the result
        is then ``(records, dead_letters)``. Otherwise such a record fails the job.
      group_id: the consumer group offsets are committed to (as a progress signal only:
        positions live with the reader), every ``commit_offsets`` seconds and at the end;
        ``commit_offsets="at_end"`` only at the end, ``None`` never.
      consumer_config: extra librdkafka settings (e.g. security), overriding the defaults
        (``isolation.level=read_committed``).
      connection_timeout: seconds to wait for the cluster's metadata before failing.
    """

    def __init__(self, bootstrap_servers: str, topics: Union[str, Sequence[str], None] = None,
                 pattern: Optional[str] = None, *, start: Any = "earliest",
                 stop_at: Union[None, str, Dict[Tuple[str, int], int]] = None,
                 max_records_per_partition: Optional[int] = None,
                 key_deserializer: Any = "bytes", value_deserializer: Any = "bytes",
                 with_metadata: bool = False, with_dead_letters: bool = False,
                 group_id: Optional[str] = None, commit_offsets: Union[None, str, float] = 5.0,
                 watermark_strategy: Optional[WatermarkStrategy] = None,
                 consumer_config: Optional[Dict[str, Any]] = None,
                 connection_timeout: float = 10.0,
                 discovery_interval: Optional[float] = 30.0) -> None:
        super().__init__()
        topic_list = [topics] if isinstance(topics, str) else (
            list(topics) if topics is not None else None)
        owner = f"ReadFromKafka({','.join(topic_list) if topic_list else pattern})"
        if (topic_list is None) == (pattern is None) or topic_list == []:
            raise ValueError(f"{owner}: give either topics or pattern (not both)")
        if isinstance(start, str):
            if start not in _STARTS:
                raise ValueError(f"{owner}: start must be one of {_STARTS} or an event time, "
                                 f"got {start!r}")
            if start == "committed" and not group_id:
                raise ValueError(f"{owner}: start='committed' needs a group_id")
        else:
            start = to_micros(start, f"{owner} start") / 1e6
        if max_records_per_partition is not None and max_records_per_partition < 0:
            raise ValueError(f"{owner}: max_records_per_partition must be >= 0, got "
                             f"{max_records_per_partition!r}")
        if not (commit_offsets is None or commit_offsets == "at_end"
                or (isinstance(commit_offsets, (int, float)) and commit_offsets > 0)):
            raise ValueError(f"{owner}: commit_offsets must be seconds > 0, 'at_end' or None, "
                             f"got {commit_offsets!r}")
        if connection_timeout <= 0:
            raise ValueError(f"{owner}: connection_timeout must be > 0 seconds")
        self.owner = owner
        self.with_dead_letters = with_dead_letters
        self.config = KafkaReadConfig(
            owner, bootstrap_servers, topic_list, pattern, start, group_id,
            _check_stop_at(owner, stop_at), max_records_per_partition, key_deserializer,
            value_deserializer, with_metadata, dict(consumer_config or {}),
            connection_timeout, commit_offsets, discovery_interval)
        client_config(owner, bootstrap_servers)  # validates bootstrap_servers
        resolve_deserializer(key_deserializer, "key", owner)
        resolve_deserializer(value_deserializer, "value", owner)
        self.source = KafkaSource(self.config)
        strategy = (watermark_strategy if watermark_strategy is not None
                    else self.source.default_watermark_strategy())
        self.watermark_strategy = _skip_dead_letters(strategy)

    def expand(self, pbegin: PBegin) -> Any:
        records = pbegin | "Read" >> Read(self.source, self.watermark_strategy)
        if self.with_dead_letters:
            return records | "RouteDeadLetters" >> ParDo(
                _RouteDeadLetters(self.owner)).with_outputs("dead_letters", main="records")
        return records | "Deserialized" >> ParDo(_FailOnDeadLetter(self.owner))
