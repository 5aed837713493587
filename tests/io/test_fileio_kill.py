"""WriteToFiles' two-phase commit across a real process kill (SIGKILL) at each crash window:
a child process drives the Write operator (writes, barriers, notifications) and kills itself at
the chosen point; the test then restores a new operator from the last complete checkpoint,
replays the input after it, finishes, and compares the output with an uninterrupted run's.
Locally and on S3 (a moto server on loopback)."""
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest

from headrace.io.fileio import PartFileSink, read_parts
from headrace.runners.operators.base import to_windowed_values
from headrace.runners.operators.writers import WriteOperator
from headrace.sdk.timestamp import MAX_MICROS

pytestmark = pytest.mark.no_pipeline

BATCHES = [[f"b{b}-r{r}" for r in range(40)] for b in range(12)]
CHECKPOINT_EVERY = 3  # batches; checkpoint n follows batch 3n
EXPECTED = b"".join(f"{record}\n".encode() for batch in BATCHES for record in batch)

CHILD = textwrap.dedent("""
    import os, pickle, signal, sys
    from headrace.io import filesystems
    from headrace.io.fileio import PartFileSink
    from headrace.runners.operators.base import to_windowed_values
    from headrace.runners.operators.writers import WriteOperator

    out, state_file, kill_at = sys.argv[1:4]
    batches = pickle.loads(bytes.fromhex(sys.argv[4]))

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if kill_at == "mid_commit":
        rename = filesystems.rename
        def rename_then_die(source, destination):
            rename(source, destination)
            die()
        filesystems.rename = rename_then_die
    op = WriteOperator("Write", PartFileSink(out, max_part_size=500), 0, 1)
    op.checkpointing = True
    op.start()
    checkpoint = 0
    for b, batch in enumerate(batches, 1):
        op.process_batch(0, to_windowed_values(batch))
        if b % {every} == 0:
            checkpoint += 1
            state = pickle.dumps(op.snapshot_state(checkpoint))
            if kill_at == "after_prepare" and checkpoint == 2:
                die()  # checkpoint 2 never completes
            with open(state_file + ".tmp", "wb") as f:  # the coordinator commits N
                f.write(pickle.dumps((checkpoint, b, state)))
            os.replace(state_file + ".tmp", state_file)
            if kill_at == "after_complete" and checkpoint == 2:
                die()  # complete, but the sink was never notified
            op.notify_checkpoint_complete(checkpoint)
        if kill_at == "mid_write" and b == 8:
            die()  # a part is open, with data in its buffers
    die()
""").replace("{every}", str(CHECKPOINT_EVERY))


def finish(op, checkpoint):
    op.on_watermark(0, MAX_MICROS)
    op.snapshot_state(checkpoint + 1)
    op.notify_checkpoint_complete(checkpoint + 1)
    op.close()


def output_path(request, tmp_path, where):
    if where == "local":
        return str(tmp_path / "out")
    request.getfixturevalue("s3_env")
    from state.checkpoint_storage_support import new_bucket

    return f"s3://{new_bucket()}/out"


@pytest.mark.parametrize("where, kill_at", [
    ("local", "after_prepare"), ("local", "after_complete"), ("local", "mid_commit"),
    ("local", "mid_write"), ("s3", "after_prepare"), ("s3", "mid_commit")])
def test_output_after_a_kill_and_restore_equals_an_uninterrupted_run(request, tmp_path, where,
                                                                     kill_at):
    out = output_path(request, tmp_path, where)
    state_file = str(tmp_path / "checkpoint")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.run([sys.executable, "-c", CHILD, out, state_file, kill_at,
                            pickle.dumps(BATCHES).hex()], env=env, timeout=120,
                           capture_output=True)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    checkpoint, replay_from, state = pickle.loads(open(state_file, "rb").read())
    assert checkpoint == {"after_prepare": 1, "after_complete": 2, "mid_commit": 1,
                          "mid_write": 2}[kill_at]
    op = WriteOperator("Write", PartFileSink(out, max_part_size=500), 0, 1)
    op.checkpointing = True
    op.restore_state([pickle.loads(state)])
    op.start()
    for batch in BATCHES[replay_from:]:  # the sources replay from the checkpoint
        op.process_batch(0, to_windowed_values(batch))
    finish(op, checkpoint)
    assert read_parts(out) == {0: EXPECTED}
    sink = PartFileSink(out)
    from headrace.io import filesystems

    assert filesystems.match(filesystems.join(sink.in_progress_dir, "**")) == []


def test_uninterrupted_run_for_comparison(tmp_path):
    out = str(tmp_path / "out")
    op = WriteOperator("Write", PartFileSink(out, max_part_size=500), 0, 1)
    op.checkpointing = True
    op.start()
    for b, batch in enumerate(BATCHES, 1):
        op.process_batch(0, to_windowed_values(batch))
        if b % CHECKPOINT_EVERY == 0:
            op.snapshot_state(b // CHECKPOINT_EVERY)
            op.notify_checkpoint_complete(b // CHECKPOINT_EVERY)
    finish(op, len(BATCHES) // CHECKPOINT_EVERY)
    assert read_parts(out) == {0: EXPECTED}
