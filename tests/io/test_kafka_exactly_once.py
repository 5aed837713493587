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
from eos_checks import committed_once

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
    """Every record once (see eos_checks); returns the values of aborted records."""
    committed_once(bootstrap, topic, partitions, range(total), lambda r: json.loads(r.value))
    return [json.loads(r.value) for p in range(partitions)
            for r in rc.read_partition(bootstrap, topic, p).aborted]


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
    # Checkpoint 3 holds records 40..59; epoch 4 had begun (60..66, sent or not yet) when
    # 3 was committed; the killed attempt's open transactions were fenced on restore.
    if window == "after_precommit":  # redone after a restore from checkpoint 2
        assert sorted(aborted) == list(range(40, 60))
    elif window == "after_complete":  # re-produced from checkpoint 3
        assert sorted(aborted) == list(range(40, 60))
    elif window == "after_commit":  # the marker says 3 got through: nothing re-produced
        assert set(aborted) <= set(range(60, 67))
    else:  # the kill raced the commit: 3 was committed once, by the attempt or the repair
        assert set(aborted) <= set(range(40, 67))


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


@pytest.mark.kafka_chaos
def test_random_kills(eos_job):
    _random_kills(eos_job, kills=3, total=3000, every=50, seed=7)


@pytest.mark.kafka_chaos
def test_many_random_kills(eos_job):
    _random_kills(eos_job, kills=15, total=20000, every=100, seed=int(time.time()))


def test_rescaling_down_fences_the_vanished_subtasks_and_repairs_their_epochs(
        kafka_bootstrap, kafka_topic):
    from headrace.io.kafka.transactional import KafkaTransactionalSink

    topic = kafka_topic(1, "eos")

    def make_sink():
        return KafkaTransactionalSink(kafka_bootstrap, topic, f"rescale/{topic}",
                                      {"value_serializer": "json"}, 10.0)

    old = make_sink()  # parallelism 3, all in this process: the "zombies"
    writers = [old.open_writer(i, 3) for i in range(3)]
    committers = [old.create_committer(i, 3) for i in range(3)]
    for i, writer in enumerate(writers):
        writer.write_batch([(None, 100 * i + j) for j in range(5)])
    prepared = [writer.prepare_commit(1) for writer in writers]
    states = [writer.snapshot_state(1) for writer in writers]
    committers[0].commit(prepared[0])  # checkpoint 1 complete; only subtask 0 committed
    for writer in writers:  # epoch 2 under way everywhere, then everything "crashes"
        writer.write_batch([(None, -1)])
        writer.pool.producers[writer.current].flush(10)
    assert rc.read_partition(kafka_bootstrap, topic).invisible  # open transactions hold the LSO

    # Restore checkpoint 1 at parallelism 2: new subtask 0 gets old 0 and 2, 1 gets old 1.
    new = make_sink()
    for index, old_subtasks in ((0, (0, 2)), (1, (1,))):
        new.create_committer(index, 2).commit([c for s in old_subtasks for c in prepared[s]])
        new.restore_writer(index, 2, [states[s] for s in old_subtasks]).close()
    log = rc.read_partition(kafka_bootstrap, topic)
    assert not log.invisible, "a vanished subtask's open transaction was not fenced"
    assert sorted(json.loads(r.value) for r in log.committed) == sorted(
        100 * i + j for i in range(3) for j in range(5))
    assert sorted(json.loads(r.value) for r in log.aborted).count(-1) == 3


def test_progress_is_read_from_control_markers_while_other_transactions_are_open(
        kafka_bootstrap, kafka_topic):
    """The case Tansu's offset commits got wrong: subtask 0's epoch 1 committed while
    another subtask's epoch, whose marker comes first in the progress partition, is open
    (so the last stable offset is before subtask 0's marker) and subtask 0's epoch 2 too.
    A restore reads marker 1; after fencing epoch 2's id its aborted marker does not
    count."""
    from headrace.io.kafka.transactional import KafkaTransactionalSink

    topic = kafka_topic(1, "eos")
    sink = KafkaTransactionalSink(kafka_bootstrap, topic, f"progress/{topic}",
                                  {"value_serializer": "json"}, 10.0)
    writers = [sink.open_writer(i, 2) for i in range(2)]
    writers[1].write_batch([(None, -1)])
    writers[1].prepare_commit(1)  # pre-committed, left open: it holds the LSO
    writers[0].write_batch([(None, 1)])
    first = writers[0].prepare_commit(1)
    writers[0].write_batch([(None, 2)])
    second = writers[0].prepare_commit(2)  # pre-committed, left open
    sink.create_committer(0, 2).commit(first)
    key = sink.progress_key(0)
    progress = rc.read_partition(kafka_bootstrap, sink.progress_topic)
    assert progress.last_stable_offset < progress.log_end

    reader = KafkaTransactionalSink(kafka_bootstrap, topic, f"progress/{topic}", {}, 10.0)
    assert reader.read_progress({key}, set()) == {key: 1}
    tid = second[0].transactional_id
    reader.new_producer(tid).flush(0)  # fence: the broker aborts epoch 2
    assert reader.read_progress({key}, {tid}) == {key: 1}
    batches = rc.fetch_batches(kafka_bootstrap, topic)
    outcome = rc.resolve_transactions(batches).outcome
    assert {json.loads(b.records[0].value): outcome.get(b.base_offset) for b in batches
            if not b.control and b.records[0].value != b"-1"} == {1: "COMMIT", 2: "ABORT"}
