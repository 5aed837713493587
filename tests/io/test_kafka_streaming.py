"""ReadFromKafka's positions and event time against a real broker: start positions, resuming
from a reader's position, an empty partition that does not stall windows, and partitions
discovered while the job runs."""
import threading
import time

import pytest

import headrace as beam
from headrace.io.kafka import ReadFromKafka
from headrace.options import PipelineOptions
from headrace.testing.util import assert_that, equal_to
from headrace.transforms import window

pytest.importorskip("confluent_kafka")

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from headrace.testing.kafka import make_topic, produce  # noqa: E402


def _read_split(transform, partition=0, position=None, polls=None):
    """Values read by one partition's reader (until it ends, or ``polls`` batches)."""
    split = [s for s in transform.source.split(1) if s.partition == partition][0]
    reader = split.open(position)
    values = []
    try:
        while polls is None or polls > 0:
            batch = reader.read_batch(100)
            if batch is None:
                break
            values.extend(e.value[1] for e in batch)
            if polls is not None:
                polls -= 1
        return values, reader.position()
    finally:
        reader.close()


@pytest.mark.no_pipeline
def test_start_positions_earliest_timestamp_committed_and_resume(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, [(0, None, b"%d" % i, 100 + i) for i in range(10)])
    read = lambda **kw: ReadFromKafka(kafka_bootstrap, topic, stop_at="end",  # noqa: E731
                                      value_deserializer="str", **kw)
    assert _read_split(read())[0] == [str(i) for i in range(10)]
    # The first record at or after the time (whatever offset the broker's look-up gives).
    assert _read_split(read(start=106.0))[0] == ["6", "7", "8", "9"]
    assert _read_split(read(start=1000.0))[0] == []
    group = f"g-{topic}"
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 7)], asynchronous=False)
    consumer.close()
    assert _read_split(read(start="committed", group_id=group))[0] == ["7", "8", "9"]
    # A reader reopened at another's position continues exactly there; a record limit
    # counts what was read before the position (a restore does not read it again).
    limited = lambda: ReadFromKafka(kafka_bootstrap, topic,  # noqa: E731
                                    value_deserializer="str", max_records_per_partition=4)
    first, position = _read_split(limited())
    assert (first, position) == (["0", "1", "2", "3"], [4, 4])
    assert _read_split(read(), position=position)[0] == ["4", "5", "6", "7", "8", "9"]
    assert _read_split(limited(), position=[2, 2]) == (["2", "3"], [4, 4])
    assert _read_split(read(), position=4)[0] == ["4", "5", "6", "7", "8", "9"]


@pytest.mark.no_pipeline
def test_start_latest_reads_only_what_comes_after(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, [(0, None, b"old", 1)])
    transform = ReadFromKafka(kafka_bootstrap, topic, start="latest", value_deserializer="str")
    reader = transform.source.split(1)[0].open()
    try:
        deadline = time.monotonic() + 10
        while reader.position() is None and time.monotonic() < deadline:
            assert reader.read_batch(10) == []       # caught up: the start resolved
            time.sleep(0.02)
        assert reader.position() == 1
        produce(kafka_bootstrap, topic, [(0, None, b"new", 2)])
        values = []
        while not values and time.monotonic() < deadline:
            values = [e.value[1] for e in reader.read_batch(10)]
            time.sleep(0.02)
        assert values == ["new"]
    finally:
        reader.close()


def _group_reached(bootstrap, group, topic, partitions):
    """True once the group has a committed offset > 0 for each of ``partitions``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=5)
        return all(tp.offset > 0 for tp in committed)
    finally:
        consumer.close()


def _when(condition, then):
    """Run ``then()`` in a thread once ``condition()`` holds (or after 60 s)."""
    def run():
        deadline = time.monotonic() + 60
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)
        then()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class _LogFiring(beam.DoFn):
    """Appends ``window start, wall time`` to a file when a window's count comes out."""

    def __init__(self, path):
        self.path = path

    def process(self, kv, w=beam.DoFn.WindowParam):
        with open(self.path, "a") as log:
            log.write(f"{float(w.start)} {time.time()}\n")
        yield float(w.start), kv[1]


def test_an_empty_partition_does_not_stall_windows(kafka_bootstrap, kafka_topic, tmp_path):
    """Partition 1 stays empty while partition 0's windows close: with idleness they fire
    before partition 1's first record is even written."""
    topic = kafka_topic(2)
    group = f"g-{topic}"
    produce(kafka_bootstrap, topic, [(0, None, b"x", t) for t in (1, 2, 11, 12, 21, 22, 35)])
    produced_at = []

    def finish():
        time.sleep(4)  # the windows fire within the idle timeout (0.3 s) after reading
        produced_at.append(time.time())
        produce(kafka_bootstrap, topic, [(1, None, b"late", 100), (0, None, b"x", 101)])

    thread = _when(lambda: _group_reached(kafka_bootstrap, group, topic, [0]), finish)
    log = tmp_path / "fired.txt"
    strategy = beam.WatermarkStrategy.for_bounded_out_of_orderness(0).with_idleness(0.3)
    with beam.Pipeline(options=PipelineOptions(streaming=True)) as p:
        counts = (p | ReadFromKafka(kafka_bootstrap, topic, stop_at={(topic, 0): 8, (topic, 1): 1},
                                    group_id=group, commit_offsets=0.1,
                                    watermark_strategy=strategy)
                  | beam.WindowInto(window.FixedWindows(10))
                  | beam.Map(lambda kv: ("n", 1)) | beam.CombinePerKey(sum)
                  | beam.ParDo(_LogFiring(str(log))))
        assert_that(counts, equal_to([(0.0, 2), (10.0, 2), (20.0, 2), (30.0, 1), (100.0, 2)]))
    thread.join(30)
    fired = dict(line.split() for line in log.read_text().splitlines())
    assert produced_at and all(float(fired[start]) < produced_at[0]
                               for start in ("0.0", "10.0", "20.0")), (fired, produced_at)


def test_new_topics_matching_the_pattern_are_discovered(kafka_bootstrap):
    prefix = f"disc-{time.monotonic_ns()}"
    first = make_topic(kafka_bootstrap, 4, prefix)
    group = f"g-{prefix}"
    produce(kafka_bootstrap, first, [(p, None, b"a%d" % p, 1) for p in range(4)])
    created = []

    def add_topic():
        second = make_topic(kafka_bootstrap, 1, prefix)
        created.append(second)
        produce(kafka_bootstrap, second, [(0, None, b"b0", 2), (0, None, b"b1", 3)])
        time.sleep(1.5)  # many discovery intervals; then let the first topic's splits end
        produce(kafka_bootstrap, first, [(p, None, b"end%d" % p, 4) for p in range(4)])

    # Only once every reader runs: the new topic must be found by discovery, not at start.
    thread = _when(lambda: _group_reached(kafka_bootstrap, group, first, range(4)), add_topic)
    ends = {(first, p): 2 for p in range(4)}
    with beam.Pipeline(options=PipelineOptions(streaming=True)) as p:
        values = (p | ReadFromKafka(kafka_bootstrap, pattern=rf"{prefix}-.*", stop_at=ends,
                                    group_id=group, commit_offsets=0.1, discovery_interval=0.2,
                                    value_deserializer="str")
                  | beam.Values())
        assert_that(values, equal_to([f"a{i}" for i in range(4)] + [f"end{i}" for i in range(4)]
                                     + ["b0", "b1"]))
    thread.join(30)
    assert created, "the second topic was never created"
