"""Savepoints and rescaling on the multiprocess runner: a job at parallelism 2 is stopped
(killed) after some checkpoints, its latest checkpoint is copied into a savepoint with
``headrace savepoint``, and the job restored from it with ``--from_checkpoint`` at
parallelism 1 and 3 publishes, over both runs, exactly the lines of an uninterrupted run."""
import os
import time

import pytest
from crash_support import CrashJob, published_lines

from headrace.cli import main as headrace_cli
from headrace.runners.state.checkpoint_storage import open_checkpoint_storage

pytestmark = pytest.mark.no_pipeline

EVENTS = 6000


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    job = CrashJob(tmp_path_factory.mktemp("reference"), events=EVENTS, rate=None)
    try:
        assert job.wait(300) == 0, job.driver_log()[-4000:]
        return published_lines(job.output)
    finally:
        job.close()


def _wait_for_checkpoints(path, count, job, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert job.running(), "the job ended before it was stopped:\n" + job.driver_log()
        if os.path.isdir(path):
            with open_checkpoint_storage(path, read_only=True) as storage:
                if len(storage.checkpoint_ids()) >= count:
                    return
        time.sleep(0.05)
    raise AssertionError(f"no {count} checkpoints within {timeout} s")


@pytest.mark.parametrize("new_parallelism, backend, new_backend",
                         [(1, "memory", "rocksdb"), (3, "rocksdb", "memory")])
def test_savepoint_at_2_restored_at_other_parallelism_gives_the_same_results(
        tmp_path, reference, capsys, new_parallelism, backend, new_backend):
    """Savepoints are portable: restored at another parallelism and on the other backend."""
    checkpoints = str(tmp_path / "checkpoints")
    output = str(tmp_path / "out")
    first = CrashJob(tmp_path / "first", events=EVENTS, rate=2000, parallelism=2,
                     checkpoint_dir=checkpoints, interval=0.2, output=output,
                     state_backend=backend)
    try:
        _wait_for_checkpoints(checkpoints, 2, first)
    finally:
        first.close()  # SIGKILL of the whole job: a stop at an arbitrary moment
    assert headrace_cli(["savepoint", checkpoints, str(tmp_path / "savepoints")]) == 0
    savepoint = capsys.readouterr().out.strip()
    second = CrashJob(tmp_path / "second", events=EVENTS, rate=None,
                      parallelism=new_parallelism, output=output, state_backend=new_backend,
                      checkpoint_dir=str(tmp_path / "checkpoints-2"), interval=0.2,
                      extra_argv=[f"--from_checkpoint={savepoint}"])
    try:
        assert second.wait(300) == 0, second.driver_log()[-4000:]
        assert f"from {savepoint}" in second.driver_log()
        assert "taken at parallelism 2" in second.driver_log()
    finally:
        second.close()
    assert published_lines(output) == reference


def test_stop_with_savepoint_then_resume_at_parallelism_3(tmp_path, reference):
    savepoints = str(tmp_path / "savepoints")
    output = str(tmp_path / "out")
    first = CrashJob(tmp_path / "first", events=EVENTS, rate=1500, parallelism=2,
                     checkpoint_dir=str(tmp_path / "checkpoints"), interval=0.3, output=output,
                     extra_argv=[f"--savepoint_dir={savepoints}"])
    try:
        _wait_for_checkpoints(str(tmp_path / "checkpoints"), 1, first)
        assert headrace_cli(["stop", str(first.process.pid), "--timeout", "60"]) == 0
        assert first.wait(10) == 0, first.driver_log()[-4000:]
        assert not first.leftovers()
        log = first.driver_log()
        assert "savepoint written to" in log, log[-4000:]
        savepoint = log.split("savepoint written to ")[1].split(";")[0]
    finally:
        first.close()
    assert savepoint.startswith(savepoints + "/chk-")
    with open_checkpoint_storage(savepoints, read_only=True) as storage:
        assert storage.latest().kind == "savepoint"
    assert published_lines(output) != reference  # stopped midway
    second = CrashJob(tmp_path / "second", events=EVENTS, rate=None, parallelism=3,
                      output=output, extra_argv=[f"--from_checkpoint={savepoint}"])
    try:
        assert second.wait(300) == 0, second.driver_log()[-4000:]
    finally:
        second.close()
    assert published_lines(output) == reference


def test_savepoint_dir_without_checkpoints_is_refused(tmp_path):
    job = CrashJob(tmp_path, events=10, rate=None, extra_argv=["--savepoint_dir=/tmp/x"])
    try:
        assert job.wait(120) != 0
        assert "--savepoint_dir needs --checkpoint_interval" in job.driver_log()
    finally:
        job.close()
