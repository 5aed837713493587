"""End-to-end exactly-once through Kafka: a read-process-write job (ReadFromKafka -> keyed
user state in RocksDB -> WriteToKafka(exactly_once)) on the multiprocess runner with
checkpoints every 200 ms, its worker processes SIGKILLed at random moments; the job
restarts from its latest checkpoint each time and must end with every input record in the
output exactly once, as the read_committed oracle (which reads the raw log) sees it, and
per-key counts that agree with the restored state (each key's counts 1..n, once each).

The default suite runs one fast case (two kills); ``-m kafka_chaos`` (``tox -e kafka-chaos``)
adds a kill in each window of the protocol (crash points of the engine, and around the
sink's commit) and the long run with at least ten kills."""
import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from eos_checks import committed_once

from headrace.testing.processes import live_children

pytest.importorskip("confluent_kafka")
pytest.importorskip("rocksdict")
pytestmark = pytest.mark.no_pipeline

JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kafka_eos_job.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = 50


class Job:
    """The job's driver in its own session; its workers are the driver's children."""

    def __init__(self, workdir, config, parallelism, env=None):
        self.parallelism = parallelism
        self.log_path = workdir / "driver.log"
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   **(env or {}))
        self.process = subprocess.Popen([sys.executable, JOB, json.dumps(config)],
                                        stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)

    def workers(self):
        return live_children(self.process.pid)

    def text(self):
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.log.close()


def _latest_checkpoint(directory):
    ids = [int(name[4:]) for name in os.listdir(directory) if name.startswith("chk-")
           and os.path.exists(os.path.join(directory, name, "_metadata"))] \
        if os.path.isdir(directory) else []
    return max(ids, default=0)


def _kill_workers(job, kills, rng, deadline, checkpoints):
    """SIGKILL a random worker ``kills`` times; each time only once a checkpoint newer than
    the one before the previous kill completed (so that every restart restores progress),
    then after a random delay."""
    done, last = 0, 0
    while done < kills and job.process.poll() is None and time.monotonic() < deadline:
        workers = job.workers()
        if len(workers) < job.parallelism or _latest_checkpoint(checkpoints) <= last:
            time.sleep(0.02)
            continue
        time.sleep(rng.uniform(0.0, 0.8))
        workers = job.workers()
        if len(workers) < job.parallelism:
            continue
        victim = rng.choice(workers)
        last = _latest_checkpoint(checkpoints)
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            continue
        done += 1
        while job.process.poll() is None and time.monotonic() < deadline:
            if victim not in (workers := job.workers()) and len(workers) >= job.parallelism:
                break
            time.sleep(0.02)
    return done


def _feed(bootstrap, topic, records, rate, stop):
    """Write the input at ``rate`` records/s while the job runs: with all of it there at
    once, the reader would run far ahead and every barrier wait behind the backlog."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    begin = time.monotonic()
    for i in range(records):
        if stop.is_set():
            return
        delay = begin + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.produce(topic, json.dumps(i).encode(), f"k{i % KEYS}".encode(),
                         partition=i % 4)
        producer.poll(0)
    producer.flush(30)


def _kill_at_point(job, point, pause_dir, deadline):
    """SIGKILL a worker once a process announced ``point`` for a checkpoint >= 2: the
    announcing worker itself, or a random one when the coordinator announced it."""
    while job.process.poll() is None and time.monotonic() < deadline:
        for name in os.listdir(pause_dir):
            _, pid, checkpoint = name.split(".")
            if int(checkpoint) >= 2:
                workers = job.workers()
                victim = int(pid) if int(pid) in workers else workers[0]
                os.kill(victim, signal.SIGKILL)
                return 1
        time.sleep(0.01)
    return 0


def _run(kafka_bootstrap, kafka_topic, tmp_path, *, records, kills, rate, seed, timeout,
         point=None):
    source, sink = kafka_topic(4, "e2e-in"), kafka_topic(3, "e2e-out")
    records -= records % 4
    parallelism = 2
    config = {"bootstrap": kafka_bootstrap, "input": source, "output": sink,
              "per_partition": records // 4, "sink_points": bool(point),
              "argv": ["--runner=multiprocess", f"--parallelism={parallelism}", "--quiet",
                       "--state_backend=rocksdb", f"--state_dir={tmp_path / 'state'}",
                       f"--checkpoint_dir={tmp_path / 'checkpoints'}",
                       "--checkpoint_interval=0.2", "--restart_delay=0.05",
                       f"--job_name=e2e-{source}"]}
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(kafka_bootstrap, source, records, rate, stop),
                              daemon=True)
    pause_dir = tmp_path / "pauses"
    pause_dir.mkdir()
    env = {"HEADRACE_TEST_PAUSE_AT": point, "HEADRACE_TEST_PAUSE_DIR": str(pause_dir),
           "HEADRACE_TEST_PAUSE_EVERY": "2", "HEADRACE_TEST_PAUSE_SECONDS": "1"} if point else {}
    job = Job(tmp_path, config, parallelism, env)
    feeder.start()
    try:
        deadline = time.monotonic() + timeout
        if point:
            done = _kill_at_point(job, point, pause_dir, deadline)
        else:
            done = _kill_workers(job, kills, random.Random(seed), deadline,
                                 str(tmp_path / "checkpoints"))
        code = job.process.wait(max(1.0, deadline - time.monotonic()))
        log = job.text()
        assert code == 0, log[-4000:]
        assert done >= kills, (f"only {done} kills before the job ended (checkpoints: "
                               f"{_latest_checkpoint(str(tmp_path / 'checkpoints'))})")
        assert log.count("restarting the job") >= kills, log[-4000:]
        assert log.count("restoring checkpoint") >= kills, "restarts did not restore"
        print(f"\n{done} kills; {log.count('re-produced')} epochs re-produced; "
              f"{log.count('restoring checkpoint')} restores; "
              f"{log.count('control markers of fenced')} waits for a control marker")
    finally:
        stop.set()
        job.close()
        feeder.join(30)

    copies, aborted = committed_once(kafka_bootstrap, sink, 3, range(records),
                                     lambda r: json.loads(r.value)["i"])
    counts = collections.defaultdict(list)
    for (record, *_) in copies.values():
        counts[record.key].append(json.loads(record.value)["n"])
    for key, ns in counts.items():
        assert sorted(ns) == list(range(1, len(ns) + 1)), f"key {key}: counts {sorted(ns)}"
    print(f"{len(copies)} records committed, {aborted} aborted ones ignored")
    return aborted


def test_killed_workers_yield_every_record_exactly_once(kafka_bootstrap, kafka_topic,
                                                         tmp_path):
    _run(kafka_bootstrap, kafka_topic, tmp_path, records=8000, kills=2, rate=700, seed=5,
         timeout=240)


@pytest.mark.kafka_chaos
@pytest.mark.parametrize("point", [
    "after-snapshot",  # the sink pre-committed (barrier passed), the checkpoint not complete
    "after-commit",  # the checkpoint complete, its notifications (the Kafka commit) not sent
    "kafka-before-commit",  # notified, the transaction not committed yet
    "kafka-after-commit",  # the transaction committed, nothing after it yet
])
def test_a_kill_in_each_window_of_the_protocol(kafka_bootstrap, kafka_topic, tmp_path, point):
    _run(kafka_bootstrap, kafka_topic, tmp_path, records=6000, kills=1, rate=700, seed=0,
         timeout=240, point=point)


@pytest.mark.kafka_chaos
def test_ten_random_kills(kafka_bootstrap, kafka_topic, tmp_path):
    _run(kafka_bootstrap, kafka_topic, tmp_path, records=40000, kills=12, rate=700,
         seed=int(time.time()), timeout=600)
