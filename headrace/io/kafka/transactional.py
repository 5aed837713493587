"""Exactly-once Kafka output: a two-phase-commit sink on Kafka transactions.

The protocol is written down in docs/ARCHITECTURE.md ("Exactly-once Kafka output"). In
short, per sink subtask: the records written between two checkpoint barriers (an
*epoch*) go into one transaction of one producer of a small pool of transactional
producers with stable ids ``<prefix>/<subtask>/<k>``; at barrier N the writer adds a
progress marker (a record ``{"epoch": N}`` keyed by the subtask's progress key, on the
single partition of the progress topic, in the same transaction), flushes, and hands back
the epoch as a committable that keeps a copy of its records; when checkpoint N completes
the committer commits that transaction. After a crash the restored committables are
committed again: the committer fences their transactional ids (a zombie's open
transaction is aborted, a commit the broker accepted completes, and either way the
control marker is written), reads the progress partition's raw record batches, resolves
each transaction from its COMMIT/ABORT control marker (:mod:`headrace.io.kafka.rawlog`),
and produces again, in a fresh transaction with the same marker, every epoch whose marker
did not commit. librdkafka cannot resume another process's transaction; this copy of the
epoch is what makes the repair possible.

>>> sink = KafkaTransactionalSink("h:9092", "out", "job/Write/out", {}, 60.0)
>>> sink.transactional_id(2, 1), sink.progress_key(2), sink.progress_topic
('job/Write/out/2/1', 'headrace-sink/job/Write/out/2', 'out-headrace-progress')
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Dict, List, NamedTuple, Optional, Set

from headrace.io.kafka import rawlog
from headrace.io.kafka.client import client_config, list_topics, require_confluent
from headrace.io.kafka.producing import Encoded, RecordEncoder, produce, topic_partitions
from headrace.sdk.io_base import Committer, CommittingSink, CommittingSinkWriter

LOG = logging.getLogger(__name__)


class KafkaEpoch(NamedTuple):
    """A committable: one pre-committed transaction (the records of one epoch)."""

    transactional_id: str
    #: The key of the subtask's progress markers.
    progress_key: str
    #: The checkpoint id whose barrier ended the epoch; also the marker's value.
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
      progress_topic: where the progress markers go (default ``<topic>-headrace-progress``,
        created with one partition if missing); read raw at restores, so it must be
        reachable without TLS/SASL and its batches uncompressed, gzip or zstd.
    """

    def __init__(self, bootstrap_servers: str, topic: str, transactional_id_prefix: str,
                 encoding: Dict[str, Any], flush_timeout: float, *,
                 producer_config: Optional[Dict[str, Any]] = None,
                 connection_timeout: float = 10.0, pool_size: int = 3,
                 owner: Optional[str] = None,
                 progress_topic: Optional[str] = None) -> None:
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
        self.progress_topic = progress_topic or f"{topic}-headrace-progress"
        self._pools: Dict[int, _Pool] = {}

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_pools"] = {}  # live producers stay in their process
        return state

    def display_name(self) -> str:
        return self.owner

    def transactional_id(self, subtask: int, k: int) -> str:
        return f"{self.prefix}/{subtask}/{k}"

    def progress_key(self, subtask: int) -> str:
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

    def send_marker(self, producer: Any, key: str, transactional_id: str, epoch: int,
                    on_delivery: Any) -> None:
        """Add the progress marker ``epoch`` to the producer's open transaction."""
        value = json.dumps({"epoch": epoch, "id": transactional_id}).encode()
        produce(self._kafka(), producer, self.owner, self.progress_topic,
                (key.encode(), value, None, 0), on_delivery)

    def ensure_progress_topic(self) -> None:
        """Create the progress topic (one partition) unless it exists."""
        kafka = self._kafka()
        admin_config = client_config(self.owner, self.bootstrap_servers,
                                     {k: v for k, v in self.producer_config.items()
                                      if k.startswith(("security.", "sasl.", "ssl."))})
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(admin_config)
        if self.progress_topic in list_topics(self.owner, admin, self.bootstrap_servers,
                                              self.connection_timeout):
            return
        future = admin.create_topics([NewTopic(self.progress_topic, 1)])[self.progress_topic]
        try:
            future.result(self.connection_timeout)
        except kafka.KafkaException as exc:
            if exc.args[0].code() != kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"{self.owner}: cannot create the progress topic "
                                   f"{self.progress_topic!r}: {exc.args[0].str()}") from None

    def read_progress(self, keys: Set[str], fenced: Set[str]) -> Dict[str, int]:
        """The current marker of each progress key in ``keys`` (0: none): the value of its
        last committed marker record in log order, committed meaning a COMMIT control
        marker of its producer id follows it (independent of the last stable offset and
        of what consumers are shown). Call it after fencing the ids in ``fenced``: their
        transactions are over then, so a marker of theirs still without a control marker
        is waited for (the broker may write it late), up to ``connection_timeout``."""
        started = time.monotonic()
        waited = False
        while True:
            try:
                batches = rawlog.fetch_batches(self.bootstrap_servers, self.progress_topic, 0,
                                               self.connection_timeout)
            except (OSError, LookupError, RuntimeError) as exc:
                raise ConnectionError(f"{self.owner}: cannot read the progress topic "
                                      f"{self.progress_topic!r}: {exc}") from None
            outcome = rawlog.resolve_transactions(batches).outcome
            markers: Dict[str, int] = {key: 0 for key in keys}
            lagging = []
            for batch in batches:
                if batch.control or not batch.transactional:
                    continue
                state = outcome.get(batch.base_offset)
                for record in batch.records:
                    key = (record.key or b"").decode("utf-8", "replace")
                    if key not in markers:
                        continue
                    marker = json.loads(record.value or b"{}")
                    if state == "COMMIT":
                        markers[key] = int(marker["epoch"])
                    elif state is None and marker.get("id") in fenced:
                        lagging.append(record.offset)
            if not lagging:
                if waited:
                    LOG.info("%s: control markers of fenced transactions appeared after "
                             "%.2fs", self.owner, time.monotonic() - started)
                return markers
            waited = True
            if time.monotonic() - started > self.connection_timeout:
                raise TimeoutError(
                    f"{self.owner}: progress markers at offsets {lagging[:5]} of topic "
                    f"{self.progress_topic!r} belong to fenced transactions but have no "
                    f"COMMIT/ABORT control marker after {self.connection_timeout:g}s "
                    f"(connection_timeout)")
            time.sleep(0.05)

    def _encoder(self) -> RecordEncoder:
        self.ensure_progress_topic()
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

    def pool(self, writer_index: int) -> _Pool:
        return self._pools.setdefault(writer_index, _Pool())


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
        tid = self.pool.free[0]
        producer = self.pool.producers[tid]
        producer.begin_transaction()
        self.sink.send_marker(producer, self.sink.progress_key(self.index), tid, epoch,
                              self._on_delivery)
        self._end(producer.commit_transaction, "commit the marker in")
        self._raise_errors()

    def _end(self, call: Any, what: str) -> None:
        try:
            call(self.sink.flush_timeout)
        except self.kafka.KafkaException as exc:
            raise RuntimeError(f"{self.owner}: could not {what} a transaction on topic "
                               f"{self.sink.topic!r}: {exc.args[0].str()}") from None

    def _raise_errors(self) -> None:
        if self.errors:
            errors, self.errors = self.errors, []
            raise RuntimeError(f"{self.owner}: Kafka did not accept records for topic "
                               f"{self.sink.topic!r} or its progress topic: "
                               f"{'; '.join(errors)}")

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
        key = self.sink.progress_key(self.index)
        self.sink.send_marker(producer, key, tid, checkpoint_id, self._on_delivery)
        remaining = producer.flush(self.sink.flush_timeout)
        self._raise_errors()
        if remaining:
            raise TimeoutError(f"{self.owner}: {remaining} records for topic "
                               f"{self.sink.topic!r} were not acknowledged within "
                               f"{self.sink.flush_timeout:g}s")
        self.pool.prepared[tid] = checkpoint_id
        self.current, self.records = None, []
        self.committed_records += len(records)
        return [KafkaEpoch(tid, key, checkpoint_id, records)]

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
    """Commits pre-committed epochs; repairs restored ones whose marker did not commit."""

    def __init__(self, sink: KafkaTransactionalSink, index: int) -> None:
        self.sink = sink
        self.owner = sink.owner
        self.index = index
        self.kafka = sink._kafka()

    def commit(self, committables: List[KafkaEpoch]) -> None:
        pool = self.sink.pool(self.index)
        ordered = sorted(committables, key=lambda c: c.epoch)
        restored = [c for c in ordered if pool.prepared.get(c.transactional_id) != c.epoch]
        # Fence every restored epoch's id before reading the progress: an epoch's marker
        # is final only once its producer can no longer commit.
        fenced = {c.transactional_id: self.sink.new_producer(c.transactional_id)
                  for c in restored}
        markers = (self.sink.read_progress({c.progress_key for c in restored}, set(fenced))
                   if restored else {})
        restored_ids = {id(c) for c in restored}
        for epoch in ordered:
            if id(epoch) in restored_ids:
                self._repair(fenced[epoch.transactional_id], epoch, markers)
            else:
                self._commit_live(pool, epoch.transactional_id, epoch)
        for producer in fenced.values():
            producer.flush(0)

    def _commit_live(self, pool: _Pool, tid: str, epoch: KafkaEpoch) -> None:
        producer = pool.producers[tid]
        try:
            producer.commit_transaction(self.sink.flush_timeout)
        except self.kafka.KafkaException as exc:
            # Fenced (a newer attempt runs) or timed out: the job fails; the progress
            # marker tells the restore whether this epoch got through.
            raise RuntimeError(f"{self.owner}: committing the transaction of checkpoint "
                               f"{epoch.epoch} on topic {self.sink.topic!r} failed: "
                               f"{exc.args[0].str()}") from None
        del pool.prepared[tid]
        pool.free.append(tid)

    def _repair(self, producer: Any, epoch: KafkaEpoch, markers: Dict[str, int]) -> None:
        """Publish a restored epoch exactly once: its id is fenced, so the marker read
        after that says whether it committed; if not, produce its records again."""
        started = time.monotonic()
        key = epoch.progress_key
        if epoch.epoch <= markers[key]:
            return
        errors: List[str] = []

        def on_delivery(error: Any, _message: Any) -> None:
            if error is not None:
                errors.append(error.str())

        producer.begin_transaction()
        for record in epoch.records:
            produce(self.kafka, producer, self.owner, self.sink.topic, record, on_delivery)
        self.sink.send_marker(producer, key, epoch.transactional_id, epoch.epoch,
                              on_delivery)
        producer.flush(self.sink.flush_timeout)
        if errors:
            raise RuntimeError(f"{self.owner}: re-producing checkpoint {epoch.epoch}'s "
                               f"records failed: {'; '.join(errors[:5])}")
        try:
            producer.commit_transaction(self.sink.flush_timeout)
        except self.kafka.KafkaException as exc:
            raise RuntimeError(f"{self.owner}: committing the re-produced transaction of "
                               f"checkpoint {epoch.epoch} failed: {exc.args[0].str()}") from None
        markers[key] = epoch.epoch
        LOG.info("%s: re-produced %d records of checkpoint %d in %.2fs", self.owner,
                 len(epoch.records), epoch.epoch, time.monotonic() - started)

    def close(self) -> None:
        self.sink.pool(self.index).close()
