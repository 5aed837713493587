"""Crash tests: a checkpointed, keyed, windowed, stateful job on the multiprocess runner,
its workers SIGKILLed at random moments and at named points of the checkpoint protocol,
restarts from the latest complete checkpoint, and the exactly-once file sink's published
output identical (as sorted lines) to an uninterrupted run's.

The default suite runs one fast case (filesystem storage, memory backend, a few kills).
``HEADRACE_CRASH_TESTS=long`` (or ``tox -e crash``) adds the long one: at least ten kills
in one run, for each state backend on each storage (a directory, S3 on moto's server).
"""
import os
import random
import time

import pytest
from crash_support import CrashJob, kill_randomly, published_lines

pytestmark = pytest.mark.no_pipeline

LONG = os.environ.get("HEADRACE_CRASH_TESTS", "") == "long"
#: Points of the checkpoint protocol a process pauses at, to be killed there.
PAUSE_POINTS = ["after-snapshot", "during-upload", "after-commit"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The published lines of uninterrupted runs (no checkpoints, no kills), by size."""
    cache = {}

    def lines(events):
        if events not in cache:
            job = CrashJob(tmp_path_factory.mktemp("reference"), events=events, rate=None)
            try:
                assert job.wait(300) == 0, job.driver_log()[-4000:]
                cache[events] = published_lines(job.output)
            finally:
                job.close()
        return cache[events]

    return lines


def _run_with_kills(workdir, reference, *, events, rate, kills, backend, checkpoint_dir, seed,
                    pause_points, timeout):
    job = CrashJob(workdir, events=events, rate=rate, state_backend=backend,
                   checkpoint_dir=checkpoint_dir, interval=0.2,
                   pause_at=PAUSE_POINTS if pause_points else (), pause_seconds=0.3)
    try:
        done = kill_randomly(job, kills, random.Random(seed), min_gap=1.0, max_gap=2.5,
                             pause_points=pause_points, deadline=time.monotonic() + timeout)
        code = job.wait(timeout)
        log = job.driver_log()
        print(f"\nkills: {done}\n" + "\n".join(line for line in log.splitlines()
                                               if "restart" in line or "restor" in line))
        assert code == 0, log[-4000:]
        assert sum(done.values()) >= kills, f"only {done} kills before the job ended"
        assert log.count("restarting the job") >= kills
        assert log.count("restoring checkpoint") >= kills // 2, "restarts did not restore"
        assert not job.leftovers(), "processes of the job left behind"
        assert published_lines(job.output) == reference(events)
        return done
    finally:
        job.close()


def test_killed_workers_recover_from_checkpoints_with_identical_output(tmp_path, reference):
    _run_with_kills(tmp_path, reference, events=15000, rate=3000, kills=3, backend="memory",
                    checkpoint_dir=str(tmp_path / "checkpoints"), seed=1, pause_points=True,
                    timeout=180)


@pytest.mark.skipif(not LONG, reason="long crash test: HEADRACE_CRASH_TESTS=long")
@pytest.mark.parametrize("storage", ["filesystem", "s3"])
@pytest.mark.parametrize("backend", ["memory", "rocksdb"])
def test_ten_kills_in_one_run_output_identical(tmp_path, reference, request, storage, backend):
    if storage == "s3":
        request.getfixturevalue("s3_env")
        from state.checkpoint_storage_support import new_bucket

        checkpoint_dir = f"s3://{new_bucket()}/crash"
    else:
        checkpoint_dir = str(tmp_path / "checkpoints")
    done = _run_with_kills(tmp_path, reference, events=40000, rate=2500, kills=10,
                           backend=backend, checkpoint_dir=checkpoint_dir, seed=7,
                           pause_points=True, timeout=600)
    assert any(kind.startswith("at ") for kind in done), done
