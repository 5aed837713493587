"""Checkpoint storage over a local directory and over S3 (a moto server on loopback):
incremental uploads, the atomic commit, retention and garbage collection, restore."""
from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path

import pytest

from headrace.runners.state.checkpoint_storage import (
    SAVEPOINT,
    CheckpointAlreadyExistsError,
    CheckpointMetadata,
    CheckpointNotFoundError,
    CheckpointStorageError,
    CorruptCheckpointError,
    open_checkpoint_storage,
)

from .checkpoint_storage_support import (
    delete_object,
    new_bucket,
    put_object,
    stored_objects,
    write_files,
)

pytestmark = pytest.mark.no_pipeline


def snapshot(tmp_path: Path, n: int, shared: dict, private: dict) -> tuple:
    """A RocksDB-like local snapshot: immutable SSTs (shared) and small mutable files."""
    return (write_files(tmp_path / f"snap-{n}" / "shared", shared),
            write_files(tmp_path / f"snap-{n}" / "private", private))


def checkpoint(storage, tmp_path, n, shared, private=None, previous=None, op="counts",
               subtask=0, commit=True, cleanup=True, position=None):
    shared_paths, private_paths = snapshot(tmp_path, n, shared, private or {})
    handle = storage.upload_task_state(n, op, subtask, shared_files=shared_paths,
                                       private_files=private_paths, previous=previous,
                                       position=position).result(timeout=60)
    meta = CheckpointMetadata(n, [handle], job_id="job-1")
    if commit:
        storage.commit(meta, cleanup=cleanup)
    return handle, meta


def shared_keys(url):
    return sorted(k for k in stored_objects(url) if k.startswith("shared/"))


def test_incremental_reuse_uploads_each_immutable_file_once(open_storage, storage_url,
                                                            tmp_path):
    storage = open_storage()
    a, b, c = b"a" * 3000, b"b" * 2000, b"c" * 500
    h1, m1 = checkpoint(storage, tmp_path, 1, {"000001.sst": a, "000002.sst": b},
                        {"MANIFEST": b"m1", "CURRENT": b"MANIFEST\n"})
    assert m1.total_size == m1.incremental_size == 5000 + 2 + 9
    h2, m2 = checkpoint(storage, tmp_path, 2, {"000001.sst": a, "000003.sst": c},
                        {"MANIFEST": b"m22", "CURRENT": b"MANIFEST\n"}, previous=h1)
    assert h2.files["000001.sst"] == h1.files["000001.sst"]  # referenced, not uploaded
    assert h2.files["000001.sst"].checkpoint_id == 1
    assert m2.total_size == 3000 + 500 + 3 + 9
    assert m2.incremental_size == 500 + 3 + 9
    # Storage holds each SST once, whatever references it.
    assert len(shared_keys(storage_url)) == 3
    assert storage.read_metadata(2) == m2
    restored = storage.download_task_state(storage.read_metadata(2).task("counts", 0),
                                           tmp_path / "restore")
    assert {name: p.read_bytes() for name, p in restored.items()} == {
        "000001.sst": a, "000003.sst": c, "MANIFEST": b"m22", "CURRENT": b"MANIFEST\n"}


def test_a_changed_size_is_uploaded_again_and_self_contained_reuses_nothing(
        open_storage, tmp_path):
    storage = open_storage()
    h1, _ = checkpoint(storage, tmp_path, 1, {"x.sst": b"1" * 10})
    h2, m2 = checkpoint(storage, tmp_path, 2, {"x.sst": b"1" * 11}, previous=h1)
    assert h2.files["x.sst"].checkpoint_id == 2 and m2.incremental_size == 11
    h3 = storage.upload_task_state(3, "counts", 0, shared_files=snapshot(
        tmp_path, 3, {"x.sst": b"1" * 11}, {})[0], previous=h2,
        self_contained=True).result(timeout=60)
    assert h3.files["x.sst"].key.startswith("chk-3/") and h3.files["x.sst"].checkpoint_id == 3


def test_small_private_files_are_packed_into_one_object(open_storage, storage_url, tmp_path):
    storage = open_storage()
    private = {f"blob-{i}": bytes([i]) * (i + 1) for i in range(20)}
    private["big"] = b"z" * (storage.pack_threshold + 1)
    handle, meta = checkpoint(storage, tmp_path, 1, {}, private)
    task_objects = [k for k in stored_objects(storage_url) if k.startswith("chk-1/")
                    and not k.endswith("_metadata")]
    assert len(task_objects) == 2  # one pack, one large file
    assert storage.read_task_file(meta.task("counts", 0), "blob-7") == bytes([7]) * 8
    assert storage.read_task_file(meta.task("counts", 0), "big") == private["big"]
    with pytest.raises(CheckpointNotFoundError, match="no file 'nope'"):
        storage.read_task_file(handle, "nope")


def test_bytes_private_files_and_opaque_positions(open_storage, tmp_path):
    storage = open_storage()
    handle = storage.upload_task_state(
        1, "source", 1, private_files={"state": b"\x00\x01"},
        position={"split-0": b"\xff\x00", "offsets": [1, 2]},
        info={"backend": "memory"}).result(timeout=60)
    storage.commit(CheckpointMetadata(1, [handle], job_id="j", properties={"parallelism": 2}))
    task = storage.latest().task("source", 1)
    assert task.position == {"split-0": b"\xff\x00", "offsets": [1, 2]}
    assert task.info == {"backend": "memory"}
    assert storage.latest().properties == {"parallelism": 2}
    assert storage.read_task_file(task, "state") == b"\x00\x01"


def test_upload_errors_reach_the_future(open_storage, tmp_path):
    storage = open_storage()
    future = storage.upload_task_state(1, "op", 0, shared_files={"a": tmp_path / "missing"})
    with pytest.raises(FileNotFoundError):
        future.result(timeout=60)
    with pytest.raises(ValueError, match="relative path"):
        storage.upload_task_state(1, "op", 0, private_files={"../x": b""}).result(timeout=60)


def test_commit_is_atomic_and_happens_once(open_storage, tmp_path):
    storage = open_storage()
    _, meta = checkpoint(storage, tmp_path, 1, {"a.sst": b"a"})
    with pytest.raises(CheckpointAlreadyExistsError, match="checkpoint 1"):
        storage.commit(meta)
    # Two coordinators (separate storage objects) racing to commit checkpoint 2.
    others = [open_storage() for _ in range(4)]
    results = []

    def commit(s, i):
        try:
            s.commit(CheckpointMetadata(2, job_id=f"writer-{i}"), cleanup=False)
            results.append(i)
        except CheckpointAlreadyExistsError:
            pass

    threads = [threading.Thread(target=commit, args=(s, i)) for i, s in enumerate(others)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 1
    assert storage.read_metadata(2).job_id == f"writer-{results[0]}"


def test_a_checkpoint_without_metadata_is_not_complete(open_storage, storage_url, tmp_path):
    storage = open_storage()
    h1, m1 = checkpoint(storage, tmp_path, 1, {"a.sst": b"a" * 10})
    h2, _ = checkpoint(storage, tmp_path, 2, {"a.sst": b"a" * 10, "b.sst": b"b"},
                       {"MANIFEST": b"m"}, previous=h1, commit=False)
    assert storage.checkpoint_ids() == [1]
    assert storage.latest() == m1
    assert storage.next_checkpoint_id() == 3
    with pytest.raises(CheckpointNotFoundError):
        storage.read_metadata(2)
    storage.discard(2)
    assert sorted(stored_objects(storage_url)) == sorted(
        ["chk-1/_metadata", *{ref.key for ref in h1.files.values()}])


def test_commits_refuse_older_ids_and_vanished_files(open_storage, tmp_path):
    storage = open_storage(retained=1)
    h1, _ = checkpoint(storage, tmp_path, 1, {"a.sst": b"a"})
    h2, _ = checkpoint(storage, tmp_path, 2, {"b.sst": b"b"})
    # Retention deleted checkpoint 1 and its file: a task still holding h1 cannot reuse it.
    stale, _ = checkpoint(storage, tmp_path, 3, {"a.sst": b"a"}, previous=h1, commit=False)
    with pytest.raises(CheckpointStorageError, match="no longer exists"):
        storage.commit(CheckpointMetadata(3, [stale]))
    with pytest.raises(CheckpointStorageError, match="older than complete checkpoint 2"):
        storage.commit(CheckpointMetadata(1))


@pytest.mark.parametrize("retained", [1, 2])
def test_retention_keeps_the_newest_and_deletes_unreferenced_files(open_storage, storage_url,
                                                                   tmp_path, retained):
    storage = open_storage(retained=retained)
    previous = None
    # Checkpoint n holds SSTs n-1 and n (a sliding window of files).
    for n in range(1, 6):
        files = {f"{i:06d}.sst": bytes([i]) * (100 + i) for i in (n - 1, n) if i > 0}
        previous, _ = checkpoint(storage, tmp_path, n, files, {"CURRENT": b"%d" % n},
                                 previous=previous)
        kept = list(range(max(1, n - retained + 1), n + 1))
        assert storage.checkpoint_ids() == kept
        referenced = set()
        for meta in storage.list_checkpoints():
            referenced |= meta.keys()
        on_storage = {k for k in stored_objects(storage_url) if not k.endswith("_metadata")}
        assert on_storage == referenced
    for meta in storage.list_checkpoints():
        storage.download_task_state(meta.task("counts", 0), tmp_path / f"r{meta.checkpoint_id}")


def test_files_of_an_expired_checkpoint_that_a_kept_one_references_stay(
        open_storage, storage_url, tmp_path):
    storage = open_storage(retained=1)
    unchanged, _ = checkpoint(storage, tmp_path, 1, {"a.sst": b"a"}, {"CURRENT": b"1"},
                              op="idle")
    changing = storage.upload_task_state(2, "busy", 0, private_files={"v": b"2"}).result(60)
    # An idle task acknowledges its handle from checkpoint 1 again.
    storage.commit(CheckpointMetadata(2, [unchanged, changing]))
    assert storage.checkpoint_ids() == [2]
    assert not any(k == "chk-1/_metadata" for k in stored_objects(storage_url))
    restored = storage.download_task_state(storage.latest().task("idle", 0), tmp_path / "r")
    assert restored["CURRENT"].read_bytes() == b"1"


def test_a_crash_between_commit_and_cleanup_is_cleaned_by_the_next_pass(
        open_storage, storage_url, tmp_path):
    storage = open_storage(retained=2)
    previous = None
    for n in range(1, 5):
        previous, _ = checkpoint(storage, tmp_path, n, {f"{n}.sst": b"x" * n}, previous=previous,
                                 cleanup=False)  # the coordinator died before cleaning up
    assert storage.checkpoint_ids() == [1, 2, 3, 4]
    # A checkpoint in flight when the new coordinator cleans up must keep its files.
    in_flight, _ = checkpoint(storage, tmp_path, 5, {"5.sst": b"y"}, previous=previous,
                              commit=False)
    report = open_storage(retained=2).cleanup()
    assert report.expired == [1, 2]
    assert storage.checkpoint_ids() == [3, 4]
    keys = set(stored_objects(storage_url))
    assert not any(k.startswith(("chk-1/", "chk-2/", "shared/1-", "shared/2-")) for k in keys)
    assert {ref.key for ref in in_flight.files.values()} <= keys
    storage.commit(CheckpointMetadata(5, [in_flight]))
    assert storage.checkpoint_ids() == [4, 5]


def test_a_crash_in_the_middle_of_cleanup_is_finished_by_the_next_pass(
        open_storage, storage_url, tmp_path):
    storage = open_storage(retained=1)
    h1, m1 = checkpoint(storage, tmp_path, 1, {"1.sst": b"1"}, {"M": b"m"}, cleanup=False)
    h2, m2 = checkpoint(storage, tmp_path, 2, {"2.sst": b"2"}, cleanup=False)
    # The pass deleted checkpoint 1's metadata, then died: its files are orphans now.
    delete_object(storage_url, "chk-1/_metadata")
    assert storage.checkpoint_ids() == [2]
    # An orphan pack and an orphan upload of an aborted checkpoint, both older than 2.
    put_object(storage_url, "shared/1-deadbeef0000-9.sst", b"orphan")
    storage.cleanup()
    assert sorted(stored_objects(storage_url)) == sorted(["chk-2/_metadata",
                                                          *m2.keys()])


def test_unreadable_metadata_stops_shared_garbage_collection(open_storage, storage_url,
                                                              tmp_path):
    storage = open_storage(retained=1)
    checkpoint(storage, tmp_path, 1, {"1.sst": b"1"})
    put_object(storage_url, "chk-2/_metadata", b"{not json")
    h3, m3 = checkpoint(storage, tmp_path, 3, {"3.sst": b"3"})
    report = storage.cleanup()
    assert report.unreadable == [2]
    assert any(k.startswith("shared/1-") for k in stored_objects(storage_url))
    with pytest.raises(CorruptCheckpointError, match="chk-2/_metadata"):
        storage.read_metadata(2)


def test_corrupt_or_missing_files_are_detected_on_restore(open_storage, storage_url,
                                                          tmp_path):
    storage = open_storage()
    handle, meta = checkpoint(storage, tmp_path, 1, {"a.sst": b"a" * 100, "b.sst": b"b" * 10},
                              {"CURRENT": b"c"})
    put_object(storage_url, handle.files["a.sst"].key, b"A" * 100)
    with pytest.raises(CorruptCheckpointError, match="corrupt.*checksum mismatch"):
        storage.download_task_state(handle, tmp_path / "r1")
    put_object(storage_url, handle.files["CURRENT"].key, b"x")
    with pytest.raises(CorruptCheckpointError, match="corrupt"):
        storage.read_task_file(handle, "CURRENT")
    delete_object(storage_url, handle.files["b.sst"].key)
    with pytest.raises(CorruptCheckpointError, match="missing"):
        storage.read_task_file(handle, "b.sst")


def test_savepoints_are_self_contained_and_never_collected(open_storage, storage_url,
                                                           tmp_path):
    storage = open_storage(retained=1)
    h1, _ = checkpoint(storage, tmp_path, 1, {"a.sst": b"a" * 50}, {"CURRENT": b"1"})
    h2, m2 = checkpoint(storage, tmp_path, 2, {"a.sst": b"a" * 50, "b.sst": b"b"},
                        {"CURRENT": b"2"}, previous=h1)
    target = open_checkpoint_storage(tmp_path / "savepoints")
    saved = storage.export_self_contained(2, target)
    assert saved.kind == SAVEPOINT and saved.incremental_size == saved.total_size == m2.total_size
    assert all(key.startswith("chk-2/") for key in saved.keys())
    # The source may now lose everything; the savepoint restores on its own.
    for n in (3, 4):
        checkpoint(storage, tmp_path, n, {"c.sst": b"c"})
    restored = target.download_task_state(target.read_metadata(2).task("counts", 0),
                                          tmp_path / "restore")
    assert restored["a.sst"].read_bytes() == b"a" * 50
    assert restored["CURRENT"].read_bytes() == b"2"
    # A savepoint in the checkpoint directory neither counts nor expires.
    savepoint_handle = storage.upload_task_state(
        10, "counts", 0, shared_files={"s.sst": tmp_path / "snap-2/shared/b.sst"},
        self_contained=True).result(timeout=60)
    storage.commit(CheckpointMetadata(10, [savepoint_handle], kind=SAVEPOINT))
    checkpoint(storage, tmp_path, 11, {"d.sst": b"d"})
    assert storage.checkpoint_ids() == [10, 11]
    with pytest.raises(CheckpointStorageError, match="self-contained"):
        storage.commit(CheckpointMetadata(12, [h2.__class__(
            "counts", 0, files={"x": h2.files["a.sst"]})], kind=SAVEPOINT))
    target.close()


def test_delete_checkpoint_removes_only_what_it_alone_referenced(open_storage, storage_url,
                                                                 tmp_path):
    storage = open_storage()
    h1, _ = checkpoint(storage, tmp_path, 1, {"a.sst": b"a", "b.sst": b"b"})
    h2, m2 = checkpoint(storage, tmp_path, 2, {"a.sst": b"a"}, previous=h1)
    storage.delete_checkpoint(1)
    assert storage.checkpoint_ids() == [2]
    assert set(stored_objects(storage_url)) == {"chk-2/_metadata", *m2.keys()}
    with pytest.raises(CheckpointNotFoundError):
        storage.delete_checkpoint(1)


def test_storage_travels_to_other_processes(open_storage, tmp_path):
    storage = open_storage()
    storage.upload_task_state(1, "op", 0, private_files={"a": b"a"}).result(timeout=60)
    copy = pickle.loads(pickle.dumps(storage))
    handle = copy.upload_task_state(1, "op", 1, private_files={"b": b"b"}).result(timeout=60)
    copy.close()
    assert storage.read_task_file(handle, "b") == b"b"


def test_multipart_upload_of_large_files(s3_env, tmp_path):
    url = f"s3://{new_bucket()}/big"
    with open_checkpoint_storage(url, multipart_threshold=5 << 20) as storage:
        data = os.urandom(11 << 20)
        path = tmp_path / "000009.sst"
        path.write_bytes(data)
        handle = storage.upload_task_state(1, "op", 0, shared_files={"000009.sst": path}
                                           ).result(timeout=120)
        storage.commit(CheckpointMetadata(1, [handle]))
        head = storage.client.head_object(Bucket=storage.bucket,
                                          Key=storage.prefix + handle.files["000009.sst"].key)
        assert head["ETag"].strip('"').endswith("-3")  # three 5 MiB parts
        restored = storage.download_task_state(handle, tmp_path / "restore")
        assert restored["000009.sst"].read_bytes() == data


def test_throttling_and_server_errors_are_retried(s3_env, monkeypatch, tmp_path):
    from .checkpoint_storage_support import FlakyS3Proxy

    url = f"s3://{new_bucket()}/flaky"
    proxy = FlakyS3Proxy(s3_env, every=5, fail_after_suffix="/_metadata")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    try:
        with open_checkpoint_storage(url, retained=1, multipart_threshold=5 << 20) as storage:
            big = tmp_path / "big.sst"
            big.write_bytes(os.urandom(6 << 20))  # two parts, each may be refused
            previous, _ = checkpoint(storage, tmp_path, 1, {"1.sst": b"1"}, {"CURRENT": b"1"})
            handle = storage.upload_task_state(3, "counts", 0, shared_files={"big.sst": big},
                                               previous=previous).result(timeout=120)
            # The commit's conditional put lands, but its answer is lost (500): the retry
            # is refused with 412, and the commit token shows the write was ours.
            storage.commit(CheckpointMetadata(3, [handle]))
            assert storage.checkpoint_ids() == [3]
            restored = storage.download_task_state(storage.latest().task("counts", 0),
                                                   tmp_path / "restore")
            assert restored["big.sst"].read_bytes() == big.read_bytes()
    finally:
        proxy.close()
    assert proxy.injected >= 3
    assert len(proxy.failed_after) == 2  # one lost answer per commit
