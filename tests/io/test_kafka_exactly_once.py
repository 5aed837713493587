"""WriteToKafka(delivery="exactly_once"): the sink's writer and committer driven through
every crash window of the protocol in real processes killed with SIGKILL, and random
kills; the read_committed oracle (which reads the raw log) must find every record exactly
once and nothing of an aborted transaction. Also the sink's errors.

``-m kafka_chaos`` (or ``tox -e kafka-chaos``) runs the long random-kill variant."""
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import uuid

import pytest

from headrace.testing import read_committed as rc

pytest.importorskip("confluent_kafka")
pytestmark = pytest.mark.no_pipeline

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kafka_eos_child.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Child:
    """One run of kafka_eos_child.py; read its lines with a deadline, kill it."""

    def __init__(self, bootstrap, topic, prefix, state_dir, total, every, crash=None):
        args = [sys.executable, CHILD, bootstrap, topic, prefix, str(state_dir), str(total),
                str(every)] + (["--crash", crash] if crash else [])
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=env)
        self.lines = []

    def wait_for(self, prefix, timeout=60.0):
        deadline = time.monotonic() + timeout
        out = self.process.stdout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = out.readline().decode()
            if not line:
                break
            self.lines.append(line.strip())
            if line.startswith(prefix):
                return line.strip()
        self.kill()
        raise AssertionError(f"no {prefix!r} line from the child; lines {self.lines}, "
                             f"stderr:\n{self.process.stderr.read().decode()[-3000:]}")

    def kill(self):
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self.process.stdout.close()
        self.process.stderr.close()


def run_to_completion(bootstrap, topic, prefix, state_dir, total, every):
    child = Child(bootstrap, topic, prefix, state_dir, total, every)
    try:
        child.wait_for("DONE", timeout=120)
    finally:
        child.kill()


def assert_exactly_once(bootstrap, topic, total, partitions):
    committed, aborted = [], []
    for partition in range(partitions):
        log = rc.read_partition(bootstrap, topic, partition)
        assert not log.invisible, f"open transactions left in partition {partition}"
        committed += [json.loads(r.value) for r in log.committed]
        aborted += [json.loads(r.value) for r in log.aborted]
    duplicates = sorted({v for v in committed if committed.count(v) > 1})
    missing = sorted(set(range(total)) - set(committed))
    assert not duplicates and not missing, (f"duplicates {duplicates[:20]}, missing "
                                            f"{missing[:20]}")
    assert len(committed) == total
    return aborted


@pytest.fixture
def eos_job(kafka_bootstrap, kafka_topic, tmp_path):
    topic = kafka_topic(3, "eos")
    return {"bootstrap": kafka_bootstrap, "topic": topic, "prefix": f"test/{uuid.uuid4().hex}",
            "state_dir": tmp_path}


@pytest.mark.parametrize("window", ["after_precommit", "after_complete", "during_commit",
                                    "after_commit"])
def test_a_kill_in_each_window_of_the_protocol(eos_job, window):
    total, every = 120, 20
    crash = Child(eos_job["bootstrap"], eos_job["topic"], eos_job["prefix"],
                  eos_job["state_dir"], total, every, crash=f"{window}:3")
    crash.wait_for(f"WINDOW {window} 3")
    crash.kill()
    run_to_completion(eos_job["bootstrap"], eos_job["topic"], eos_job["prefix"],
                      eos_job["state_dir"], total, every)
    aborted = assert_exactly_once(eos_job["bootstrap"], eos_job["topic"], total, 3)
    if window in ("after_precommit", "after_complete"):
        # The killed attempt's pre-committed transaction was aborted (fenced), and its
        # records reached readers once anyway: re-read (after_precommit) or re-produced.
        assert sorted(aborted) == list(range(40, 60))
    if window == "after_commit":
        assert aborted == []  # the marker said checkpoint 3 got through: nothing redone


def _random_kills(eos_job, kills, total, every, seed):
    rng = random.Random(seed)
    for _ in range(kills):
        child = Child(eos_job["bootstrap"], eos_job["topic"], eos_job["prefix"],
                      eos_job["state_dir"], total, every)
        try:
            child.wait_for("RUNNING")
            time.sleep(rng.uniform(0.0, 0.8))
        finally:
            child.kill()
    run_to_completion(eos_job["bootstrap"], eos_job["topic"], eos_job["prefix"],
                      eos_job["state_dir"], total, every)
    assert_exactly_once(eos_job["bootstrap"], eos_job["topic"], total, 3)


def test_random_kills(eos_job):
    _random_kills(eos_job, kills=3, total=3000, every=50, seed=7)


@pytest.mark.kafka_chaos
def test_many_random_kills(eos_job):
    _random_kills(eos_job, kills=15, total=20000, every=100, seed=int(time.time()))
