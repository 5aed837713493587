"""Restore planning (runners/engine/recovery.py) over real backends and real checkpoint
storage (a directory, and S3 on the moto server): rescaling keyed state, operator
snapshots and source positions, falling back past corrupt checkpoints, and refusing
state the job cannot place."""
import logging
import pickle

import pytest

from headrace.runners.engine.recovery import (
    RestoreError,
    RestorePlan,
    load_checkpoint,
    open_restore_source,
)
from headrace.runners.state.base.key_groups import key_group_range
from headrace.runners.state.checkpoint_storage import (
    CheckpointMetadata,
    CheckpointNotFoundError,
    open_checkpoint_storage,
)

from .checkpoint_storage_support import delete_object, put_object, stored_objects
from .helpers import BACKENDS, contents, new_backend, owned_keys, restore

pytestmark = pytest.mark.no_pipeline

KEYS = [f"key-{i}".encode() for i in range(300)]


def _take_checkpoint(storage, n, kind, tmp_path, parallelism, value_of):
    """Every subtask of a keyed operator "Count" at ``parallelism`` snapshots its backend and
    its operator state; a source "Read" stores positions per split; N is committed."""
    handles = []
    for subtask in range(parallelism):
        groups = key_group_range(subtask, parallelism)
        backend = new_backend(kind, str(tmp_path / f"db-{n}-{subtask}"), groups)
        for key in owned_keys(parallelism, subtask, KEYS):
            backend.put_value("count", key, None, value_of(key))
        directory = tmp_path / f"snap-{n}-{subtask}"
        snapshot = backend.snapshot()
        files = snapshot.materialize(str(directory))
        shared = {f.name: directory / f.name for f in files if f.shared}
        private = {f.name: directory / f.name for f in files if not f.shared}
        private["manifest.json"] = directory / "manifest.json"
        private["operator"] = pickle.dumps({"subtask": subtask, "checkpoint": n})
        handles.append(storage.upload_task_state(
            n, "Count", subtask, shared_files=shared, private_files=private,
            info={"key_groups": [groups.start, groups.stop]}).result())
        handles.append(storage.upload_task_state(
            n, "Read", subtask, position={f"#{i}": 100 * n + i
                                          for i in range(subtask, 5, parallelism)}).result())
        snapshot.release()
        backend.close()
    storage.commit(CheckpointMetadata(n, handles, job_id="job",
                                      properties={"parallelism": parallelism,
                                                  "max_parallelism": 128}))


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("new_parallelism", [1, 2, 3])
def test_rescaled_restore_gives_every_key_group_to_exactly_one_subtask(
        tmp_path, kind, new_parallelism):
    # Local storage only: the storages' equivalence is tested in test_checkpoint_storage.
    storage = open_checkpoint_storage(str(tmp_path / "checkpoints"))
    _take_checkpoint(storage, 1, kind, tmp_path, 2, lambda key: len(key))
    loaded = load_checkpoint(storage, target=str(tmp_path))
    try:
        plan = RestorePlan(loaded.metadata, {"Count": True, "Read": False}, new_parallelism)
        restored = []
        for subtask in range(new_parallelism):
            groups = key_group_range(subtask, new_parallelism)
            dirs = [str(loaded.task_dir(h)) for h in plan.keyed_handles("Count", subtask)]
            backend = restore(kind, dirs, groups, str(tmp_path / f"new-{subtask}"))
            restored += contents(backend.snapshot())
            backend.close()
        full = new_backend(kind, str(tmp_path / "full"))
        for key in KEYS:
            full.put_value("count", key, None, len(key))
        assert sorted(restored) == contents(full.snapshot())
        full.close()
    finally:
        loaded.cleanup()
        storage.close()


def test_operator_snapshots_follow_i_mod_p_and_keyed_ones_follow_key_groups():
    from headrace.runners.state.checkpoint_storage import TaskStateHandle

    meta = CheckpointMetadata(3, [TaskStateHandle(op, i, position=0 if op == "Read" else None)
                                  for op in ("Map", "Count", "Read") for i in range(4)],
                              properties={"parallelism": 4, "max_parallelism": 128})
    plan = RestorePlan(meta, {"Map": False, "Count": True, "Read": False}, 3)
    assert [[h.subtask_index for h in plan.operator_handles("Map", j)] for j in range(3)] \
        == [[0, 3], [1], [2]]
    # New subtask 1 owns groups 43..85: old subtasks 1 (32..63) and 2 (64..95).
    assert [h.subtask_index for h in plan.operator_handles("Count", 1)] == [1, 2]
    up = RestorePlan(meta, {"Map": False, "Count": True, "Read": False}, 6)
    assert [[h.subtask_index for h in up.operator_handles("Map", j)] for j in range(6)] \
        == [[0], [1], [2], [3], [], []]


def test_state_of_a_missing_operator_is_an_error_unless_allowed(caplog):
    from headrace.runners.state.checkpoint_storage import TaskStateHandle

    meta = CheckpointMetadata(5, [TaskStateHandle("Old step", 0, position={"#0": 1}),
                                  TaskStateHandle("Stateless", 0)])
    with pytest.raises(RestoreError, match=r"operator\(s\) 'Old step'.*--allow_non_restored_state"):
        RestorePlan(meta, {"New step": False}, 1)
    with caplog.at_level(logging.WARNING, logger="headrace.recovery"):
        RestorePlan(meta, {"New step": False}, 1, allow_non_restored_state=True)
    assert "skipping the state of operator(s) 'Old step'" in caplog.text


def test_changed_max_parallelism_is_refused():
    meta = CheckpointMetadata(2, [], properties={"parallelism": 2, "max_parallelism": 128})
    with pytest.raises(RestoreError, match="--max_parallelism=128 but the job has "
                                           "--max_parallelism=256"):
        RestorePlan(meta, {}, 2, max_parallelism=256)


@pytest.mark.parametrize("storage_url, damage", [("local", "corrupt"), ("local", "missing"),
                                                 ("s3", "corrupt")], indirect=["storage_url"])
def test_a_bad_file_falls_back_to_the_previous_checkpoint_naming_the_file(
        open_storage, storage_url, tmp_path, caplog, damage):
    storage = open_storage()
    _take_checkpoint(storage, 1, "memory", tmp_path, 2, lambda key: 1)
    _take_checkpoint(storage, 2, "memory", tmp_path, 2, lambda key: 2)
    victim = next(k for k in stored_objects(storage_url)
                  if k.startswith("chk-2/") and not k.endswith("_metadata"))
    if damage == "corrupt":
        put_object(storage_url, victim, b"not what was stored")
    else:
        delete_object(storage_url, victim)
    with caplog.at_level(logging.ERROR, logger="headrace.recovery"):
        loaded = load_checkpoint(open_storage(), target=str(tmp_path))
    try:
        assert loaded.metadata.checkpoint_id == 1
        assert "checkpoint 2 cannot be restored" in caplog.text
        assert victim in caplog.text and "falling back to checkpoint 1" in caplog.text
        handle = loaded.metadata.task("Count", 1)
        assert pickle.loads((loaded.task_dir(handle) / "operator").read_bytes()) == \
            {"subtask": 1, "checkpoint": 1}
    finally:
        loaded.cleanup()
    with pytest.raises(Exception, match=victim.replace("/", ".")):
        load_checkpoint(open_storage(), 2, target=str(tmp_path))


def test_open_restore_source_reads_chk_dirs_and_roots(tmp_path):
    storage_url = str(tmp_path / "checkpoints")
    storage = open_checkpoint_storage(storage_url)
    _take_checkpoint(storage, 1, "memory", tmp_path, 1, lambda key: 1)
    _take_checkpoint(storage, 2, "memory", tmp_path, 1, lambda key: 2)
    for path, expected in [(storage_url, 2), (storage_url + "/chk-1", 1),
                           (storage_url + "/chk-1/", 1)]:
        opened, n = open_restore_source(path)
        with opened:
            loaded = load_checkpoint(opened, n, target=str(tmp_path))
            assert loaded.metadata.checkpoint_id == expected
            loaded.cleanup()
    opened, n = open_restore_source(storage_url + "/chk-9")
    with opened, pytest.raises(CheckpointNotFoundError, match="no complete checkpoint 9"):
        load_checkpoint(opened, n)
    storage.close()


def test_savepoint_cli_copies_the_latest_checkpoint_self_contained(tmp_path, capsys):
    from headrace.cli import main

    root = str(tmp_path / "checkpoints")
    storage = open_checkpoint_storage(root, retained=1)
    _take_checkpoint(storage, 1, "rocksdb", tmp_path, 2, lambda key: 1)
    _take_checkpoint(storage, 2, "rocksdb", tmp_path, 2, lambda key: 2)
    assert main(["savepoint", root, str(tmp_path / "savepoints")]) == 0
    location = capsys.readouterr().out.strip()
    assert location == f"{tmp_path / 'savepoints'}/chk-2"
    _take_checkpoint(storage, 3, "rocksdb", tmp_path, 2, lambda key: 3)  # retention drops 2
    storage.close()
    assert not (tmp_path / "checkpoints" / "chk-2").exists()
    opened, n = open_restore_source(location)
    with opened:
        loaded = load_checkpoint(opened, n, target=str(tmp_path))
    try:
        assert loaded.metadata.kind == "savepoint" and loaded.metadata.checkpoint_id == 2
        plan = RestorePlan(loaded.metadata, {"Count": True, "Read": False}, 1)
        dirs = [str(loaded.task_dir(h)) for h in plan.keyed_handles("Count", 0)]
        backend = restore("rocksdb", dirs, range(128), str(tmp_path / "r"))
        assert backend.get_value("count", KEYS[0], None) == 2
        backend.close()
    finally:
        loaded.cleanup()
    assert main(["savepoint", root, str(tmp_path / "savepoints"), "--id", "9"]) == 1
    assert "no complete checkpoint 9" in capsys.readouterr().err


def test_a_restart_restores_only_checkpoints_of_its_own_run(tmp_path, caplog):
    import headrace as beam
    from headrace.runners.engine.plan import PhysicalPlan
    from headrace.runners.engine.recovery import JobRecovery
    from headrace.sdk.options import PipelineOptions

    root = str(tmp_path / "checkpoints")
    storage = open_checkpoint_storage(root)
    _take_checkpoint(storage, 1, "memory", tmp_path, 2, lambda key: 1)  # an earlier run's
    p = beam.Pipeline()
    _ = p | "Numbers" >> beam.Create([1, 2]) | "Count" >> beam.combiners.Count.PerElement()
    plan = PhysicalPlan.build(p, 2)
    recovery = JobRecovery(plan, PipelineOptions([f"--checkpoint_dir={root}",
                                                  "--checkpoint_interval=1"]))
    assert recovery.prepare(0) is None
    assert recovery.prepare(1) is None  # checkpoint 1 predates this run: a fresh start
    storage.commit(CheckpointMetadata(2, [], properties={"parallelism": 2}))
    with caplog.at_level(logging.INFO, logger="headrace.recovery"):
        restored, previous = recovery.prepare(2)
    assert "restoring checkpoint 2 from" in caplog.text
    assert sorted(restored) == [0, 1] and previous == {}
    recovery.cleanup()
    storage.close()


@pytest.mark.parametrize("where, parallelism, continues", [
    ("checkpoint_dir", 2, True), ("checkpoint_dir", 3, False), ("elsewhere", 2, False)])
def test_from_checkpoint_in_the_job_s_own_storage_keeps_its_handles_as_previous(
        tmp_path, where, parallelism, continues):
    """Restored from a checkpoint of its own ``--checkpoint_dir`` at the same parallelism,
    a job's tasks get its handles as previous ones (their next uploads reference its shared
    files); rescaled, or from another directory, they upload everything again."""
    import headrace as beam
    from headrace.io.generator import GenerateEvents, GeneratorSource
    from headrace.runners.engine.plan import PhysicalPlan
    from headrace.runners.engine.recovery import JobRecovery
    from headrace.sdk.options import PipelineOptions

    root = tmp_path / "checkpoints"
    with open_checkpoint_storage(str(root / "old")) as storage:
        _take_checkpoint(storage, 1, "rocksdb", tmp_path, 2, lambda key: 1)
        _take_checkpoint(storage, 2, "rocksdb", tmp_path, 2, lambda key: 2)
        old = storage.read_metadata(1)
    p = beam.Pipeline()
    source = GeneratorSource(GenerateEvents(num_events=10, num_keys=2).config, True)
    _ = p | "Read" >> beam.io.Read(source) | "Count" >> beam.GroupByKey()
    plan = PhysicalPlan.build(p, parallelism)  # operator ids "Read" and "Count" (keyed)
    checkpoint_dir = root / "old" if where == "checkpoint_dir" else root / "new"
    recovery = JobRecovery(plan, PipelineOptions([
        f"--checkpoint_dir={checkpoint_dir}", "--checkpoint_interval=1",
        f"--from_checkpoint={root / 'old' / 'chk-1'}"]))
    restored, previous = recovery.prepare(0)
    try:
        assert sorted(restored) == list(range(parallelism))
        if continues:
            assert previous == {i: {"Count": old.task("Count", i), "Read": old.task("Read", i)}
                                for i in range(2)}
        else:
            assert previous == {}
    finally:
        recovery.cleanup()
