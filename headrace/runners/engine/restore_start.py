"""A job's start from a complete checkpoint: the :class:`JobStart` its workers get.

Reads checkpoint N's ``_metadata``, downloads the keyed-state files of the subtasks
each new subtask needs (checked against their SHA-256) under ``local_dir``, and
unpickles the operators' ``snapshot_state`` results. At the same parallelism, subtask
i gets old subtask i's state and its handles (so its next uploads reference the
restored shared files). At another parallelism (rescaling; needs the same
``--max_parallelism``): a keyed operator (one behind a key exchange) gets every old
subtask whose key groups overlap its own, and keeps only its key groups; any other
operator of new subtask i gets the snapshots of old subtasks ``j`` with
``j % new_parallelism == i``.
"""
from __future__ import annotations

import os
import pickle
from typing import Any, Dict, List

from headrace.runners.engine.plan import KEYED, PhysicalPlan
from headrace.runners.engine.snapshots import (
    KEYED_STATE_DIR,
    OPERATOR_STATE_FILE,
    JobStart,
    RestoredState,
    operator_id,
)
from headrace.runners.state.base.key_groups import key_group_range
from headrace.runners.state.checkpoint_storage import CheckpointStorage, TaskStateHandle


def job_start_from_checkpoint(storage: CheckpointStorage, checkpoint_id: int,
                              plan: PhysicalPlan, local_dir: str) -> JobStart:
    """The start of ``plan``'s subtasks from complete checkpoint ``checkpoint_id`` of
    ``storage`` (which the job goes on checkpointing into); files go under ``local_dir``,
    which must outlive the workers' start."""
    metadata = storage.read_metadata(checkpoint_id)
    old_parallelism = int(metadata.properties.get("parallelism", 0)) or \
        1 + max((t.subtask_index for t in metadata.tasks), default=0)
    max_parallelism = int(metadata.properties.get("max_parallelism", plan.max_parallelism))
    if max_parallelism != plan.max_parallelism:
        raise ValueError(f"checkpoint {checkpoint_id} of {storage.url} was taken with "
                         f"--max_parallelism={max_parallelism}, the job has "
                         f"{plan.max_parallelism}: key groups cannot be split")
    same = old_parallelism == plan.parallelism
    keyed_nodes = {operator_id(node) for node in plan.nodes
                   if any(edge.partitioning == KEYED for edge in node.inputs)}
    restored = {i: RestoredState() for i in range(plan.parallelism)}
    previous: Dict[int, Dict[str, TaskStateHandle]] = {i: {} for i in range(plan.parallelism)}
    loaded: Dict[tuple, tuple] = {}

    def load(handle: TaskStateHandle) -> tuple:
        key = (handle.operator_id, handle.subtask_index)
        if key not in loaded:
            state = None
            if OPERATOR_STATE_FILE in handle.files:
                state = pickle.loads(storage.read_task_file(handle, OPERATOR_STATE_FILE))
            keyed = None
            if any(name.startswith(KEYED_STATE_DIR + "/") for name in handle.files):
                target = os.path.join(local_dir, f"{len(loaded)}")
                storage.download_task_state(handle, target)
                keyed = os.path.join(target, KEYED_STATE_DIR)
            loaded[key] = (state, keyed)
        return loaded[key]

    for op_id, handles in metadata.operators.items():
        for subtask in range(plan.parallelism):
            if op_id in keyed_nodes:
                mine = key_group_range(subtask, plan.parallelism, plan.max_parallelism)
                chosen = [h for h in handles if _overlaps(h, mine, old_parallelism,
                                                          plan.max_parallelism)]
            else:
                chosen = [h for h in handles if h.subtask_index % plan.parallelism == subtask]
            states: List[Any] = []
            keyed_dirs: List[str] = []
            for handle in chosen:
                state, keyed = load(handle)
                states.append(state)
                if keyed is not None:
                    keyed_dirs.append(keyed)
                if same and handle.subtask_index == subtask:
                    previous[subtask][op_id] = handle
            restored[subtask].operators[op_id] = states
            if keyed_dirs:
                restored[subtask].keyed[op_id] = keyed_dirs
    return JobStart(storage=storage, restored=restored, previous=previous if same else {},
                    first_checkpoint_id=storage.next_checkpoint_id())


def _overlaps(handle: TaskStateHandle, key_groups: range, old_parallelism: int,
              max_parallelism: int) -> bool:
    """Whether the old subtask of ``handle`` owned any of ``key_groups``."""
    old = key_group_range(handle.subtask_index, old_parallelism, max_parallelism)
    return old.start < key_groups.stop and key_groups.start < old.stop
