"""Kafka -> headrace -> Kafka: throughput by delivery guarantee, and at_least_once latency.

    python bench/kafka.py                          # local broker, 200,000 records
    python bench/kafka.py --records 50000 --runner multiprocess --parallelism 2
    python bench/kafka.py --bootstrap_servers host:9092

Throughput: the input topic (4 partitions) is filled first with ``--records`` JSON
payments (1000 users, 10,000 per second of event time); each engine then reads all of
it, maps each record to ``(user, amount)``, sums per user in 1-second event-time windows and
writes the sums to a fresh output topic:

- ``bare loop``: one confluent-kafka consumer and producer in a plain Python loop doing the
  same computation (the limit for a Python job on this machine and broker);
- ``headrace at_least_once`` and ``headrace exactly_once``: the pipeline with
  ``WriteToKafka(delivery=...)`` (exactly_once: one transaction per sink subtask, plus a
  checkpoint's worth per ``--checkpoint_interval`` once the runner takes checkpoints).

records/s = input records / wall time from the start of the job to its end (the job's
start-up, a few hundred ms, included). Exactly-once output is read back with the
read_committed oracle to check it.

Latency: a feeder writes ``--rate`` records/s for ``--seconds`` seconds, each carrying its
send time (after ``--warmup`` seconds of input that are not measured, while the job starts);
the pipeline (read -> map -> ``WriteToKafka(at_least_once)``, no window, which would add its
own length; the reader with ``fetch.wait.max.ms=10``) runs meanwhile; a consumer of the
output topic records the send-to-receive time of every record: p50 and p99.
"""
from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's headrace

import headrace as beam  # noqa: E402
from headrace.io.kafka import KafkaDevBroker, ReadFromKafka, WriteToKafka  # noqa: E402

PARTITIONS = 4
USERS = 1000
EVENTS_PER_SECOND = 10_000
START = 1_700_000_000.0
#: librdkafka waits up to fetch.wait.max.ms (500) for a fetch to fill: too long here.
LOW_LATENCY = {"fetch.wait.max.ms": 10}


def create_topic(bootstrap: str, prefix: str, partitions: int = PARTITIONS) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def fill(bootstrap: str, topic: str, total: int) -> None:
    """``total`` payments, partition i % 4 (so each partition has a known count)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50,
                         "batch.num.messages": 10000})
    for i in range(total):
        user = f"u{i % USERS}"
        value = json.dumps({"user": user, "amount": i % 97}).encode()
        while True:
            try:
                producer.produce(topic, value, user.encode(), partition=i % PARTITIONS,
                                 timestamp=int((START + i / EVENTS_PER_SECOND) * 1000))
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise RuntimeError("the input topic could not be filled")


def bare_loop(bootstrap: str, source: str, sink: str, total: int) -> int:
    """Consume everything, window-sum per user in dicts, produce the sums."""
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(source, p, 0) for p in range(PARTITIONS)])
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "enable.idempotence": True, "acks": "all"})
    sums: Dict[tuple, float] = collections.defaultdict(float)
    seen, ended = 0, set()
    while len(ended) < PARTITIONS:
        for message in consumer.consume(2000, 1.0):
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition())
                continue
            payment = json.loads(message.value())
            second = message.timestamp()[1] // 1000
            sums[(payment["user"], second)] += payment["amount"]
            seen += 1
    for (user, second), total_amount in sums.items():
        while True:
            try:
                producer.produce(sink, json.dumps({"end": second + 1, "sum": total_amount})
                                 .encode(), user.encode())
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    consumer.close()
    assert seen == total, (seen, total)
    return len(sums)


def pipeline(bootstrap: str, source: str, sink: str, total: int, delivery: str,
             options: List[str]) -> None:
    with beam.Pipeline(argv=options) as p:
        (p | ReadFromKafka(bootstrap, source, max_records_per_partition=total // PARTITIONS,
                           value_deserializer="json")
         | "Amount" >> beam.Map(lambda kv: (kv[1]["user"], kv[1]["amount"]))
         | beam.WindowInto(beam.window.FixedWindows(1))
         | beam.CombinePerKey(sum)
         | "Out" >> beam.Map(lambda kv, w=beam.DoFn.WindowParam:
                             (kv[0], {"end": float(w.end), "sum": kv[1]}))
         | WriteToKafka(bootstrap, sink, delivery=delivery, key_serializer="str",
                        value_serializer="json"))


def throughput(bootstrap: str, total: int, options: List[str]) -> List[Dict[str, Any]]:
    from headrace.testing.read_committed import read_committed

    source = create_topic(bootstrap, "in")
    fill(bootstrap, source, total)
    rows = []
    expected_outputs = None
    for engine in ("bare loop", "headrace at_least_once", "headrace exactly_once"):
        sink = create_topic(bootstrap, "out")
        start = time.perf_counter()
        if engine == "bare loop":
            expected_outputs = bare_loop(bootstrap, source, sink, total)
        else:
            pipeline(bootstrap, source, sink, total, engine.split()[1], options)
        elapsed = time.perf_counter() - start
        note = ""
        if engine.endswith("exactly_once"):
            outputs = len(read_committed(bootstrap, sink))
            note = f"{outputs} sums committed" + ("" if outputs == expected_outputs
                                                   else f" (expected {expected_outputs}!)")
        rows.append({"engine": engine, "seconds": elapsed, "records_per_s": total / elapsed,
                     "note": note})
        print(f"  {engine:24s} {total / elapsed:>10,.0f} records/s  ({elapsed:.2f}s) {note}",
              flush=True)
    return rows


def latency(bootstrap: str, rate: int, seconds: float, warmup: float,
            options: List[str]) -> Dict[str, float]:
    from confluent_kafka import Consumer, Producer, TopicPartition

    # One input partition: a bounded read takes a subtask's partitions one after another.
    source, sink = create_topic(bootstrap, "lat-in", 1), create_topic(bootstrap, "lat-out", 1)
    total = int(rate * (warmup + seconds))
    skip = int(rate * warmup)  # sent while the job was starting: not steady state
    received: List[tuple] = []
    stop = threading.Event()

    def feeder() -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        begin = time.time()
        for i in range(total):
            delay = begin + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            producer.produce(source, json.dumps({"sent": time.time(), "i": i}).encode())
            producer.poll(0)
        producer.flush(30)

    def reader() -> None:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lat-{uuid.uuid4()}",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 5})
        consumer.assign([TopicPartition(sink, 0, 0)])
        while not stop.is_set() and len(received) < total:
            message = consumer.poll(0.05)  # returns as soon as a record is there
            if message is not None and message.error() is None:
                value = json.loads(message.value())
                received.append((value["i"], time.time() - value["sent"]))
        consumer.close()

    threads = [threading.Thread(target=reader, daemon=True),
               threading.Thread(target=feeder, daemon=True)]
    for thread in threads:
        thread.start()
    # The job runs in its own process, so that the feeder and the reader here do not share
    # its interpreter (and GIL).
    subprocess.run([sys.executable, __file__, "--latency_job", bootstrap, source, sink,
                    str(total)] + options, check=True, timeout=300 + warmup + seconds)
    deadline = time.time() + 30
    while len(received) < total and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    if len(received) < total:
        raise RuntimeError(f"latency run: {len(received)} of {total} records arrived")
    steady = [lag for i, lag in received if i >= skip]
    cuts = statistics.quantiles(steady, n=100)
    return {"records": len(steady), "rate": rate, "p50_ms": cuts[49] * 1000,
            "p99_ms": cuts[98] * 1000, "max_ms": max(steady) * 1000}


def latency_job(bootstrap: str, source: str, sink: str, total: int,
                options: List[str]) -> None:
    with beam.Pipeline(argv=options) as p:
        (p | ReadFromKafka(bootstrap, source, max_records_per_partition=total,
                           value_deserializer="json", consumer_config=LOW_LATENCY)
         | beam.Map(lambda kv: (None, kv[1]))
         | WriteToKafka(bootstrap, sink, delivery="at_least_once", value_serializer="json"))


def main(argv: List[str] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--latency_job"]:
        bootstrap, source, sink, total = argv[1:5]
        latency_job(bootstrap, source, sink, int(total), argv[5:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap_servers", default=None)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=500, help="latency run: records/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run: duration")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="latency run: seconds of input sent first and not measured")
    parser.add_argument("--runner", default="direct")
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the results here")
    known, extra = parser.parse_known_args(argv)
    options = [f"--runner={known.runner}", "--quiet"] + extra
    if known.parallelism:
        options.append(f"--parallelism={known.parallelism}")
    broker = None
    bootstrap = known.bootstrap_servers
    if bootstrap is None:
        broker = KafkaDevBroker().start()
        bootstrap = broker.bootstrap_servers
    try:
        total = known.records // PARTITIONS * PARTITIONS
        print(f"Kafka -> map + keyed 1 s window sum -> Kafka, {total:,} records, runner "
              f"{known.runner} {' '.join(extra)}", flush=True)
        rows = throughput(bootstrap, total, options)
        print(f"Latency, read -> map -> at_least_once write, {known.rate} records/s for "
              f"{known.seconds:g}s:", flush=True)
        lat = latency(bootstrap, known.rate, known.seconds, known.warmup, options)
        print(f"  p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, max "
              f"{lat['max_ms']:.1f} ms over {lat['records']} records", flush=True)
    finally:
        if broker is not None:
            broker.stop()
    if known.json:
        Path(known.json).write_text(json.dumps({"throughput": rows, "latency": lat}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
