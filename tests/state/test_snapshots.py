"""Snapshots of both backends: isolation, key-group subsets, rescaling, the portable format."""
from __future__ import annotations

import json
import os
import threading

import pytest

from headrace.runners.state.base import EVENT_TIME, PROCESSING_TIME, Timer, TimerService
from headrace.runners.state.base.key_groups import key_group_for, key_group_range
from headrace.runners.state.base.savepoint import SavepointReader, write_savepoint
from headrace.runners.state.base.snapshot import open_snapshot
from headrace.sdk.window import GLOBAL_WINDOW, IntervalWindow

from .helpers import BACKENDS, contents, new_backend, owned_keys, restore

pytestmark = pytest.mark.no_pipeline

KEYS = [b"key-%d" % i for i in range(500)]
W = IntervalWindow(0, 10)


def fill(state, keys):
    """Every kind of state for each key, with values derived from the key."""
    for key in keys:
        state.put_value("count", key, GLOBAL_WINDOW, len(key))
        state.put_value("pane", key, W, [key, 0, False])
        state.add_to_bag("bag", key, W, key + b"/1")
        state.add_to_bag("bag", key, W, key + b"/2")
        state.map_put("map", key, None, key, {"of": key})


def check(state, keys):
    """``state`` holds exactly the state ``fill(keys)`` writes."""
    assert sorted(state.keys()) == sorted(keys)
    for key in keys:
        assert state.get_value("count", key, GLOBAL_WINDOW) == len(key)
        assert state.get_value("pane", key, W) == [key, 0, False]
        assert state.read_bag("bag", key, W) == [key + b"/1", key + b"/2"]
        assert state.map_items("map", key, None) == [(key, {"of": key})]


@pytest.fixture
def backends(tmp_path):
    made = []

    def make(kind, *args):
        state = new_backend(kind, str(tmp_path / "local"), *args)
        made.append(state)
        return state
    yield make
    for state in made:
        state.close()


@pytest.mark.parametrize("kind", BACKENDS)
def test_writes_after_a_snapshot_are_not_in_it(kind, backends, tmp_path):
    state = backends(kind)
    fill(state, KEYS[:50])
    snapshot = state.snapshot()
    before = contents(snapshot)
    # Change everything, including in place, as operators do with a pane they read.
    for key in KEYS[:50]:
        pane = state.get_value("pane", key, W)
        pane[2] = True
        state.put_value("pane", key, W, pane)
        state.add_to_bag("bag", key, W, b"later")
        state.map_put("map", key, None, b"later", 1)
        state.clear("count", key, GLOBAL_WINDOW)
    fill(state, KEYS[50:60])
    assert contents(snapshot) == before
    snapshot.materialize(str(tmp_path / "snap"))
    restored = restore(kind, [str(tmp_path / "snap")], range(128), str(tmp_path / "local"))
    check(restored, KEYS[:50])
    restored.close()
    snapshot.release()
    assert state.get_value("pane", KEYS[0], W) == [KEYS[0], 0, True]


def test_a_memory_snapshot_copies_only_the_keys_touched_after_it(backends):
    state = backends("memory")
    fill(state, KEYS)
    groups = dict(state._groups)
    keys = {key: data[key] for data in groups.values() for key in data}
    state.snapshot()
    state.put_value("count", KEYS[0], GLOBAL_WINDOW, -1)
    touched = key_group_for(KEYS[0])
    assert state._groups[touched] is not groups[touched]
    assert all(state._groups[g] is groups[g] for g in groups if g != touched)
    live = {key: data[key] for data in state._groups.values() for key in data}
    assert [key for key in KEYS if live[key] is not keys[key]] == [KEYS[0]]


@pytest.mark.parametrize("source", BACKENDS)
@pytest.mark.parametrize("target", BACKENDS)
def test_restore_takes_only_the_key_groups_asked_for(source, target, backends, tmp_path):
    state = backends(source)
    fill(state, KEYS)
    snapshot = state.snapshot()
    groups = range(10, 70)
    restored = restore(target, [snapshot], groups, str(tmp_path / "local"))
    wanted = [k for k in KEYS if key_group_for(k) in groups]
    assert 0 < len(wanted) < len(KEYS)
    check(restored, wanted)
    assert restored.key_groups == groups
    restored.close()
    snapshot.release()


@pytest.mark.parametrize("old,new", [(2, 3), (3, 1)])
@pytest.mark.parametrize("source", BACKENDS)
@pytest.mark.parametrize("target", BACKENDS)
def test_rescaling_keeps_every_key_exactly_once(old, new, source, target, backends, tmp_path):
    directories = []
    for subtask in range(old):
        state = backends(source, key_group_range(subtask, old))
        fill(state, owned_keys(old, subtask, KEYS))
        directory = str(tmp_path / f"old-{subtask}")
        with state.snapshot() as snapshot:
            snapshot.materialize(directory)
        directories.append(directory)
    seen = []
    for subtask in range(new):
        restored = restore(target, directories, key_group_range(subtask, new),
                           str(tmp_path / "local"))
        mine = owned_keys(new, subtask, KEYS)
        check(restored, mine)
        seen.extend(restored.keys())
        # New appends go after the restored elements.
        restored.add_to_bag("bag", mine[0], W, b"new")
        assert restored.read_bag("bag", mine[0], W)[-1] == b"new"
        restored.close()
    assert sorted(seen) == sorted(KEYS)


def test_portable_round_trip_memory_rocksdb_memory(backends, tmp_path):
    memory = backends("memory")
    fill(memory, KEYS)
    memory.add_to_bag("bag", KEYS[0], W, "third")
    first = contents(memory.snapshot())
    write_savepoint(str(tmp_path / "sp1"), memory.snapshot())
    rocksdb = restore("rocksdb", [str(tmp_path / "sp1")], range(128), str(tmp_path / "local"))
    with rocksdb.snapshot() as snapshot:
        assert contents(snapshot) == first
        manifest = write_savepoint(str(tmp_path / "sp2"), snapshot)
    assert manifest["source"] == "rocksdb" and manifest["format"] == "savepoint"
    rocksdb.close()
    back = restore("memory", [str(tmp_path / "sp2")], range(128), "")
    assert contents(back.snapshot()) == first
    # One file per non-empty key group, whichever backend wrote it.
    groups = sorted({key_group_for(k) for k in KEYS})
    for directory in ("sp1", "sp2"):
        assert [f["key_group"] for f in SavepointReader(str(tmp_path / directory)).manifest[
            "files"]] == groups


def test_rocksdb_snapshot_files_are_hard_linked_ssts_shared_between_snapshots(backends):
    state = backends("rocksdb")
    fill(state, KEYS)
    first = state.snapshot()
    ssts = [f for f in first.files() if f.name.endswith(".sst")]
    assert ssts and all(f.shared and f.size > 0 for f in ssts)
    assert all(f.shared_key == f"{state.instance_id}/{f.name}" for f in ssts)
    assert all(not f.shared for f in first.files() if not f.name.endswith(".sst"))
    assert os.stat(os.path.join(first.directory, ssts[0].name)).st_nlink >= 2
    state.put_value("count", KEYS[0], GLOBAL_WINDOW, -1)  # a small change
    second = state.snapshot()
    old = {f.shared_key for f in ssts}
    new = {f.shared_key for f in second.files() if f.shared}
    assert old <= new and len(new - old) == 1  # only the changed part is a new file
    for snapshot in (first, second):
        directory = snapshot.directory
        snapshot.release()
        assert not os.path.exists(directory)


def test_materialized_rocksdb_snapshot_lists_its_files(backends, tmp_path):
    state = backends("rocksdb")
    fill(state, KEYS[:10])
    with state.snapshot() as snapshot:
        files = snapshot.materialize(str(tmp_path / "out"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["format"] == "rocksdb" and manifest["key_groups"] == [0, 128]
    assert sorted(os.listdir(tmp_path / "out")) == sorted([f.name for f in files]
                                                          + ["manifest.json"])
    reopened = open_snapshot(str(tmp_path / "out"))
    assert contents(reopened) != [] and reopened.format == "rocksdb"
    reopened.release()


def test_overlapping_or_mismatched_snapshots_are_errors(backends, tmp_path):
    state = backends("memory")
    fill(state, KEYS[:20])
    snapshot = state.snapshot()
    with pytest.raises(ValueError, match="overlap"):
        restore("memory", [snapshot, snapshot], range(128), "")
    with pytest.raises(ValueError, match="--max_parallelism"):
        restore("rocksdb", [snapshot], range(0, 64), str(tmp_path), max_parallelism=64)
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        open_snapshot(str(tmp_path))
    (tmp_path / "manifest.json").write_text('{"format": "tape"}')
    with pytest.raises(ValueError, match="unknown snapshot format 'tape'"):
        open_snapshot(str(tmp_path))


def test_a_damaged_key_group_file_is_reported(backends, tmp_path):
    state = backends("memory")
    fill(state, KEYS[:5])
    manifest = write_savepoint(str(tmp_path), state.snapshot())
    path = tmp_path / manifest["files"][0]["name"]
    path.write_bytes(path.read_bytes()[:-3])
    reader = SavepointReader(str(tmp_path))
    with pytest.raises(ValueError, match="truncated"):
        restore("memory", [reader], range(128), "")


def test_timers_are_snapshotted_and_restored_by_key_group(tmp_path):
    timers = TimerService()
    for i, key in enumerate(KEYS[:100]):
        timers.set(Timer(key, W, "gc", "", EVENT_TIME, 1000 + i, 1000 + i))
        timers.set(Timer(key, None, "flush", "t", PROCESSING_TIME, 5000 + i, 0))
    snapshot = timers.snapshot()
    timers.delete(KEYS[0], W, "gc")  # after the snapshot: still in it
    seen = []
    for subtask in range(3):
        restored = TimerService()
        restored.restore(snapshot, key_group_range(subtask, 3))
        seen.extend(t.key for t in restored.pending())
        assert {t.key for t in restored.pending()} == set(owned_keys(3, subtask, KEYS[:100]))
    assert sorted(seen) == sorted(KEYS[:100] * 2)
    # And through the portable savepoint, with the keyed state.
    state = new_backend("memory", "")
    fill(state, KEYS[:100])
    write_savepoint(str(tmp_path), state.snapshot(), timers=snapshot)
    reader = SavepointReader(str(tmp_path))
    restored = TimerService()
    restored.restore((t for g in range(128) for t in reader.timers(g)), range(128))
    assert sorted(map(repr, restored.pending())) == sorted(map(repr, snapshot))
    assert restored.next_time(EVENT_TIME) == 1000


def test_rocksdb_restore_of_one_snapshot_starts_from_its_files(backends, tmp_path):
    state = backends("rocksdb")
    fill(state, KEYS)
    with state.snapshot() as snapshot:
        snapshot.materialize(str(tmp_path / "snap"))
    sst = next(name for name in os.listdir(tmp_path / "snap") if name.endswith(".sst"))
    groups = range(0, 64)
    restored = restore("rocksdb", [str(tmp_path / "snap")], groups, str(tmp_path / "local"))
    assert os.path.samefile(tmp_path / "snap" / sst, os.path.join(restored.directory, "db", sst))
    check(restored, owned_keys(2, 0, KEYS))
    # Writing and compacting the restored database leaves the snapshot's files as they were.
    for key in owned_keys(2, 0, KEYS):
        restored.put_value("count", key, GLOBAL_WINDOW, -1)
    restored.db.compact_range(None, None)
    restored.close()
    again = restore("rocksdb", [str(tmp_path / "snap")], range(128), str(tmp_path / "local"))
    check(again, KEYS)
    again.close()


@pytest.mark.parametrize("kind", BACKENDS)
def test_materializing_on_another_thread_while_processing_goes_on(kind, backends, tmp_path):
    state = backends(kind)
    fill(state, KEYS)
    snapshot = state.snapshot()
    expected = contents(snapshot)
    done = threading.Event()

    def write_out():
        snapshot.materialize(str(tmp_path / "async"))
        done.set()
    thread = threading.Thread(target=write_out)
    thread.start()
    rounds = 0
    while not done.is_set() or rounds < 3:
        for key in KEYS:
            pane = state.get_value("pane", key, W)
            pane[1] += 1
            state.put_value("pane", key, W, pane)
            state.add_to_bag("bag", key, W, b"more")
        rounds += 1
    thread.join(timeout=60)
    snapshot.release()
    restored = restore(kind, [str(tmp_path / "async")], range(128), str(tmp_path / "local"))
    with restored.snapshot() as again:
        assert contents(again) == expected
    assert state.get_value("pane", KEYS[0], W)[1] == rounds
    restored.close()
