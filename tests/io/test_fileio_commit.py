"""Two-phase commit of WriteToFiles' part files, driven through the Write operator's checkpoint
hooks (snapshot_state, notify_checkpoint_complete, restore_state) as the checkpointing engine
calls them, on real files. A "crash" is an operator dropped without close(): its files stay as
a killed process leaves them."""
import os
import pickle
import random

import pytest

from headrace.io.fileio import PartFileSink, read_parts
from headrace.runners.operators.base import Operator, to_windowed_values
from headrace.runners.operators.writers import WriteOperator
from headrace.sdk.timestamp import MAX_MICROS

pytestmark = pytest.mark.no_pipeline


class Collector(Operator):
    """Records what the Write emits, and when its watermark arrives relative to the outputs."""

    def __init__(self):
        super().__init__("collect", 1)
        self.events = []

    def process_batch(self, index, batch):
        self.events.extend(("value", wv.value) for wv in batch)

    def advance(self, watermark):
        self.events.append(("watermark", watermark))


def make_writer(sink, index=0, num_writers=1, checkpointing=True, snapshots=None):
    op = WriteOperator("Write(test)", sink, index, num_writers)
    op.checkpointing = checkpointing
    collector = Collector()
    op.receivers[None] = [(collector, 0)]
    if snapshots is not None:
        op.restore_state(snapshots)
    op.start()
    return op, collector


def write(op, values):
    op.process_batch(0, to_windowed_values([str(v) for v in values]))


def snapshot(op, n):
    """As the engine: snapshot, then the state goes through pickling into storage."""
    return pickle.loads(pickle.dumps(op.snapshot_state(n)))


def visible(path):
    return sorted(name for name in os.listdir(path) if not name.startswith("."))


def in_progress(path):
    directory = os.path.join(path, ".in-progress")
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def lines(path, **kwargs):
    return sorted(int(x) for data in read_parts(path, **kwargs).values() for x in data.split())


def test_parts_are_visible_only_after_their_checkpoint_completes(tmp_path):
    out = str(tmp_path / "out")
    op, _ = make_writer(PartFileSink(out, suffix=".txt"))
    write(op, [1, 2])
    state = snapshot(op, 1)
    assert state["pending"][1][0].final.endswith("part-00000-000000.txt")
    assert visible(out) == [] and in_progress(out) == ["part-00000-000000.txt"]
    write(op, [3])
    snapshot(op, 2)
    op.notify_checkpoint_complete(1)
    assert visible(out) == ["part-00000-000000.txt"]
    assert in_progress(out) == ["part-00000-000001.txt"]
    assert read_parts(out, suffix=".txt") == {0: b"1\n2\n"}
    op.notify_checkpoint_complete(2)
    assert read_parts(out, suffix=".txt") == {0: b"1\n2\n3\n"}
    assert in_progress(out) == []


def test_a_later_notification_commits_every_earlier_pending_checkpoint_in_order(tmp_path):
    out = str(tmp_path / "out")
    op, _ = make_writer(PartFileSink(out))
    write(op, [1])
    snapshot(op, 1)  # its notification is lost
    write(op, [2])
    state = snapshot(op, 2)
    assert sorted(state["pending"]) == [1, 2]
    op.notify_checkpoint_complete(2)
    assert visible(out) == ["part-00000-000000", "part-00000-000001"]
    assert op.pending == {} and snapshot(op, 3)["pending"] == {}


def test_a_checkpoint_without_new_records_commits_nothing(tmp_path):
    out = str(tmp_path / "out")
    op, _ = make_writer(PartFileSink(out))
    assert snapshot(op, 1) == {"writer": {"subtask": 0, "next_part": 0}, "pending": {}}
    op.notify_checkpoint_complete(1)
    assert not os.path.exists(out) or visible(out) == []


def test_restore_publishes_pending_parts_and_removes_the_crashed_attempts_leftovers(tmp_path):
    out = str(tmp_path / "out")
    sink = PartFileSink(out)
    op, _ = make_writer(sink)
    write(op, range(0, 10))
    state = snapshot(op, 1)          # checkpoint 1 completes, but the notification is lost
    write(op, range(10, 20))
    snapshot(op, 2)                  # prepared, never completed
    write(op, range(20, 25))         # an open part
    del op                           # crash
    assert visible(out) == [] and len(in_progress(out)) == 3
    restored, collector = make_writer(sink, snapshots=[state])
    assert visible(out) == ["part-00000-000000"] and in_progress(out) == []
    # The sources replay from checkpoint 1: records 10.. again.
    write(restored, range(10, 25))
    snapshot(restored, 2)
    restored.notify_checkpoint_complete(2)
    restored.advance(MAX_MICROS)
    snapshot(restored, 3)
    restored.notify_checkpoint_complete(3)
    restored.close()
    assert lines(out) == list(range(25))
    assert visible(out) == ["part-00000-000000", "part-00000-000001"]


def test_restoring_parts_published_before_the_crash_is_idempotent(tmp_path):
    out = str(tmp_path / "out")
    sink = PartFileSink(out)
    op, _ = make_writer(sink)
    write(op, [1, 2, 3])
    state = snapshot(op, 1)
    op.notify_checkpoint_complete(1)  # published; the crash comes after
    del op
    for _ in range(2):  # a crash during the restore repeats it
        restored, _ = make_writer(sink, snapshots=[state])
    assert read_parts(out) == {0: b"1\n2\n3\n"}
    write(restored, [4])
    assert restored.snapshot_state(2)["pending"][2][0].final.endswith("part-00000-000001")


def test_a_part_lost_before_publication_is_an_error_naming_the_sink(tmp_path):
    out = str(tmp_path / "out")
    op, _ = make_writer(PartFileSink(out))
    write(op, [1])
    snapshot(op, 1)
    os.remove(os.path.join(out, ".in-progress", "part-00000-000000"))
    with pytest.raises(FileNotFoundError, match=r"WriteToFiles\(.*out\).*part-00000-000000.*"
                                                r"Write\(test\)"):
        op.notify_checkpoint_complete(1)


def test_rescaling_publishes_every_old_subtasks_parts_and_cleans_all_leftovers(tmp_path):
    out = str(tmp_path / "out")
    sink = PartFileSink(out)
    old = [make_writer(sink, i, 3)[0] for i in range(3)]
    states = []
    for i, op in enumerate(old):
        write(op, [100 * i + k for k in range(5)])
        states.append(snapshot(op, 1))
        write(op, [100 * i + 50])  # after the checkpoint: replayed after the restore
        snapshot(op, 2)
    # A crashed attempt at parallelism 6 left an in-progress part of subtask 5.
    open(os.path.join(out, ".in-progress", "part-00005-000000"), "w").close()
    del old, op
    # Parallelism 3 -> 2: old subtask i goes to new subtask i % 2.
    new = [make_writer(sink, j, 2, snapshots=[s for i, s in enumerate(states) if i % 2 == j])[0]
           for j in range(2)]
    assert in_progress(out) == []
    assert lines(out) == sorted(100 * i + k for i in range(3) for k in range(5))
    for j, op in enumerate(new):
        write(op, [100 * i + 50 for i in range(3) if i % 2 == j])
        snapshot(op, 2)
        op.notify_checkpoint_complete(2)
    # New subtask 0 continues its numbering after the parts old subtask 0 published.
    assert visible(out) == ["part-00000-000000", "part-00000-000001", "part-00001-000000",
                            "part-00001-000001", "part-00002-000000"]
    assert lines(out) == sorted(100 * i + k for i in range(3) for k in [*range(5), 50])


def test_a_fresh_writer_removes_only_leftovers_of_its_own_subtasks(tmp_path):
    out = str(tmp_path / "out")
    leftovers = tmp_path / "out" / ".in-progress"
    leftovers.mkdir(parents=True)
    for name in ["part-00000-000003", "part-00001-000000", "part-00002-000001",
                 "other-00000-000000", "part-00000-000001.txt"]:
        (leftovers / name).write_bytes(b"x\n")
    op, _ = make_writer(PartFileSink(out), 0, 2)
    write(op, [1])  # opens the writer (checkpointing: opened on first use)
    # Gone: 00000-000003 and 00002-000001 (2 % 2 == 0); new: its own open part 00000-000000.
    assert in_progress(out) == ["other-00000-000000", "part-00000-000000",
                                "part-00000-000001.txt", "part-00001-000000"]


def test_end_of_input_waits_for_the_final_checkpoint_then_emits_before_the_watermark(tmp_path):
    out = str(tmp_path / "out")
    op, collector = make_writer(PartFileSink(out))
    write(op, [1, 2])
    op.on_watermark(0, MAX_MICROS)
    assert collector.events == [] and op.output_watermark != MAX_MICROS
    assert visible(out) == []
    snapshot(op, 7)  # the final checkpoint
    assert visible(out) == []
    op.notify_checkpoint_complete(7)
    final = os.path.join(out, "part-00000-000000")
    assert collector.events == [("value", final), ("watermark", MAX_MICROS)]
    assert op.snapshot_state(8) == {"writer": None, "pending": {}}
    op.close()
    assert read_parts(out) == {0: b"1\n2\n"}


def test_a_checkpoint_before_the_end_of_input_does_not_finish_the_writer(tmp_path):
    out = str(tmp_path / "out")
    op, collector = make_writer(PartFileSink(out), 1, 2)
    write(op, [1])
    snapshot(op, 1)
    op.on_watermark(0, MAX_MICROS)
    op.notify_checkpoint_complete(1)  # completed, but taken before the end
    assert collector.events == []
    snapshot(op, 2)
    op.notify_checkpoint_complete(2)
    # Several writers: the (index, result) pair goes to the finalizing operator.
    assert collector.events == [("value", (1, [os.path.join(out, "part-00001-000000")])),
                                ("watermark", MAX_MICROS)]


def test_without_checkpointing_everything_is_published_at_the_end_of_input(tmp_path):
    out = str(tmp_path / "out")
    op, collector = make_writer(PartFileSink(out, max_part_size=4), checkpointing=False)
    write(op, [1, 2, 3])
    assert visible(out) == [] and len(in_progress(out)) == 2  # parts roll at 4 bytes
    op.on_watermark(0, MAX_MICROS)
    assert visible(out) == ["part-00000-000000", "part-00000-000001"]
    assert collector.events[-1] == ("watermark", MAX_MICROS)
    assert read_parts(out) == {0: b"1\n2\n3\n"}


def test_the_output_does_not_depend_on_checkpoint_timing(tmp_path):
    """Same input, different checkpoint schedules (and a crash): the concatenation of each
    subtask's parts is byte-identical; only where the parts roll differs."""
    batches = [[f"record-{b}-{i}" for i in range(random.Random(b).randint(0, 30))]
               for b in range(40)]

    def run(name, checkpoint_every, crash_at=None):
        out = str(tmp_path / name)
        sink = PartFileSink(out, max_part_size=700)
        op, _ = make_writer(sink, checkpointing=checkpoint_every is not None)
        checkpoint, complete_state, complete_batch, b = 0, None, 0, 0
        while b < len(batches):
            op.process_batch(0, to_windowed_values(batches[b]))
            b += 1
            if checkpoint_every and b % checkpoint_every == 0:
                checkpoint += 1
                state = snapshot(op, checkpoint)
                if checkpoint % 2:  # every other notification is lost
                    op.notify_checkpoint_complete(checkpoint)
                complete_state, complete_batch = state, b
            if crash_at is not None and b == crash_at:
                crash_at = None
                del op
                op, _ = make_writer(sink, snapshots=[complete_state])
                b = complete_batch  # the sources replay from the checkpoint
        op.on_watermark(0, MAX_MICROS)
        if checkpoint_every:
            snapshot(op, checkpoint + 1)
            op.notify_checkpoint_complete(checkpoint + 1)
        op.close()
        return read_parts(out), len(visible(out))

    expected = {0: b"".join(f"{r}\n".encode() for batch in batches for r in batch)}
    results = [run("none", None), run("every-3", 3), run("every-7", 7),
               run("crash", 5, crash_at=23)]
    assert [data for data, _ in results] == [expected] * 4
    assert len({count for _, count in results}) > 1  # the schedules did roll differently


# -- the same protocol on S3 (a moto server on loopback) ---------------------------------------

def s3_names(url):
    from headrace.io import filesystems

    return ([p.rsplit("/", 1)[1] for p in filesystems.match(url + "/*")],
            [p.rsplit("/", 1)[1] for p in filesystems.match(url + "/.in-progress/*")])


def test_on_s3_parts_are_uploaded_at_the_barrier_and_published_on_completion(s3_env):
    from state.checkpoint_storage_support import new_bucket

    out = f"s3://{new_bucket()}/events"
    sink = PartFileSink(out, suffix=".txt")
    op, _ = make_writer(sink)
    write(op, range(5))
    assert s3_names(out) == ([], [])  # spooled locally until the barrier
    state = snapshot(op, 1)
    assert s3_names(out) == ([], ["part-00000-000000.txt"])
    write(op, range(5, 8))
    snapshot(op, 2)  # never completes
    del op  # crash
    restored, _ = make_writer(sink, snapshots=[state])
    assert s3_names(out) == (["part-00000-000000.txt"], [])
    write(restored, range(5, 9))
    restored.on_watermark(0, MAX_MICROS)
    snapshot(restored, 2)
    restored.notify_checkpoint_complete(2)
    assert s3_names(out) == (["part-00000-000000.txt", "part-00000-000001.txt"], [])
    assert read_parts(out, suffix=".txt") == {0: b"".join(b"%d\n" % i for i in range(9))}


def test_on_s3_a_commit_interrupted_between_copy_and_delete_is_finished(s3_env):
    import boto3
    from state.checkpoint_storage_support import new_bucket

    bucket = new_bucket()
    out = f"s3://{bucket}/events"
    sink = PartFileSink(out)
    op, _ = make_writer(sink)
    write(op, [1, 2])
    state = snapshot(op, 1)
    write(op, [3])
    state2 = snapshot(op, 2)
    del op
    client = boto3.client("s3")
    # Checkpoint 1 was copied to its final key, but the crash came before the delete;
    # checkpoint 2 was published completely.
    client.copy_object(Bucket=bucket, Key="events/part-00000-000000", CopySource={
        "Bucket": bucket, "Key": "events/.in-progress/part-00000-000000"})
    sink.create_committer(0, 1).commit(state2["pending"][2])
    assert s3_names(out) == (["part-00000-000000", "part-00000-000001"], ["part-00000-000000"])
    make_writer(sink, snapshots=[state2])
    assert s3_names(out) == (["part-00000-000000", "part-00000-000001"], [])
    assert read_parts(out) == {0: b"1\n2\n3\n"}
    make_writer(sink, snapshots=[state])  # restoring an older checkpoint commits nothing twice
    assert read_parts(out) == {0: b"1\n2\n3\n"}


def test_destinations_restore_and_leftovers(tmp_path):
    out = str(tmp_path / "out")
    sink = PartFileSink(out, destination=lambda v: f"d{int(v) % 2}")
    op, _ = make_writer(sink)
    write(op, range(4))
    state = snapshot(op, 1)
    assert [p.final[len(out):] for p in state["pending"][1]] == ["/d0/part-00000-000000",
                                                                 "/d1/part-00000-000001"]
    write(op, range(4, 8))
    snapshot(op, 2)  # never completes
    del op
    assert sorted(os.listdir(os.path.join(out, ".in-progress", "d0"))) == [
        "part-00000-000000", "part-00000-000002"]
    restored, _ = make_writer(sink, snapshots=[state])
    assert [os.listdir(os.path.join(out, ".in-progress", d)) for d in ("d0", "d1")] == [[], []]
    write(restored, range(4, 8))
    snapshot(restored, 2)
    restored.notify_checkpoint_complete(2)
    assert sorted(os.listdir(os.path.join(out, "d0"))) == ["part-00000-000000",
                                                           "part-00000-000002"]
    assert read_parts(os.path.join(out, "d1")) == {0: b"1\n3\n5\n7\n"}
    assert lines(out, destinations=True) == list(range(8))
    # A fresh writer (no state) numbers after the parts published in any destination.
    fresh, _ = make_writer(sink)
    write(fresh, [9])
    assert fresh.snapshot_state(3)["pending"][3][0].final.endswith("/d1/part-00000-000004")
