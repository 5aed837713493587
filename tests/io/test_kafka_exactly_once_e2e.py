"""End-to-end exactly-once through Kafka: a read-process-write job (ReadFromKafka -> keyed
user state in RocksDB -> WriteToKafka(exactly_once)) on the multiprocess runner with
checkpoints every 200 ms, its worker processes SIGKILLed at random moments; the job
restarts from its latest checkpoint each time and must end with every input record in the
output exactly once, as the read_committed oracle (which reads the raw log) sees it, and
per-key counts that agree with the restored state (each key's counts 1..n, once each).

The default suite runs one fast case; ``-m kafka_chaos`` (``tox -e kafka-chaos``) the long
one with at least ten kills."""
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

from headrace.testing import read_committed as rc

pytest.importorskip("confluent_kafka")
pytest.importorskip("rocksdict")
pytestmark = pytest.mark.no_pipeline

JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kafka_eos_job.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = 50


class Job:
    """The job's driver in its own session; its workers are the driver's children."""

    def __init__(self, workdir, config, parallelism):
        self.parallelism = parallelism
        self.log_path = workdir / "driver.log"
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen([sys.executable, JOB, json.dumps(config)],
                                        stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)

    def workers(self):
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid and fields[0] not in ("Z", "X"):
                found.append(int(name))
        return found

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


def _run(kafka_bootstrap, kafka_topic, tmp_path, *, records, kills, rate, seed, timeout):
    source, sink = kafka_topic(4, "e2e-in"), kafka_topic(3, "e2e-out")
    records -= records % 4
    parallelism = 2
    config = {"bootstrap": kafka_bootstrap, "input": source, "output": sink,
              "per_partition": records // 4,
              "argv": ["--runner=multiprocess", f"--parallelism={parallelism}", "--quiet",
                       "--state_backend=rocksdb", f"--state_dir={tmp_path / 'state'}",
                       f"--checkpoint_dir={tmp_path / 'checkpoints'}",
                       "--checkpoint_interval=0.2", "--restart_delay=0.05",
                       f"--job_name=e2e-{source}"]}
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(kafka_bootstrap, source, records, rate, stop),
                              daemon=True)
    job = Job(tmp_path, config, parallelism)
    feeder.start()
    try:
        deadline = time.monotonic() + timeout
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
              f"{log.count('restoring checkpoint')} restores")
    finally:
        stop.set()
        job.close()
        feeder.join(30)

    committed, aborted = [], 0
    for partition in range(3):
        log = rc.read_partition(kafka_bootstrap, sink, partition)
        assert not log.invisible, f"open transactions left in partition {partition}"
        committed += [(r.key.decode(), json.loads(r.value)) for r in log.committed]
        aborted += len(log.aborted)
    values = collections.Counter(v["i"] for _, v in committed)
    duplicates = sorted(i for i, c in values.items() if c > 1)
    missing = sorted(set(range(records)) - set(values))
    assert not duplicates and not missing, (f"duplicates {duplicates[:20]} "
                                            f"missing {missing[:20]}")
    counts = collections.defaultdict(list)
    for key, value in committed:
        counts[key].append(value["n"])
    for key, ns in counts.items():
        assert sorted(ns) == list(range(1, len(ns) + 1)), f"key {key}: counts {sorted(ns)}"
    print(f"{len(committed)} records committed once, {aborted} aborted ones ignored")
    return aborted


def test_killed_workers_yield_every_record_exactly_once(kafka_bootstrap, kafka_topic,
                                                         tmp_path):
    _run(kafka_bootstrap, kafka_topic, tmp_path, records=8000, kills=3, rate=700, seed=5,
         timeout=240)


@pytest.mark.kafka_chaos
def test_ten_random_kills(kafka_bootstrap, kafka_topic, tmp_path):
    _run(kafka_bootstrap, kafka_topic, tmp_path, records=40000, kills=12, rate=700,
         seed=int(time.time()), timeout=600)
