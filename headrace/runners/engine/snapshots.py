"""What a checkpoint holds of one subtask, and what a restored subtask starts from.

Each operator of each subtask is stored under its *operator id*, the transform's
full label (``"Count/CombinePerKey"``; the finalizing half of a Write adds
``"/Finalize"``): stable across runs of the same pipeline, so a checkpoint or
savepoint is matched to operators by name, not by position in the graph.

An operator's task state is up to three things: what its
:meth:`~headrace.runners.operators.base.Operator.snapshot_state` returned
(pickled into the private file :data:`OPERATOR_STATE_FILE`), its keyed backend's
snapshot (the files of the materialized snapshot, with its ``manifest.json``),
and, for sources, their split positions (the handle's ``position``, JSON).

>>> import headrace as beam
>>> from headrace.runners.engine.plan import PhysicalPlan
>>> p = beam.Pipeline()
>>> _ = p | "Pairs" >> beam.Create([("a", 1)]) | "Group" >> beam.GroupByKey()
>>> [operator_id(node) for node in PhysicalPlan.build(p, 1).nodes]
['Pairs/Read(InMemory(1 elements))', 'Group']
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List

#: The private file holding an operator's pickled ``snapshot_state``.
OPERATOR_STATE_FILE = "operator-state.pkl"
#: The directory (in a task's files) of its keyed backend's materialized snapshot.
KEYED_STATE_DIR = "keyed"


def operator_id(node: Any) -> str:
    """The stable id of a plan node's operator in checkpoints: its label."""
    return node.label


@dataclasses.dataclass
class RestoredState:
    """The state one subtask starts from (see ``SubtaskGraph``).

    ``operators`` maps an operator id to the ``snapshot_state`` results this subtask
    gets (its own old subtask's, or after rescaling those the rescaling rule gives
    it); every operator of the subtask is then given ``restore_state(...)`` (an empty
    list when it has none), and sources read only the splits of their snapshots.
    ``keyed`` maps the id of a keyed operator to backend snapshots (objects, or
    directories of materialized ones) from any old subtasks: the backend keeps the
    key groups of this subtask (``restore_state_backend``), and so do timers and the
    fast paths' tables in ``restore_state``.
    """

    operators: Dict[str, List[Any]] = dataclasses.field(default_factory=dict)
    keyed: Dict[str, List[Any]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class JobStart:
    """How a job's subtasks start, given to every worker with the plan.

    ``storage``: where checkpoints go (None: checkpointing is off). ``restored``: per
    subtask index, the :class:`RestoredState` to start from (empty: a fresh start).
    ``previous``: per subtask, ``{operator id: TaskStateHandle}`` of the checkpoint
    restored from, so the first uploads after a restore reference its shared files
    (only valid when the backends were restored from those very files: same
    parallelism). ``first_checkpoint_id``: the id of the first checkpoint to take
    (above every id in the storage).
    """

    storage: Any = None
    restored: Dict[int, RestoredState] = dataclasses.field(default_factory=dict)
    previous: Dict[int, Dict[str, Any]] = dataclasses.field(default_factory=dict)
    first_checkpoint_id: int = 1
