"""Exactly-once Kafka output: a two-phase-commit sink on Kafka transactions.

The protocol is written down in docs/ARCHITECTURE.md ("Exactly-once Kafka output"). In
short, per sink subtask: the records written between two checkpoint barriers (an
*epoch*) go into one transaction of one producer of a small pool of transactional
producers with stable ids ``<prefix>/<subtask>/<k>``; at barrier N the writer adds a
progress marker (a transactional offset commit of offset N for the subtask's marker
group, on partition 0 of the output topic), flushes, and hands back the epoch as a
committable that keeps a copy of its records; when checkpoint N completes the committer
commits that transaction. After a crash the restored committables are committed again:
the committer fences the transactional id (aborting what a zombie left open), reads the
marker, and produces again, in a fresh transaction with the same marker, every epoch the
marker says did not get through. librdkafka cannot resume another process's transaction;
this copy of the epoch is what makes the repair possible.

>>> sink = KafkaTransactionalSink("h:9092", "out", "job/Write/out", {}, 60.0)
>>> sink.transactional_id(2, 1), sink.marker_group(2)
('job/Write/out/2/1', 'headrace-sink/job/Write/out/2')
"""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, NamedTuple, Optional, Set

from headrace.io.kafka.client import client_config, require_confluent
from headrace.io.kafka.producing import Encoded, RecordEncoder, produce, topic_partitions
from headrace.sdk.io_base import Committer, CommittingSink, CommittingSinkWriter

LOG = logging.getLogger(__name__)
#: Suffix of the group that records committed epochs outside transactions.
DONE = "/done"


class KafkaEpoch(NamedTuple):
    """A committable: one pre-committed transaction (the records of one epoch)."""

    transactional_id: str
    marker_group: str
    #: The checkpoint id whose barrier ended the epoch; also the marker's offset.
    epoch: int
    records: List[Encoded]


class _Pool:
    """A subtask's transactional producers, shared by its writer and its committer (they
    live in the same process and reach the pool through the sink instance)."""

    def __init__(self) -> None:
        self.producers: Dict[str, Any] = {}
        self.free: List[str] = []
        #: Transactional id -> the epoch it holds pre-committed.
        self.prepared: Dict[str, int] = {}

    def close(self) -> None:
        for producer in self.producers.values():
            producer.flush(0)
        self.producers.clear()
        self.free.clear()
        self.prepared.clear()


class KafkaTransactionalSink(CommittingSink):
    """The sink behind ``WriteToKafka(delivery="exactly_once")``.

    Args:
      transactional_id_prefix: stable across restarts of the job (ids are
        ``<prefix>/<subtask>/<k>``), distinct between jobs writing concurrently.
      encoding: ``RecordEncoder`` arguments: serializers, partitioner and headers.
      flush_timeout: seconds a flush, a transaction call or a commit may take.
    """

    def __init__(self, bootstrap_servers: str, topic: str, transactional_id_prefix: str,
                 encoding: Dict[str, Any], flush_timeout: float, *,
                 producer_config: Optional[Dict[str, Any]] = None,
                 connection_timeout: float = 10.0, pool_size: int = 3,
                 owner: Optional[str] = None) -> None:
        if pool_size < 2:
            raise ValueError(f"{owner or topic}: the producer pool needs at least 2 "
                             f"producers (output after a barrier must not wait for the "
                             f"commit), got {pool_size}")
        self.owner = owner or f"WriteToKafka({topic})"
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.prefix = transactional_id_prefix
        self.encoding = dict(encoding)
        self.flush_timeout = flush_timeout
        self.producer_config = dict(producer_config or {})
        self.connection_timeout = connection_timeout
        self.pool_size = pool_size
        self._pools: Dict[int, _Pool] = {}
        self._group_metadata: Dict[str, Any] = {}
        self._done_consumers: Dict[str, Any] = {}

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_pools"] = {}  # live producers stay in their process
        state["_group_metadata"] = {}
        state["_done_consumers"] = {}
        return state

    def display_name(self) -> str:
        return self.owner

    def transactional_id(self, subtask: int, k: int) -> str:
        return f"{self.prefix}/{subtask}/{k}"

    def marker_group(self, subtask: int) -> str:
        return f"headrace-sink/{self.prefix}/{subtask}"

    # -- clients --------------------------------------------------------------------------

    def _kafka(self) -> Any:
        return require_confluent(self.owner)

    def new_producer(self, transactional_id: str) -> Any:
        """A transactional producer, initialised: this fences every older producer with
        the same id and aborts the transaction it left open."""
        kafka = self._kafka()
        settings: Dict[str, Any] = {"transactional.id": transactional_id,
                                    "enable.idempotence": True, "acks": "all",
                                    "linger.ms": 5}
        if isinstance(self.encoding.get("partitioner"), str):
            settings["partitioner"] = self.encoding["partitioner"]
        settings.update(self.producer_config)
        producer = kafka.Producer(client_config(self.owner, self.bootstrap_servers, settings))
        try:
            producer.init_transactions(self.connection_timeout)
        except kafka.KafkaException as exc:
            raise ConnectionError(
                f"{self.owner}: cannot initialise the transactional producer "
                f"{transactional_id!r} on {self.bootstrap_servers} within "
                f"{self.connection_timeout:g}s (connection_timeout): {exc.args[0].str()}"
            ) from None
        return producer

    def read_marker(self, group: str) -> int:
        """The last epoch known committed for marker group ``group`` (0: none): the
        transactional marker (visible once its transaction commits), or the plain one
        written after each successful commit if it is higher (see :meth:`mark_done`)."""
        return max(self._committed_offset(group), self._committed_offset(group + DONE))

    def _committed_offset(self, group: str) -> int:
        kafka = self._kafka()
        consumer = kafka.Consumer(client_config(self.owner, self.bootstrap_servers, {
            "group.id": group, "enable.auto.commit": False,
            "isolation.level": "read_committed"}))
        try:
            committed = consumer.committed([kafka.TopicPartition(self.topic, 0)],
                                           timeout=self.connection_timeout)
        except kafka.KafkaException as exc:
            raise ConnectionError(f"{self.owner}: cannot read the progress marker of group "
                                  f"{group!r}: {exc.args[0].str()}") from None
        finally:
            consumer.close()
        offset = committed[0].offset
        return offset if offset >= 0 else 0

    def mark_done(self, group: str, epoch: int) -> None:
        """Record, outside any transaction, that ``epoch`` committed (or, at open and
        restore, reset the record). A lower bound of the truth, since it is written only
        after the commit returned; it exists because some brokers (Tansu) keep a committed
        transaction's offset commit invisible while any other transaction is open on a
        partition it wrote to, which with overlapping epochs can be forever."""
        kafka = self._kafka()
        consumer = self._done_consumers.get(group)
        if consumer is None:
            consumer = self._done_consumers[group] = kafka.Consumer(client_config(
                self.owner, self.bootstrap_servers,
                {"group.id": group + DONE, "enable.auto.commit": False}))
        try:
            consumer.commit(offsets=[kafka.TopicPartition(self.topic, 0, epoch)],
                            asynchronous=False)
        except kafka.KafkaException as exc:
            raise RuntimeError(f"{self.owner}: cannot record checkpoint {epoch} as committed "
                               f"for group {group!r}: {exc.args[0].str()}") from None

    def send_marker(self, producer: Any, group: str, epoch: int) -> None:
        """Add the progress marker ``epoch`` to the producer's open transaction."""
        kafka = self._kafka()
        metadata = self._group_metadata.get(group)
        if metadata is None:
            metadata = self._group_metadata[group] = _group_metadata(kafka, self, group)
        producer.send_offsets_to_transaction([kafka.TopicPartition(self.topic, 0, epoch)],
                                             metadata, self.flush_timeout)

    def _encoder(self) -> RecordEncoder:
        probe = self._kafka().Producer(client_config(self.owner, self.bootstrap_servers))
        num_partitions = topic_partitions(self.owner, probe, self.bootstrap_servers,
                                          self.topic, self.connection_timeout)
        return RecordEncoder(self.owner, self.topic, self.encoding.get("key_serializer",
                                                                          "bytes"),
                             self.encoding.get("value_serializer", "bytes"),
                             self.encoding.get("partitioner"), self.encoding.get("headers"),
                             num_partitions)

    # -- the CommittingSink interface ---------------------------------------------------------

    def open_writer(self, writer_index: int, num_writers: int) -> "KafkaTransactionalWriter":
        """A fresh start: fence this subtask's ids and set its marker to 0 (a marker left
        by an earlier run of the job must not count for this run's epochs)."""
        writer = KafkaTransactionalWriter(self, writer_index, num_writers, set())
        writer.set_marker(0)
        return writer

    def restore_writer(self, writer_index: int, num_writers: int,
                       states: List[Any]) -> "KafkaTransactionalWriter":
        """After a restore from checkpoint N (whose epochs the committer has published by
        now): also fence the ids of old subtasks that no longer exist and fall to this one
        (``old % num_writers == writer_index``), and set the marker to N, so that a marker
        left by a later timeline (a restore from an older checkpoint) cannot hide this
        one's epochs."""
        states = [s for s in states if s]
        widest = max([num_writers] + [s["parallelism"] for s in states])
        orphans = {old for old in range(num_writers, widest) if old % num_writers
                   == writer_index}
        writer = KafkaTransactionalWriter(self, writer_index, num_writers, orphans,
                                          max_parallelism=widest)
        writer.set_marker(max([0] + [s["checkpoint"] for s in states]))
        return writer

    def create_committer(self, writer_index: int, num_writers: int) -> "KafkaCommitter":
        return KafkaCommitter(self, writer_index)

    def finalize(self, writer_results: List[Any]) -> List[Any]:
        """The Write's output: the number of records committed, over all subtasks."""
        return [sum(writer_results)]

    def close_clients(self) -> None:
        for consumer in self._done_consumers.values():
            consumer.close()
        self._done_consumers.clear()

    def pool(self, writer_index: int) -> _Pool:
        return self._pools.setdefault(writer_index, _Pool())


def _group_metadata(kafka: Any, sink: KafkaTransactionalSink, group: str) -> Any:
    """Group metadata for a transactional offset commit to a group nobody subscribes to."""
    consumer = kafka.Consumer(client_config(sink.owner, sink.bootstrap_servers,
                                            {"group.id": group, "enable.auto.commit": False}))
    try:
        return consumer.consumer_group_metadata()
    finally:
        consumer.close()


class KafkaTransactionalWriter(CommittingSinkWriter):
    """Writes each epoch in a transaction of a pool producer; pre-commits at barriers."""

    def __init__(self, sink: KafkaTransactionalSink, index: int, num_writers: int,
                 orphans: Set[int], max_parallelism: int = 0) -> None:
        self.sink = sink
        self.owner = sink.owner
        self.index = index
        self.parallelism = max(num_writers, max_parallelism)
        self.kafka = sink._kafka()
        self.encoder = sink._encoder()
        for old in sorted(orphans):  # fence, abort and forget: nothing will write there
            for k in range(sink.pool_size):
                sink.new_producer(sink.transactional_id(old, k)).flush(0)
        self.pool = sink.pool(index)
        self.pool.close()
        for k in range(sink.pool_size):
            tid = sink.transactional_id(index, k)
            self.pool.producers[tid] = sink.new_producer(tid)
            self.pool.free.append(tid)
        self.current: Optional[str] = None
        self.records: List[Encoded] = []
        self.errors: List[str] = []
        self.committed_records = 0

    def set_marker(self, epoch: int) -> None:
        """Commit marker ``epoch`` for this subtask's group in an otherwise empty
        transaction."""
        producer = self.pool.producers[self.pool.free[0]]
        group = self.sink.marker_group(self.index)
        producer.begin_transaction()
        self.sink.send_marker(producer, group, epoch)
        self._end(producer.commit_transaction, "commit the marker in")
        self.sink.mark_done(group, epoch)

    def _end(self, call: Any, what: str) -> None:
        try:
            call(self.sink.flush_timeout)
        except self.kafka.KafkaException as exc:
            raise RuntimeError(f"{self.owner}: could not {what} a transaction on topic "
                               f"{self.sink.topic!r}: {exc.args[0].str()}") from None

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is not None and len(self.errors) < 10:
            self.errors.append(error.str())

    def _begin(self) -> Any:
        if not self.pool.free:
            raise RuntimeError(
                f"{self.owner}: all {self.sink.pool_size} transactional producers hold "
                f"transactions waiting for their checkpoints to complete; raise pool_size "
                f"to allow more checkpoints in flight")
        self.current = self.pool.free.pop(0)
        producer = self.pool.producers[self.current]
        producer.begin_transaction()
        return producer

    def write(self, element: Any) -> None:
        self.write_batch((element,))

    def write_batch(self, elements: Any) -> None:
        producer = (self.pool.producers[self.current] if self.current is not None
                    else None)
        for element in elements:
            record = self.encoder.encode(element)
            if producer is None:
                producer = self._begin()
            produce(self.kafka, producer, self.owner, self.sink.topic, record,
                    self._on_delivery)
            self.records.append(record)
        if producer is not None:
            producer.poll(0)

    def prepare_commit(self, checkpoint_id: int) -> List[KafkaEpoch]:
        """Add the marker ``checkpoint_id`` to the open transaction and flush it."""
        if self.current is None:
            return []
        tid, records = self.current, self.records
        producer = self.pool.producers[tid]
        group = self.sink.marker_group(self.index)
        self.sink.send_marker(producer, group, checkpoint_id)
        remaining = producer.flush(self.sink.flush_timeout)
        if self.errors:
            errors, self.errors = self.errors, []
            raise RuntimeError(f"{self.owner}: Kafka did not accept records for topic "
                               f"{self.sink.topic!r}: {'; '.join(errors)}")
        if remaining:
            raise TimeoutError(f"{self.owner}: {remaining} records for topic "
                               f"{self.sink.topic!r} were not acknowledged within "
                               f"{self.sink.flush_timeout:g}s")
        self.pool.prepared[tid] = checkpoint_id
        self.current, self.records = None, []
        self.committed_records += len(records)
        return [KafkaEpoch(tid, group, checkpoint_id, records)]

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return {"subtask": self.index, "parallelism": self.parallelism,
                "checkpoint": checkpoint_id}

    def close(self) -> int:
        """Abort a transaction never pre-committed (the job is failing or the input ended
        without a last ``prepare_commit``); leave pre-committed ones to the committer or to
        the repair after a restore. Returns the number of records pre-committed."""
        if self.current is not None:
            producer = self.pool.producers[self.current]
            try:
                producer.abort_transaction(min(self.sink.flush_timeout, 5.0))
            except self.kafka.KafkaException as exc:
                LOG.warning("%s: aborting an open transaction failed: %s", self.owner, exc)
            self.current, self.records = None, []
        if not self.pool.prepared:
            self.pool.close()
        return self.committed_records


class KafkaCommitter(Committer):
    """Commits pre-committed epochs; repairs restored ones the marker says are missing."""

    def __init__(self, sink: KafkaTransactionalSink, index: int) -> None:
        self.sink = sink
        self.owner = sink.owner
        self.index = index
        self.kafka = sink._kafka()

    def commit(self, committables: List[KafkaEpoch]) -> None:
        pool = self.sink.pool(self.index)
        markers: Dict[str, int] = {}
        for epoch in sorted(committables, key=lambda c: c.epoch):
            tid = epoch.transactional_id
            if pool.prepared.get(tid) == epoch.epoch:
                self._commit_live(pool, tid, epoch)
            else:
                self._repair(epoch, markers)

    def _commit_live(self, pool: _Pool, tid: str, epoch: KafkaEpoch) -> None:
        producer = pool.producers[tid]
        try:
            producer.commit_transaction(self.sink.flush_timeout)
        except self.kafka.KafkaException as exc:
            # Fenced (a newer attempt runs) or timed out: the job fails; the marker tells
            # the restore whether this epoch got through.
            raise RuntimeError(f"{self.owner}: committing the transaction of checkpoint "
                               f"{epoch.epoch} on topic {self.sink.topic!r} failed: "
                               f"{exc.args[0].str()}") from None
        del pool.prepared[tid]
        pool.free.append(tid)
        self.sink.mark_done(epoch.marker_group, epoch.epoch)

    def _repair(self, epoch: KafkaEpoch, markers: Dict[str, int]) -> None:
        """Publish a restored epoch exactly once: fence its id first (a zombie can then no
        longer commit it, and a commit the broker already accepted completes), then the
        marker says whether it committed; if not, produce its records again."""
        started = time.monotonic()
        producer = self.sink.new_producer(epoch.transactional_id)
        group = epoch.marker_group
        if group not in markers:
            markers[group] = self.sink.read_marker(group)
        if epoch.epoch <= markers[group]:
            producer.flush(0)
            return
        errors: List[str] = []
        producer.begin_transaction()
        for record in epoch.records:
            produce(self.kafka, producer, self.owner, self.sink.topic, record,
                    lambda error, _m: error is not None and errors.append(error.str()))
        self.sink.send_marker(producer, group, epoch.epoch)
        producer.flush(self.sink.flush_timeout)
        if errors:
            raise RuntimeError(f"{self.owner}: re-producing checkpoint {epoch.epoch}'s "
                               f"records failed: {'; '.join(errors[:5])}")
        try:
            producer.commit_transaction(self.sink.flush_timeout)
        except self.kafka.KafkaException as exc:
            raise RuntimeError(f"{self.owner}: committing the re-produced transaction of "
                               f"checkpoint {epoch.epoch} failed: {exc.args[0].str()}") from None
        markers[group] = epoch.epoch
        self.sink.mark_done(group, epoch.epoch)
        LOG.info("%s: re-produced %d records of checkpoint %d in %.2fs", self.owner,
                 len(epoch.records), epoch.epoch, time.monotonic() - started)

    def close(self) -> None:
        self.sink.pool(self.index).close()
        self.sink.close_clients()
