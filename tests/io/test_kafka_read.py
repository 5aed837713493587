"""ReadFromKafka against a real broker (local Tansu, or HEADRACE_KAFKA_BOOTSTRAP): every
partition read on both runners, deserializers, dead letters, offsets committed to a group,
and errors."""
import json

import pytest

import headrace as beam
from headrace.io.kafka import DeadLetter, KafkaRecord, ReadFromKafka
from headrace.metrics.metric import MetricsFilter
from headrace.testing.util import assert_that, equal_to

pytest.importorskip("confluent_kafka")

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from headrace.testing.kafka import produce  # noqa: E402


def test_reads_every_partition_with_metadata(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(3)
    records = [(i % 3, f"k{i}".encode(), f"v{i}".encode(), 1000 + i, [("n", str(i).encode())])
               for i in range(30)]
    produce(kafka_bootstrap, topic, records)
    expected = [KafkaRecord(f"k{i}", f"v{i}", topic, i % 3, i // 3, 1000.0 + i,
                            (("n", str(i).encode()),)) for i in range(30)]
    with beam.Pipeline() as p:
        read = p | ReadFromKafka(kafka_bootstrap, topic, stop_at="end", with_metadata=True,
                                 key_deserializer="str", value_deserializer="str")
        assert_that(read, equal_to(expected))
        # The element timestamp is the record's Kafka timestamp.
        stamped = read | beam.Map(lambda r, t=beam.DoFn.TimestampParam: (r.offset, r.partition,
                                                                         float(t) - r.timestamp))
        assert_that(stamped | beam.Map(lambda x: x[2]), equal_to([0.0] * 30), label="times")


def test_json_values_and_dead_letters_routed_and_counted(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(2)
    produce(kafka_bootstrap, topic, [
        (0, b"a", json.dumps({"n": 1}).encode(), 10), (0, b"b", b"{not json", 11),
        (1, b"c", json.dumps([2, 3]).encode(), 12), (1, b"\xff", b"null", 13)])
    p = beam.Pipeline()
    records, dead = p | ReadFromKafka(kafka_bootstrap, topic, stop_at="end",
                                      key_deserializer="str", value_deserializer="json",
                                      with_dead_letters=True)
    assert_that(records, equal_to([("a", {"n": 1}), ("c", [2, 3])]))
    summary = dead | beam.Map(lambda d: (d.topic, d.partition, d.offset, d.key, d.value,
                                         d.error.split(":")[0]))
    assert_that(summary, equal_to([(topic, 0, 1, b"b", b"{not json", "JSONDecodeError"),
                                   (topic, 1, 1, b"\xff", b"null", "UnicodeDecodeError")]),
                label="dead")
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name("dead_letters"))["counters"]
    assert sum(c.committed for c in counters) == 2


def test_a_bad_record_fails_the_job_naming_where_it_is_without_dead_letters(kafka_bootstrap,
                                                                            kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, [(0, None, b"[1]", 1), (0, None, b"oops", 2)])
    with pytest.raises(Exception, match=rf"topic '{topic}' partition 0 offset 1.*"
                                        r"with_dead_letters"):
        with beam.Pipeline() as p:
            p | ReadFromKafka(kafka_bootstrap, topic, stop_at="end", value_deserializer="json")


def test_a_user_deserializer_and_per_partition_limits(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(2)
    produce(kafka_bootstrap, topic, [(i % 2, None, str(i).encode(), i) for i in range(20)])
    with beam.Pipeline() as p:
        values = (p | ReadFromKafka(kafka_bootstrap, topic, max_records_per_partition=3,
                                    value_deserializer=lambda data: int(data) * 10)
                  | beam.Values())
        assert_that(values, equal_to([0, 20, 40, 10, 30, 50]))


def test_stop_at_offsets_and_group_offsets_committed_at_the_end(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(2)
    produce(kafka_bootstrap, topic, [(i % 2, None, b"%d" % i, i) for i in range(10)])
    group = f"g-{topic}"
    with beam.Pipeline() as p:
        values = (p | ReadFromKafka(kafka_bootstrap, topic, stop_at={(topic, 0): 2,
                                                                     (topic, 1): 4},
                                    group_id=group, value_deserializer="str")
                  | beam.Values())
        assert_that(values, equal_to(["0", "2", "1", "3", "5", "7"]))
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    try:
        committed = consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)],
                                       timeout=10)
    finally:
        consumer.close()
    assert [tp.offset for tp in committed] == [2, 4]


def test_unreachable_broker_fails_within_the_timeout():
    with pytest.raises(Exception, match=r"ReadFromKafka\(t\): cannot reach the Kafka cluster at "
                                        r"127.0.0.1:1 within 1s"):
        with beam.Pipeline() as p:
            p | ReadFromKafka("127.0.0.1:1", "t", stop_at="end", connection_timeout=1)


def test_unknown_topic_is_a_clear_error(kafka_bootstrap):
    with pytest.raises(Exception, match=r"Kafka topic 'no-such-topic' does not exist"):
        with beam.Pipeline() as p:
            p | ReadFromKafka(kafka_bootstrap, ["no-such-topic"], stop_at="end")


@pytest.mark.no_pipeline
@pytest.mark.parametrize("kwargs, message", [
    ({}, "either topics or pattern"),
    ({"topics": "a", "pattern": "b"}, "either topics or pattern"),
    ({"topics": "a", "start": "first"}, "start must be one of"),
    ({"topics": "a", "start": "committed"}, "needs a group_id"),
    ({"topics": "a", "stop_at": "now"}, "stop_at must be"),
    ({"topics": "a", "stop_at": {("a", 0): -1}}, "stop_at maps"),
    ({"topics": "a", "value_deserializer": "avro"}, "unknown value deserializer 'avro'"),
    ({"topics": "a", "commit_offsets": 0}, "commit_offsets must be"),
])
def test_invalid_arguments_are_refused_naming_the_option(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReadFromKafka("127.0.0.1:9092", **kwargs)


@pytest.mark.no_pipeline
def test_dead_letter_is_a_record_type():
    letter = DeadLetter("t", 0, 5, None, b"x", "ValueError: bad")
    assert (letter.topic, letter.offset, letter.timestamp) == ("t", 5, None)
