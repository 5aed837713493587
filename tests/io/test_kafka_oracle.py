"""The read_committed oracle (headrace.testing.read_committed) against a real broker's raw
log: committed, explicitly aborted, fenced and open transactions, interleaved producers,
compression and paging; and its rules on hand-made batch sequences."""
import pytest

from headrace.testing import read_committed as rc
from headrace.testing.kafka import produce

confluent_kafka = pytest.importorskip("confluent_kafka")
pytestmark = pytest.mark.no_pipeline


def _producer(bootstrap, txn_id=None, **config):
    settings = {"bootstrap.servers": bootstrap, "linger.ms": 0, **config}
    if txn_id is not None:
        settings["transactional.id"] = txn_id
    producer = confluent_kafka.Producer(settings)
    if txn_id is not None:
        producer.init_transactions(10)
    return producer


def _values(records):
    return [r.value for r in records]


def test_committed_aborted_fenced_and_open_transactions(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1, "oracle")
    produce(kafka_bootstrap, topic, [(0, None, b"plain-0", 1.0)])
    first = _producer(kafka_bootstrap, f"{topic}-a")
    first.begin_transaction()
    first.produce(topic, b"c-1", b"k", partition=0, headers=[("h", b"x")])
    first.produce(topic, b"c-2", partition=0)
    first.commit_transaction(10)
    first.begin_transaction()
    first.produce(topic, b"aborted-1", partition=0)
    first.flush(10)  # in the log before the abort, so the marker has something to discard
    first.abort_transaction(10)
    first.begin_transaction()
    first.produce(topic, b"fenced-1", partition=0)
    first.flush(10)
    successor = _producer(kafka_bootstrap, f"{topic}-a")  # fences `first`, aborting its txn
    successor.begin_transaction()
    successor.produce(topic, b"after-fence", partition=0)
    successor.commit_transaction(10)
    other = _producer(kafka_bootstrap, f"{topic}-b")
    other.begin_transaction()
    other.produce(topic, b"open-1", partition=0)
    other.flush(10)
    produce(kafka_bootstrap, topic, [(0, None, b"plain-after-open", 2.0)])

    log = rc.read_partition(kafka_bootstrap, topic, 0)
    assert _values(log.committed) == [b"plain-0", b"c-1", b"c-2", b"after-fence"]
    assert _values(log.aborted) == [b"aborted-1", b"fenced-1"]
    # The open transaction holds back the LSO: nothing after it is visible, even committed.
    assert _values(log.invisible) == [b"open-1", b"plain-after-open"]
    assert log.last_stable_offset == log.invisible[0].offset
    assert log.committed[1].key == b"k" and log.committed[1].headers == (("h", b"x"),)
    assert all(r.transactional for r in log.committed[1:])

    other.commit_transaction(10)
    log = rc.read_partition(kafka_bootstrap, topic, 0)
    assert _values(log.committed)[-2:] == [b"open-1", b"plain-after-open"]
    assert not log.invisible and log.last_stable_offset == log.log_end
    assert rc.read_committed(kafka_bootstrap, topic) == log.committed


def test_interleaved_producers_are_resolved_by_their_own_markers(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(2, "oracle")
    left = _producer(kafka_bootstrap, f"{topic}-l")
    right = _producer(kafka_bootstrap, f"{topic}-r")
    left.begin_transaction()
    right.begin_transaction()
    for i in range(3):
        for partition in (0, 1):
            left.produce(topic, f"L{i}".encode(), partition=partition)
            left.flush(10)
            right.produce(topic, f"R{i}".encode(), partition=partition)
            right.flush(10)
    right.abort_transaction(10)
    left.commit_transaction(10)
    for partition in (0, 1):
        log = rc.read_partition(kafka_bootstrap, topic, partition)
        assert _values(log.committed) == [b"L0", b"L1", b"L2"]
        assert _values(log.aborted) == [b"R0", b"R1", b"R2"]
    assert _values(rc.read_committed(kafka_bootstrap, topic)) == [b"L0", b"L1", b"L2"] * 2


def test_gzip_batches_and_paging_over_many_fetches(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1, "oracle")
    producer = _producer(kafka_bootstrap, f"{topic}-z", **{"compression.type": "gzip",
                                                          "batch.num.messages": 200})
    producer.begin_transaction()
    for i in range(3000):
        producer.produce(topic, f"{i:06d}".encode() * 20, partition=0)
    producer.commit_transaction(30)
    batches = rc.fetch_batches(kafka_bootstrap, topic, 0, max_bytes=16 << 10)
    assert len(batches) > 10  # fetched over several requests of 16 KiB
    log = rc.resolve(batches)
    assert _values(log.committed) == [f"{i:06d}".encode() * 20 for i in range(3000)]
    assert [r.offset for r in log.committed] == sorted({r.offset for r in log.committed})


def test_unknown_topic_is_named(kafka_bootstrap):
    with pytest.raises(LookupError, match="topic 'no-such-topic' partition 0 does not exist"):
        rc.read_partition(kafka_bootstrap, "no-such-topic", 0)


def _batch(offset, pid, epoch, values=None, marker=None):
    records = [rc.Record(offset + i, 0, None, v, (), pid, epoch, pid >= 0)
               for i, v in enumerate(values or [b"m"])]
    return rc.Batch(offset, offset + len(records) - 1, pid, epoch, pid >= 0,
                    marker is not None, records, marker)


def test_a_new_epoch_without_an_abort_marker_counts_the_old_transaction_as_fenced():
    log = rc.resolve([_batch(0, 7, 0, [b"zombie"]),
                      _batch(1, 7, 1, [b"fresh"]),
                      _batch(2, 7, 1, marker="COMMIT")])
    assert _values(log.committed) == [b"fresh"]
    assert _values(log.aborted) == [b"zombie"]
    assert log.unmarked_fenced == [(7, 0, 1)]


def test_a_marker_resolves_only_its_own_producer():
    log = rc.resolve([_batch(0, 1, 0, [b"a"]), _batch(1, 2, 0, [b"b"]),
                      _batch(2, -1, -1, [b"plain"]),
                      _batch(3, 2, 0, marker="COMMIT")])
    assert _values(log.committed) == []  # producer 1 is open at offset 0: the LSO
    assert _values(log.invisible) == [b"a", b"b", b"plain"]
    assert log.last_stable_offset == 0
    log = rc.resolve(log_batches := [_batch(0, 1, 0, [b"a"]), _batch(1, 2, 0, [b"b"]),
                                     _batch(2, 2, 0, marker="COMMIT"),
                                     _batch(3, 1, 0, marker="ABORT")])
    assert _values(log.committed) == [b"b"] and _values(log.aborted) == [b"a"]
    assert log.last_stable_offset == log.log_end == log_batches[-1].last_offset + 1
