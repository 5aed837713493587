"""WriteToKafka against a real broker: written records read back (serializers, headers,
partitioner, both delivery modes), and clear errors naming the sink."""
import pytest

import headrace as beam
from headrace.io.kafka import KafkaRecord, ReadFromKafka, WriteToKafka
from headrace.testing.util import assert_that, equal_to

pytest.importorskip("confluent_kafka")


@pytest.mark.parametrize("delivery", ["at_least_once", "none"])
def test_write_then_read_back(kafka_bootstrap, kafka_topic, delivery):
    topic = kafka_topic(3)
    with beam.Pipeline() as p:
        (p | beam.Create(range(20))
         | beam.Map(lambda i: (f"k{i}", {"i": i}))
         | WriteToKafka(kafka_bootstrap, topic, delivery=delivery, key_serializer="str",
                        value_serializer="json", headers={"origin": "test"},
                        partitioner=lambda key, value, n: value["i"] % 2 + 1))
    with beam.Pipeline(runner="direct") as p:
        records = p | ReadFromKafka(kafka_bootstrap, topic, stop_at="end", with_metadata=True,
                                    key_deserializer="str", value_deserializer="json")
        assert_that(records | beam.Map(lambda r: (r.partition, r.key, r.value, r.headers)),
                    equal_to([(i % 2 + 1, f"k{i}", {"i": i}, (("origin", b"test"),))
                              for i in range(20)]))


def test_records_pass_through_with_their_headers(kafka_bootstrap, kafka_topic):
    source, sink = kafka_topic(1), kafka_topic(1)
    with beam.Pipeline() as p:
        (p | beam.Create([KafkaRecord(b"k", b"v", "x", 0, 0, None, (("h", b"1"),))])
         | WriteToKafka(kafka_bootstrap, source))
    with beam.Pipeline() as p:
        (p | ReadFromKafka(kafka_bootstrap, source, stop_at="end", with_metadata=True)
         | beam.Map(lambda r: r._replace(value=r.value.upper()))
         | WriteToKafka(kafka_bootstrap, sink, headers=lambda r: [("copied", b"yes")]))
    with beam.Pipeline(runner="direct") as p:
        records = p | ReadFromKafka(kafka_bootstrap, sink, stop_at="end", with_metadata=True)
        assert_that(records | beam.Map(lambda r: (r.key, r.value, r.headers)),
                    equal_to([(b"k", b"V", (("h", b"1"), ("copied", b"yes")))]))


def test_unknown_topic_is_refused_before_writing(kafka_bootstrap):
    with pytest.raises(Exception, match=r"WriteToKafka\(absent-topic\): Kafka topic "
                                        r"'absent-topic' does not exist"):
        with beam.Pipeline() as p:
            p | beam.Create([(b"k", b"v")]) | WriteToKafka(kafka_bootstrap, "absent-topic")


def test_unreachable_broker_fails_within_the_timeout():
    with pytest.raises(Exception, match=r"WriteToKafka\(out\): cannot reach the Kafka cluster "
                                        r"at 127.0.0.1:1 within 1s"):
        with beam.Pipeline() as p:
            (p | beam.Create([(b"k", b"v")])
             | WriteToKafka("127.0.0.1:1", "out", connection_timeout=1))


def test_a_message_too_large_names_the_sink_and_topic(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    with pytest.raises(Exception, match=rf"WriteToKafka\({topic}\): cannot produce to topic "
                                        rf"'{topic}': .*too large"):
        with beam.Pipeline() as p:
            (p | beam.Create([(None, b"x" * 2_000_000)])
             | WriteToKafka(kafka_bootstrap, topic))


def test_elements_that_are_not_pairs_are_refused(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    with pytest.raises(Exception, match=r"elements must be \(key, value\) pairs"):
        with beam.Pipeline() as p:
            p | beam.Create([b"lonely"]) | WriteToKafka(kafka_bootstrap, topic)


@pytest.mark.no_pipeline
@pytest.mark.parametrize("kwargs, error, message", [
    ({"delivery": "exactly_once", "transaction_timeout": 10}, ValueError,
     r"WriteToKafka\(out\): transaction_timeout \(10s\) must exceed flush_timeout"),
    ({"delivery": "exactly_once", "producer_pool_size": 1}, ValueError,
     "producer_pool_size must be >= 2"),
    ({"delivery": "maybe"}, ValueError, "delivery must be one of"),
    ({"value_serializer": "xml"}, ValueError, "unknown value serializer 'xml'"),
    ({"partitioner": 3}, TypeError, "partitioner must be"),
    ({"headers": "h"}, TypeError, "headers must be"),
])
def test_invalid_arguments_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        WriteToKafka("127.0.0.1:9092", "out", **kwargs)


def _oracle(bootstrap, topic):
    from confluent_kafka.admin import AdminClient

    from headrace.testing.read_committed import read_partition

    partitions = AdminClient({"bootstrap.servers": bootstrap}).list_topics(
        timeout=10).topics[topic].partitions
    return [read_partition(bootstrap, topic, p) for p in sorted(partitions)]


def test_exactly_once_without_checkpoints_commits_once_at_the_end(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(3)
    with beam.Pipeline(argv=["--parallelism=2"]) as p:
        written = (p | beam.Create(range(200))
                   | beam.Map(lambda i: (f"k{i}", i))
                   | WriteToKafka(kafka_bootstrap, topic, delivery="exactly_once",
                                  key_serializer="str", value_serializer="json"))
        assert_that(written, equal_to([200]))
    logs = _oracle(kafka_bootstrap, topic)
    values = sorted(int(r.value) for log in logs for r in log.committed)
    assert values == list(range(200))
    assert not any(log.aborted or log.invisible for log in logs)
    # One transaction per subtask: every data batch of a producer precedes its one marker.
    assert all(r.transactional for log in logs for r in log.committed)


def test_exactly_once_output_of_a_failed_job_stays_invisible(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)

    def explode_late(i):
        if i == 150:
            raise ValueError("boom")
        return (None, i)

    # One subtask: without checkpoints each subtask commits when *its* input ends, so with
    # several a subtask that finished before another failed has published its part.
    with pytest.raises(Exception, match="boom"):
        with beam.Pipeline(argv=["--parallelism=1"]) as p:
            (p | beam.Create(range(300)) | beam.Map(explode_late)
             | WriteToKafka(kafka_bootstrap, topic, delivery="exactly_once",
                            value_serializer="json"))
    [log] = _oracle(kafka_bootstrap, topic)
    assert log.committed == []


@pytest.mark.no_pipeline
def test_exactly_once_errors_name_the_sink(kafka_bootstrap, kafka_topic):
    from headrace.io.kafka.transactional import KafkaTransactionalSink

    sink = KafkaTransactionalSink(kafka_bootstrap, "absent-topic", "t/absent", {}, 5.0,
                                  owner="WriteToKafka(absent-topic)")
    with pytest.raises(LookupError, match=r"WriteToKafka\(absent-topic\): Kafka topic "
                                          r"'absent-topic' does not exist"):
        sink.open_writer(0, 1)
    unreachable = KafkaTransactionalSink("127.0.0.1:1", "out", "t/x", {}, 5.0,
                                         connection_timeout=1, owner="WriteToKafka(out)")
    with pytest.raises(ConnectionError, match=r"WriteToKafka\(out\): cannot reach the Kafka "
                                              r"cluster at 127.0.0.1:1 within 1s"):
        unreachable.open_writer(0, 1)
    topic = kafka_topic(1)
    sink = KafkaTransactionalSink(kafka_bootstrap, topic, f"t/{topic}", {}, 5.0,
                                  owner=f"WriteToKafka({topic})")
    writer = sink.open_writer(0, 1)
    with pytest.raises(RuntimeError, match=rf"WriteToKafka\({topic}\): cannot produce to "
                                           rf"topic '{topic}': .*too large"):
        writer.write((None, b"x" * 2_000_000))
    writer.close()


@pytest.mark.no_pipeline
def test_transaction_timeout_must_exceed_the_checkpoint_interval():
    with pytest.raises(ValueError, match=r"WriteToKafka\(out\): transaction_timeout \(60s\) "
                                         r"must exceed --checkpoint_interval \(120s\)"):
        p = beam.Pipeline(argv=["--checkpoint_interval=120"])
        (p | beam.Create([(b"k", b"v")])
         | WriteToKafka("127.0.0.1:9092", "out", delivery="exactly_once",
                        transaction_timeout=60))
