"""The Kafka source: one split per topic partition, read with manual assignment.

Every reader of a source instance shares one consumer (``_Fetcher``): librdkafka fetches
all of its assigned partitions in the background and the fetcher hands each message to
its partition's reader. There is no consumer-group rebalancing: the runner assigns splits
to subtasks (``SourceSplit.assignment_key``) and a split's position is the next offset to
read, so a checkpoint can store it. Offsets are committed back to ``group_id`` only as a
progress signal for lag tools (``commit_offsets``).

Broker quirks the reader does not rely on: some brokers (Tansu) report a high watermark
below the real end of the log and answer offset-for-timestamp look-ups with 0, so
``stop_at="end"`` ends when the consumer has caught up with the log (librdkafka's
partition-EOF event), and a timestamp start also skips records before the first one at or
after the timestamp.
"""
from __future__ import annotations

import collections
import re
import time
import uuid
import zlib
from typing import Any, Deque, Dict, List, Optional, Tuple

from headrace.io.kafka.client import (
    LOGGER,
    client_config,
    list_topics,
    partitions_of,
    require_confluent,
)
from headrace.io.kafka.records import DeadLetter, KafkaRecord
from headrace.io.kafka.serde import resolve_deserializer
from headrace.sdk.io_base import Source, SourceSplit, SplitReader
from headrace.sdk.watermarks import WatermarkStrategy
from headrace.sdk.window import TimestampedValue

TopicPartitionKey = Tuple[str, int]
#: Messages taken from librdkafka per consume call.
_FETCH_MAX = 2000
#: How long a bounded reader waits for data per call (it has no runner sleep to yield to).
_BOUNDED_WAIT = 0.05


class KafkaReadConfig:
    """Everything a Kafka split needs; picklable (clients are made on the worker)."""

    def __init__(self, owner: str, bootstrap_servers: str, topics: Optional[List[str]],
                 pattern: Optional[str], start: Any, group_id: Optional[str],
                 stop_at: Any, max_records_per_partition: Optional[int],
                 key_deserializer: Any, value_deserializer: Any, with_metadata: bool,
                 consumer_config: Dict[str, Any], connection_timeout: float,
                 commit_offsets: Any, discovery_interval: Optional[float]) -> None:
        self.owner = owner
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.pattern = pattern
        self.start = start
        self.group_id = group_id
        self.stop_at = stop_at
        self.max_records_per_partition = max_records_per_partition
        self.key_deserializer = key_deserializer
        self.value_deserializer = value_deserializer
        self.with_metadata = with_metadata
        self.consumer_config = consumer_config
        self.connection_timeout = connection_timeout
        self.commit_offsets = commit_offsets
        self.discovery_interval = discovery_interval

    @property
    def bounded(self) -> bool:
        return self.stop_at is not None or self.max_records_per_partition is not None


class _Fetcher:
    """One consumer shared by the readers of a source instance in one process."""

    def __init__(self, config: KafkaReadConfig) -> None:
        kafka = require_confluent(config.owner)
        self.kafka = kafka
        self.config = config
        settings = {"group.id": config.group_id or f"headrace-{uuid.uuid4().hex[:12]}",
                    "enable.auto.commit": False, "enable.auto.offset.store": False,
                    "enable.partition.eof": True, "isolation.level": "read_committed",
                    "auto.offset.reset": "earliest"}
        settings.update(config.consumer_config)
        self.consumer = kafka.Consumer(client_config(config.owner, config.bootstrap_servers,
                                                     settings))
        errors = kafka.KafkaError
        #: Partition errors that retrying cannot fix: the job fails, naming the partition.
        self.fatal_codes = {errors.UNKNOWN_TOPIC_OR_PART, errors.TOPIC_AUTHORIZATION_FAILED,
                            errors.GROUP_AUTHORIZATION_FAILED, errors._UNKNOWN_PARTITION,
                            errors._UNKNOWN_TOPIC, errors.OFFSET_OUT_OF_RANGE}
        self.buffers: Dict[TopicPartitionKey, Deque[Any]] = {}
        self.eof: Dict[TopicPartitionKey, int] = {}
        self.readers = 0
        #: Next offsets of the partitions read, and what the group last got of them.
        self.positions: Dict[TopicPartitionKey, int] = {}
        self.committed: Dict[TopicPartitionKey, int] = {}
        interval = config.commit_offsets
        self.commit_interval = (interval if isinstance(interval, (int, float))
                                and not isinstance(interval, bool) else None)
        self.next_commit = time.monotonic() + (self.commit_interval or 0)

    def assign(self, tp: TopicPartitionKey, offset: int) -> None:
        self.buffers[tp] = collections.deque()
        self.readers += 1
        self.consumer.incremental_assign([self.kafka.TopicPartition(tp[0], tp[1], offset)])

    def unassign(self, tp: TopicPartitionKey) -> bool:
        """Stop fetching ``tp``; True when it was the last partition (close the fetcher)."""
        self.buffers.pop(tp, None)
        self.eof.pop(tp, None)
        self.positions.pop(tp, None)
        self.committed.pop(tp, None)
        self.consumer.incremental_unassign([self.kafka.TopicPartition(tp[0], tp[1])])
        self.readers -= 1
        return self.readers == 0

    def fetch(self, wait: float) -> None:
        for message in self.consumer.consume(_FETCH_MAX, wait):
            tp = (message.topic(), message.partition())
            error = message.error()
            if error is not None:
                if error.code() == self.kafka.KafkaError._PARTITION_EOF:
                    self.eof[tp] = message.offset()
                    continue
                if not error.fatal() and error.code() not in self.fatal_codes:
                    # Transport errors and the like: librdkafka reconnects by itself.
                    LOGGER.warning("%s: %s", self.config.owner, error.str())
                    continue
                raise RuntimeError(f"{self.config.owner}: reading Kafka topic "
                                   f"{message.topic()!r} partition {message.partition()} "
                                   f"failed: {error.str()}")
            buffer = self.buffers.get(tp)
            if buffer is not None:  # else: a message of a partition released meanwhile
                buffer.append(message)
                self.eof.pop(tp, None)

    def commit(self, offsets: Dict[TopicPartitionKey, int], asynchronous: bool) -> None:
        """Commit next-offsets to the consumer group (a progress signal, not state)."""
        fresh = {tp: o for tp, o in offsets.items() if self.committed.get(tp) != o}
        if fresh and self.config.group_id and self.config.commit_offsets is not None:
            self.consumer.commit(offsets=[self.kafka.TopicPartition(t, p, o)
                                          for (t, p), o in fresh.items()],
                                 asynchronous=asynchronous)
            self.committed.update(fresh)

    def maybe_commit(self) -> None:
        """The periodic progress commit of every partition this fetcher reads."""
        if self.commit_interval is not None and time.monotonic() >= self.next_commit:
            self.next_commit = time.monotonic() + self.commit_interval
            self.commit(self.positions, asynchronous=True)

    def close(self) -> None:
        self.consumer.close()


class _PartitionReader(SplitReader):
    def __init__(self, split: "KafkaPartitionSplit", position: Any) -> None:
        self.split = split
        self.config = split.source.config
        self.tp = (split.topic, split.partition)
        cfg = self.config
        self.decode_key = resolve_deserializer(cfg.key_deserializer, "key", cfg.owner)
        self.decode_value = resolve_deserializer(cfg.value_deserializer, "value", cfg.owner)
        # With max_records_per_partition the position also carries the count read so far
        # ([next offset, count]), so that a restore does not read the limit again.
        self.count = 0
        if isinstance(position, (list, tuple)):
            position, self.count = position
        self.next_offset: Optional[int] = position
        self.skip_before_ms: Optional[int] = None
        self.end_offset = None
        if isinstance(cfg.stop_at, dict):
            self.end_offset = cfg.stop_at.get(self.tp)
        self.fetcher = split.source.fetcher()
        self.fetcher.assign(self.tp, self._start_offset(position))
        self.closed = False

    def _start_offset(self, position: Optional[int]) -> int:
        kafka, cfg = self.fetcher.kafka, self.config
        if position is not None:
            return position
        start = cfg.start
        if start == "earliest":
            return kafka.OFFSET_BEGINNING
        if start == "latest":
            return kafka.OFFSET_END
        if start == "committed":
            return kafka.OFFSET_STORED  # falls back to auto.offset.reset (earliest)
        millis = int(start * 1000)
        looked_up = self.fetcher.consumer.offsets_for_times(
            [kafka.TopicPartition(self.tp[0], self.tp[1], millis)],
            timeout=cfg.connection_timeout)[0]
        self.skip_before_ms = millis
        return kafka.OFFSET_END if looked_up.offset < 0 else looked_up.offset

    def _exhausted(self) -> bool:
        cfg = self.config
        if cfg.max_records_per_partition is not None \
                and self.count >= cfg.max_records_per_partition:
            return True
        if self.end_offset is not None and (self.next_offset or 0) >= self.end_offset:
            return True
        # "end", and partitions a stop_at dict does not name, end once caught up.
        ends_at_eof = cfg.stop_at == "end" or (isinstance(cfg.stop_at, dict)
                                               and self.end_offset is None)
        return (ends_at_eof and self.tp in self.fetcher.eof
                and not self.fetcher.buffers.get(self.tp))

    def read_batch(self, max_records: int) -> Optional[List[Any]]:
        if self._exhausted():
            return None
        self.fetcher.maybe_commit()
        buffer = self.fetcher.buffers[self.tp]
        if not buffer:
            self.fetcher.fetch(_BOUNDED_WAIT if self.config.bounded else 0)
            if not buffer:
                eof = self.fetcher.eof.get(self.tp)
                if eof is not None and self.next_offset is None:
                    self._advance(eof)  # resolved start: resume here, not at "latest"
                return None if self._exhausted() else []
        limit = max_records
        if self.config.max_records_per_partition is not None:
            limit = min(limit, self.config.max_records_per_partition - self.count)
        batch: List[Any] = []
        while buffer and len(batch) < limit:
            message = buffer.popleft()
            offset = message.offset()
            if self.end_offset is not None and offset >= self.end_offset:
                buffer.clear()
                self._advance(self.end_offset)
                break
            self._advance(offset + 1)
            kind, millis = message.timestamp()
            has_time = kind != self.fetcher.kafka.TIMESTAMP_NOT_AVAILABLE
            if self.skip_before_ms is not None:
                if has_time and millis < self.skip_before_ms:
                    continue
                self.skip_before_ms = None
            self.count += 1
            element = self._element(message, millis / 1000.0 if has_time else None)
            batch.append(element if not has_time else TimestampedValue(element, millis / 1000.0))
        return batch

    def _advance(self, next_offset: int) -> None:
        self.next_offset = self.fetcher.positions[self.tp] = next_offset

    def _element(self, message: Any, seconds: Optional[float]) -> Any:
        topic, headers = message.topic(), message.headers()
        try:
            key = self.decode_key(message.key(), topic, headers)
            value = self.decode_value(message.value(), topic, headers)
        except Exception as exc:  # bad data: a dead letter, routed by ReadFromKafka
            return DeadLetter(topic, message.partition(), message.offset(), message.key(),
                              message.value(), f"{type(exc).__name__}: {exc}", seconds,
                              tuple(headers or ()))
        if not self.config.with_metadata:
            return (key, value)
        return KafkaRecord(key, value, topic, message.partition(), message.offset(), seconds,
                           tuple(headers or ()))

    def position(self) -> Any:
        """The next offset to read (None before the start rule resolved to an offset); with
        ``max_records_per_partition``, ``[next offset, records read]``."""
        if self.config.max_records_per_partition is not None and self.next_offset is not None:
            return [self.next_offset, self.count]
        return self.next_offset

    def notify_checkpoint_complete(self, position: Any) -> None:
        """Commit ``position`` to the consumer group: the hook the checkpoint runtime will
        call once the checkpoint that stored ``position`` is complete. Until then offsets
        are committed every ``commit_offsets`` seconds and when the reader closes."""
        if isinstance(position, (list, tuple)):
            position = position[0]
        if position is not None:
            self.fetcher.commit({self.tp: position}, asynchronous=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.next_offset is not None:
            self.fetcher.commit({self.tp: self.next_offset}, asynchronous=False)
        if self.fetcher.unassign(self.tp):
            self.split.source.release_fetcher()


class KafkaPartitionSplit(SourceSplit):
    """One topic partition."""

    def __init__(self, source: "KafkaSource", topic: str, partition: int) -> None:
        self.source, self.topic, self.partition = source, topic, partition

    def open(self, position: Any = None) -> SplitReader:
        return _PartitionReader(self, position)

    def split_id(self) -> str:
        return f"{self.topic}-{self.partition}"

    def assignment_key(self) -> int:
        # A topic's partitions are dealt round-robin from a topic-dependent subtask.
        return (zlib.crc32(self.topic.encode("utf-8")) + self.partition) & 0x7FFFFFFF

    def __repr__(self) -> str:
        return f"KafkaPartitionSplit({self.topic!r}, {self.partition})"


class KafkaSource(Source):
    """The source behind ``ReadFromKafka``: the partitions of the topics, or of every
    topic matching the pattern, as splits."""

    def __init__(self, config: KafkaReadConfig) -> None:
        self.config = config
        self.is_bounded = config.bounded
        self.discovery_interval = config.discovery_interval
        self._fetcher: Optional[_Fetcher] = None

    def __getstate__(self) -> Dict[str, Any]:
        return {"config": self.config, "is_bounded": self.is_bounded,
                "discovery_interval": self.discovery_interval}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fetcher = None

    def fetcher(self) -> _Fetcher:
        if self._fetcher is None:
            self._fetcher = _Fetcher(self.config)
        return self._fetcher

    def release_fetcher(self) -> None:
        fetcher, self._fetcher = self._fetcher, None
        if fetcher is not None:
            fetcher.close()

    def _partitions(self) -> List[TopicPartitionKey]:
        cfg = self.config
        kafka = require_confluent(cfg.owner)
        # A short-lived client, closed at once: a librdkafka handle must not outlive its
        # use, or a forked worker that inherits and garbage-collects it blocks forever.
        client = kafka.Consumer(client_config(cfg.owner, cfg.bootstrap_servers,
                                              {"group.id": "headrace-metadata"}))
        try:
            topics = list_topics(cfg.owner, client, cfg.bootstrap_servers,
                                 cfg.connection_timeout)
        finally:
            client.close()
        if cfg.topics is not None:
            return partitions_of(cfg.owner, topics, cfg.topics, cfg.bootstrap_servers)
        regex = re.compile(cfg.pattern)
        names = [name for name in topics
                 if regex.fullmatch(name) and not name.startswith("__")]
        return partitions_of(cfg.owner, topics, names, cfg.bootstrap_servers)

    def split(self, desired_num_splits: int) -> List[SourceSplit]:
        return [KafkaPartitionSplit(self, topic, partition)
                for topic, partition in self._partitions()]

    def discover_splits(self) -> List[SourceSplit]:
        return self.split(1)

    def display_name(self) -> str:
        what = ",".join(self.config.topics) if self.config.topics else f"/{self.config.pattern}/"
        return f"Kafka({what})"

    def default_watermark_strategy(self) -> WatermarkStrategy:
        return WatermarkStrategy.for_bounded_out_of_orderness(0)
