"""Restore planning: what each subtask of a (possibly rescaled) job restores from a checkpoint.

A checkpoint's ``_metadata`` holds one :class:`TaskStateHandle` per operator id
(the step's label) and old subtask. For a new plan at parallelism ``p``:

- keyed state: a subtask owns a key-group range; it gets every old handle whose
  range overlaps it (``Backend.restore`` keeps only its own groups), and a keyed
  operator's own snapshot (timers, tables) from the same handles;
- other operators' snapshots: old subtask ``i`` goes to new subtask ``i % p``
  (a subtask may get several, or none);
- a source's snapshot is its splits and their positions, so ``i % p`` moves every
  split to exactly one new subtask.

:func:`load_checkpoint` downloads a checkpoint (every file checked against its size
and SHA-256) and falls back to the previous complete checkpoint, with a log line
naming the bad file, when one is missing or corrupt.

>>> from headrace.runners.state.checkpoint_storage import CheckpointMetadata, TaskStateHandle
>>> old = CheckpointMetadata(4, [TaskStateHandle("Count", i, info={"keyed": True})
...                              for i in range(2)],
...                          properties={"parallelism": 2, "max_parallelism": 128})
>>> plan = RestorePlan(old, {"Count": True}, parallelism=3)
>>> [[h.subtask_index for h in plan.keyed_handles("Count", j)] for j in range(3)]
[[0], [0, 1], [1]]
>>> RestorePlan(old, {"Count": False}, parallelism=1).operator_handles("Count", 0) == list(
...     old.tasks)
True
"""
from __future__ import annotations

import logging
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from headrace.runners.state.base.key_groups import key_group_range
from headrace.runners.state.checkpoint_storage import (
    CheckpointMetadata,
    CheckpointNotFoundError,
    CheckpointStorage,
    CheckpointStorageConfigError,
    CheckpointStorageError,
    TaskStateHandle,
    open_checkpoint_storage,
)

LOG = logging.getLogger("headrace.recovery")
_CHK_DIR = re.compile(r"^(.*?)[/\\]?chk-(\d+)[/\\]?$")


class RestoreError(ValueError):
    """A checkpoint cannot be restored into this job; the message names what is at fault."""


# ------------------------------------------------------------------------------ planning


def old_key_groups(handle: TaskStateHandle, parallelism: int, max_parallelism: int) -> range:
    """The key groups an old subtask owned: from its handle's info, else Flink's split."""
    stored = handle.info.get("key_groups") if handle.info else None
    if stored:
        return range(int(stored[0]), int(stored[1]))
    return key_group_range(handle.subtask_index, parallelism, max_parallelism)


@dataclass
class RestorePlan:
    """Which old handles each new subtask restores from (see the module docstring).

    ``keyed`` maps the new job's operator ids to whether the operator is keyed (its
    input is a key exchange); ``parallelism`` and ``max_parallelism`` are the new job's.
    """

    metadata: CheckpointMetadata
    keyed: Mapping[str, bool]
    parallelism: int
    max_parallelism: Optional[int] = None
    allow_non_restored_state: bool = False
    log: Any = LOG
    old_parallelism: int = field(init=False)

    def __post_init__(self) -> None:
        props = self.metadata.properties or {}
        subtasks = [t.subtask_index for t in self.metadata.tasks]
        self.old_parallelism = int(props.get("parallelism") or (max(subtasks) + 1 if subtasks
                                                                 else 1))
        old_max = props.get("max_parallelism")
        if self.max_parallelism is None:
            self.max_parallelism = int(old_max or 128)
        elif old_max is not None and int(old_max) != self.max_parallelism:
            raise RestoreError(
                f"checkpoint {self.metadata.checkpoint_id} was taken with --max_parallelism="
                f"{old_max} but the job has --max_parallelism={self.max_parallelism}: key "
                "groups cannot be split or merged, so keep the old value")
        self._check_operators()

    def _check_operators(self) -> None:
        missing = sorted(op for op, handles in self.metadata.operators.items()
                         if op not in self.keyed and any(_has_state(h) for h in handles))
        if not missing:
            return
        names = ", ".join(repr(op) for op in missing)
        if not self.allow_non_restored_state:
            raise RestoreError(
                f"checkpoint {self.metadata.checkpoint_id} has state for operator(s) {names} "
                "that this job does not have (renamed or removed steps?); pass "
                "--allow_non_restored_state to start without that state")
        self.log.warning("checkpoint %d: skipping the state of operator(s) %s, which this job "
                         "does not have (--allow_non_restored_state)",
                         self.metadata.checkpoint_id, names)

    def _handles(self, operator_id: str) -> List[TaskStateHandle]:
        return self.metadata.operators.get(operator_id, [])

    def keyed_handles(self, operator_id: str, subtask: int) -> List[TaskStateHandle]:
        """The old handles holding key groups that new ``subtask`` owns."""
        mine = key_group_range(subtask, self.parallelism, self.max_parallelism)
        found = []
        for handle in self._handles(operator_id):
            theirs = old_key_groups(handle, self.old_parallelism, self.max_parallelism)
            if max(theirs.start, mine.start) < min(theirs.stop, mine.stop):
                found.append(handle)
        return found

    def operator_handles(self, operator_id: str, subtask: int) -> List[TaskStateHandle]:
        """The old handles whose operator snapshot new ``subtask`` restores: a keyed
        operator's by key groups, any other's old subtask ``i`` at ``i % parallelism``."""
        if self.keyed.get(operator_id):
            return self.keyed_handles(operator_id, subtask)
        return [h for h in self._handles(operator_id)
                if h.subtask_index % self.parallelism == subtask]


def _has_state(handle: TaskStateHandle) -> bool:
    return bool(handle.files) or handle.position is not None


# ---------------------------------------------------------------------- finding a checkpoint


def open_restore_source(path: str) -> Tuple[CheckpointStorage, Optional[int]]:
    """The storage and checkpoint id ``--from_checkpoint`` names: a ``chk-N`` directory
    (N), or a checkpoint root or savepoint directory (None: its latest complete one).

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> storage, n = open_restore_source(root + "/chk-7")
    >>> n, storage.url == root
    (7, True)
    """
    match = _CHK_DIR.match(path)
    root, checkpoint_id = (match.group(1), int(match.group(2))) if match else (path, None)
    try:
        return open_checkpoint_storage(root or ".", read_only=True), checkpoint_id
    except CheckpointStorageConfigError as exc:
        raise RestoreError(f"--from_checkpoint {path}: {exc}") from None


@dataclass
class LoadedCheckpoint:
    """A checkpoint downloaded and verified: its metadata and each task's local directory."""

    metadata: CheckpointMetadata
    directory: Path
    task_dirs: Dict[Tuple[str, int], Path]
    location: str = ""

    def task_dir(self, handle: TaskStateHandle) -> Path:
        return self.task_dirs[(handle.operator_id, handle.subtask_index)]

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def load_checkpoint(storage: CheckpointStorage, checkpoint_id: Optional[int] = None, *,
                    target: Optional[str] = None, min_id: int = 0,
                    log: Any = LOG) -> Optional[LoadedCheckpoint]:
    """Download checkpoint ``checkpoint_id`` (None: the newest complete one from ``min_id``
    on), checking every file; when a file is missing or corrupt, log it and try the
    previous complete checkpoint. None when there is none left to try. A checkpoint
    named explicitly that is corrupt is an error (no silent substitute)."""
    ids = sorted((n for n in storage.checkpoint_ids() if n >= min_id), reverse=True)
    if checkpoint_id is not None:
        if checkpoint_id not in ids:
            raise CheckpointNotFoundError(
                f"{storage.url}: no complete checkpoint {checkpoint_id} (complete: "
                f"{sorted(ids) or 'none'})")
        ids = [checkpoint_id]
    for position, n in enumerate(ids):
        directory = Path(tempfile.mkdtemp(prefix=f"headrace-restore-{n}-", dir=target))
        try:
            metadata = storage.read_metadata(n)
            task_dirs = {}
            for handle in metadata.tasks:
                task_dir = directory / f"{len(task_dirs)}"
                storage.download_task_state(handle, task_dir)
                task_dirs[(handle.operator_id, handle.subtask_index)] = task_dir
            return LoadedCheckpoint(metadata, directory, task_dirs,
                                    f"{storage.url.rstrip('/')}/chk-{n}")
        except CheckpointStorageError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            if checkpoint_id is not None:
                raise
            older = ids[position + 1] if position + 1 < len(ids) else None
            log.error("checkpoint %d cannot be restored: %s; %s", n, exc,
                      f"falling back to checkpoint {older}" if older is not None
                      else "no older complete checkpoint is left")
    return None



# ------------------------------------------------------------------ what an attempt starts from


def keyed_operator_ids(plan: Any) -> Dict[str, bool]:
    """Every operator id of ``plan``, and whether its input is a key exchange (its state
    is keyed: restored by key group)."""
    from headrace.runners.engine.plan import KEYED
    from headrace.runners.engine.snapshots import operator_id

    return {operator_id(node): any(edge.partitioning == KEYED for edge in node.inputs)
            for node in plan.nodes}


def restored_states(loaded: LoadedCheckpoint, plan: RestorePlan) -> List[Any]:
    """The ``RestoredState`` of every new subtask: the unpickled operator snapshots and the
    keyed snapshot directories :class:`RestorePlan` gives it."""
    from headrace.runners.engine.snapshots import (
        KEYED_STATE_DIR,
        OPERATOR_STATE_FILE,
        RestoredState,
    )

    keyed_prefix = KEYED_STATE_DIR + "/"
    states = []
    for subtask in range(plan.parallelism):
        state = RestoredState()
        for op, is_keyed in plan.keyed.items():
            snapshots = [pickle.loads((loaded.task_dir(h) / OPERATOR_STATE_FILE).read_bytes())
                         for h in plan.operator_handles(op, subtask)
                         if OPERATOR_STATE_FILE in h.files]
            if snapshots:
                state.operators[op] = snapshots
            if is_keyed:
                dirs = [str(loaded.task_dir(h) / KEYED_STATE_DIR)
                        for h in plan.keyed_handles(op, subtask)
                        if any(name.startswith(keyed_prefix) for name in h.files)]
                if dirs:
                    state.keyed[op] = dirs
        states.append(state)
    return states


def _same_location(url: str, other: Optional[str]) -> bool:
    """Whether two storage URLs name the same root (local paths compared resolved)."""
    if other is None:
        return False
    if "://" in url or "://" in other:
        return url.rstrip("/") == other.rstrip("/")
    return os.path.realpath(url) == os.path.realpath(other)


class JobRecovery:
    """What each attempt of a job starts from: the first, ``--from_checkpoint`` (or
    nothing); a restart, the newest complete checkpoint this run took in
    ``--checkpoint_dir`` (or, if it took none yet, what the first attempt started from).

    Checkpoints in ``--checkpoint_dir`` older than this run (a directory reused) are
    never restored by a restart: ids below the first this run can take are ignored.
    A ``--from_checkpoint`` inside ``--checkpoint_dir`` may be one of them: like a
    restart's, its handles become the tasks' previous ones (at the same parallelism),
    so the job's next checkpoints reference its shared files instead of uploading them.
    """

    def __init__(self, plan: Any, options: Any, log: Any = LOG) -> None:
        from headrace.sdk.options import CheckpointingOptions, RecoveryOptions

        view = options.view_as(RecoveryOptions)
        self.plan = plan
        self.from_checkpoint: Optional[str] = view.from_checkpoint
        self.allow_non_restored_state = bool(view.allow_non_restored_state)
        self.checkpoint_dir = options.view_as(CheckpointingOptions).checkpoint_dir
        self.log = log
        self.keyed = keyed_operator_ids(plan)
        self._floor: Optional[int] = None
        self._own_url: Optional[str] = None  # the storage URL of --checkpoint_dir
        self._loaded: Optional[LoadedCheckpoint] = None

    def prepare(self, attempt: int) -> Optional[Tuple[Dict[int, Any], Dict[int, Dict[str, Any]]]]:
        """Download and plan the restore of attempt ``attempt`` (0 is the first run): per
        new subtask its ``RestoredState`` and, when the checkpoint lies in the job's own
        ``--checkpoint_dir`` and was taken at the same parallelism, its previous handles by
        operator id (so that the next upload references the files restored from); None to
        start empty."""
        self.cleanup()
        if self._floor is None and self.checkpoint_dir:
            with open_checkpoint_storage(self.checkpoint_dir) as storage:
                self._floor = storage.next_checkpoint_id()
                self._own_url = storage.url
        loaded, own = None, False
        if attempt > 0 and self.checkpoint_dir:
            with open_checkpoint_storage(self.checkpoint_dir, read_only=True) as storage:
                loaded = load_checkpoint(storage, min_id=self._floor or 0, log=self.log)
            own = loaded is not None
        if loaded is None and self.from_checkpoint:
            storage, checkpoint_id = open_restore_source(self.from_checkpoint)
            with storage:
                loaded = load_checkpoint(storage, checkpoint_id, log=self.log)
            if loaded is None:
                raise RestoreError(f"--from_checkpoint {self.from_checkpoint}: no complete "
                                   "checkpoint or savepoint there")
            own = _same_location(storage.url, self._own_url)
        if loaded is None:
            return None
        self._loaded = loaded
        plan = RestorePlan(loaded.metadata, self.keyed, self.plan.parallelism,
                           self.plan.max_parallelism, self.allow_non_restored_state, self.log)
        self.log.info("restoring %s %d from %s at parallelism %d (taken at parallelism %d)",
                      loaded.metadata.kind, loaded.metadata.checkpoint_id, loaded.location,
                      plan.parallelism, plan.old_parallelism)
        states = restored_states(loaded, plan)
        previous: Dict[int, Dict[str, Any]] = {}
        if own and plan.old_parallelism == plan.parallelism:
            for handle in loaded.metadata.tasks:
                previous.setdefault(handle.subtask_index, {})[handle.operator_id] = handle
        return dict(enumerate(states)), previous

    def cleanup(self) -> None:
        """Delete the local copy of the last restored checkpoint."""
        if self._loaded is not None:
            self._loaded.cleanup()
            self._loaded = None
