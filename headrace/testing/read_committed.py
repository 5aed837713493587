"""A read_committed oracle for exactly-once tests: what Apache Kafka's ``read_committed``
isolation shows of a partition, computed from the raw log.

Some brokers (Tansu, the local development broker) do not tell consumers which
transactions were aborted, so a plain ``read_committed`` consumer may show records of
aborted transactions. This oracle does not trust the broker's filtering: it fetches the
partition's raw record batches (Fetch v4, ``read_uncommitted``, the v2 record-batch
format, parsed by :mod:`headrace.io.kafka.rawlog`, which the exactly-once sink uses too)
and resolves every transaction itself from the COMMIT/ABORT control markers, per producer
id, as Kafka's broker and consumer do together:

- a transactional producer's data batches since its previous marker form one transaction;
  its next COMMIT marker publishes them, its next ABORT marker discards them;
- a transaction without a marker yet is open: it and *everything after its first
  offset* (the last stable offset, LSO) is not visible yet, whoever wrote it;
- non-transactional records before the LSO are visible.

A data batch of a producer id with a higher producer epoch than the transaction it would
extend means the old epoch's transaction ended without a marker (Kafka always writes an
ABORT marker when it fences an epoch); the oracle counts it as aborted by fencing and
reports it in :attr:`PartitionLog.unmarked_fenced`, so tests can tell a broker that omits
the marker from one that writes it.

>>> [r.value for r in resolve(decode_batches(_example_batch())).committed]
[b'v0', b'v1']
"""
from __future__ import annotations

from typing import List, NamedTuple, Tuple

from headrace.io.kafka.rawlog import (  # noqa: F401 (the oracle's public names)
    Batch,
    Record,
    _example_batch,
    decode_batches,
    decode_records,
    fetch_batches,
    resolve_transactions,
)


class PartitionLog(NamedTuple):
    """The outcome of reading one partition."""

    #: What a read_committed consumer sees, in offset order.
    committed: List[Record]
    #: Records of aborted transactions (explicit abort, or fenced).
    aborted: List[Record]
    #: Records of open transactions, and every record at or after the LSO.
    invisible: List[Record]
    #: The last stable offset: read_committed readers see nothing at or after it.
    last_stable_offset: int
    #: The end of the log (the offset after the last batch read).
    log_end: int
    #: (producer_id, old_epoch, new_epoch) where an epoch's transaction ended by fencing
    #: without an ABORT marker in the log.
    unmarked_fenced: List[Tuple[int, int, int]]


def resolve(batches: List[Batch]) -> PartitionLog:
    """Apply Kafka's read_committed rules to a partition's batches (in log order)."""
    outcomes = resolve_transactions(batches)
    log_end = batches[-1].last_offset + 1 if batches else 0
    lso = min(outcomes.open_first_offset.values(), default=log_end)
    committed, aborted, invisible = [], [], []
    for batch in batches:
        if batch.control:
            continue
        state = (outcomes.outcome.get(batch.base_offset) if batch.transactional
                 else "COMMIT")
        for record in batch.records:
            if record.offset >= lso or state is None:
                invisible.append(record)
            elif state == "COMMIT":
                committed.append(record)
            else:
                aborted.append(record)
    return PartitionLog(committed, aborted, invisible, lso, log_end,
                        outcomes.unmarked_fenced)


def read_partition(bootstrap_servers: str, topic: str, partition: int = 0,
                   timeout: float = 10.0) -> PartitionLog:
    """What Kafka's read_committed isolation shows of ``topic``/``partition``, computed
    from the raw log (see the module docstring)."""
    return resolve(fetch_batches(bootstrap_servers, topic, partition, timeout))


def read_committed(bootstrap_servers: str, topic: str, timeout: float = 10.0) -> List[Record]:
    """The committed records of every partition of ``topic`` (partition by partition,
    each in offset order)."""
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": bootstrap_servers}).list_topics(
        timeout=timeout)
    if topic not in metadata.topics:
        raise LookupError(f"read_committed oracle: topic {topic!r} does not exist on "
                          f"{bootstrap_servers}")
    records: List[Record] = []
    for partition in sorted(metadata.topics[topic].partitions):
        records.extend(read_partition(bootstrap_servers, topic, partition, timeout).committed)
    return records
