"""WriteToFiles on the multiprocess runner taking checkpoints: parts roll on every barrier, are
published when their checkpoint completes (while the job runs), the last ones by the final
checkpoint; the lines are the same as without checkpoints. Locally and on S3 (moto)."""
import os
import threading
import time

import pytest

import headrace as beam
from headrace.io import WriteToFiles, filesystems
from headrace.io.fileio import read_parts
from headrace.io.generator import GenerateEvents
from headrace.testing.util import assert_that

NUM_EVENTS = 3000


@pytest.fixture(autouse=True)
def _multiprocess_only(runner):
    if runner != "multiprocess":
        pytest.skip("checkpoints are taken by the multiprocess runner")


def write_events(out, argv, rate=3000, check_files=None):
    with beam.Pipeline(argv=["--runner=multiprocess", "--parallelism=2", "--quiet", *argv]) as p:
        files = (p | GenerateEvents(num_events=NUM_EVENTS, num_keys=10, events_per_second=rate,
                                    num_splits=2)
                 | beam.Map(repr) | WriteToFiles(out, suffix=".txt"))
        if check_files is not None:
            assert_that(files, check_files)


def lines(out):
    return sorted(line for data in read_parts(out, suffix=".txt").values()
                  for line in data.decode().splitlines())


def test_parts_are_published_checkpoint_by_checkpoint(tmp_path):
    out = str(tmp_path / "out")
    seen_while_running = []
    done = threading.Event()

    def watch():
        while not done.wait(0.05):
            if os.path.isdir(out):
                seen_while_running.append(
                    len([n for n in os.listdir(out) if n.startswith("part-")]))

    def check_files(files):  # the Write's output: every published part, named
        published = sorted(os.path.join(out, n) for n in os.listdir(out)
                           if n.startswith("part-"))
        assert sorted(files) == published, (files, published)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        write_events(out, [f"--checkpoint_dir={tmp_path / 'ckpt'}",
                           "--checkpoint_interval=0.1"], check_files=check_files)
    finally:
        done.set()
        watcher.join(10)
    published = [n for n in os.listdir(out) if n.startswith("part-")]
    assert len(published) > 4  # rolled on the barriers: more than one part per subtask
    # Published progressively while the job ran, not all by the final checkpoint.
    assert 0 < min(n for n in seen_while_running if n) < len(published) / 2, seen_while_running
    assert os.listdir(os.path.join(out, ".in-progress")) == []
    without = str(tmp_path / "without-checkpoints")
    write_events(without, [], rate=None)
    assert len(os.listdir(without)) == 3  # one part per subtask, and .in-progress
    assert lines(out) == lines(without)
    assert len(lines(out)) == NUM_EVENTS == len(set(lines(out)))


def test_checkpointed_write_to_s3(s3_env, tmp_path):
    from state.checkpoint_storage_support import new_bucket

    bucket = new_bucket()
    out = f"s3://{bucket}/events"
    start = time.monotonic()
    write_events(out, [f"--checkpoint_dir=s3://{bucket}/checkpoints",
                       "--checkpoint_interval=0.2"])
    assert time.monotonic() - start < 120
    parts = filesystems.match(out + "/part-*")
    assert len(parts) > 2
    assert filesystems.match(out + "/.in-progress/**") == []
    assert len(lines(out)) == NUM_EVENTS == len(set(lines(out)))
