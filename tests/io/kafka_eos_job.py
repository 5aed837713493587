"""A read-process-write job for the end-to-end exactly-once tests (run as a script).

Reads offsets ``0..per_partition - 1`` of each of the 4 partitions of ``input`` (a test
writes them while the job runs), counts records per key in user state (so restored keyed
state and the output must agree), and writes ``(key, {"i": value, "n": count})`` to ``output`` with
``WriteToKafka(delivery="exactly_once")``. Usage: ``python kafka_eos_job.py CONFIG_JSON``.
"""
import json
import logging
import sys

import headrace as beam
from headrace.io.kafka import ReadFromKafka, WriteToKafka
from headrace.transforms import userstate


class CountPerKey(beam.DoFn):
    COUNT = userstate.ReadModifyWriteStateSpec("count", beam.coders.VarIntCoder())

    def process(self, kv, count=beam.DoFn.StateParam(COUNT)):
        n = (count.read() or 0) + 1
        count.write(n)
        yield kv[0], {"i": kv[1], "n": n}


def pause_around_kafka_commits():
    """Crash points in the committer (test-only, through the engine's crash-point hook):
    ``kafka-before-commit`` before a live transaction commits, ``kafka-after-commit`` once
    it committed."""
    from headrace.io.kafka import transactional
    from headrace.runners.engine.crash_points import crash_point

    commit_live = transactional.KafkaCommitter._commit_live

    def paused(self, pool, tid, epoch):
        crash_point("kafka-before-commit", epoch.epoch)
        commit_live(self, pool, tid, epoch)
        crash_point("kafka-after-commit", epoch.epoch)

    transactional.KafkaCommitter._commit_live = paused


def main(config):
    if config.get("sink_points"):
        pause_around_kafka_commits()  # the forked workers inherit it
    with beam.Pipeline(argv=config["argv"]) as p:
        (p | "Read" >> ReadFromKafka(config["bootstrap"], config["input"],
                                     key_deserializer="str", value_deserializer="json",
                                     stop_at={(config["input"], p): config["per_partition"]
                                              for p in range(4)},
                                     commit_offsets=None)
         | "Count" >> beam.ParDo(CountPerKey())
         | "Write" >> WriteToKafka(config["bootstrap"], config["output"],
                                   delivery="exactly_once", key_serializer="str",
                                   value_serializer="json", transaction_timeout=60,
                                   flush_timeout=20))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    main(json.loads(sys.argv[1]))
