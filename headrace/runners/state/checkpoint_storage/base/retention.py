"""Retention: which checkpoints and files a cleanup pass deletes.

The plan is computed from storage as it is (a listing plus the metadata of the
complete checkpoints), never from memory of earlier passes, so a pass
interrupted by a crash is finished by the next one. The rules:

- the newest ``retained`` complete checkpoints are kept; savepoints are never
  deleted and do not count;
- an older checkpoint is deleted metadata first (so it stops being complete
  before any of its files go), then its own files;
- a ``chk-N/`` directory without metadata is an aborted or crashed checkpoint
  when N is below the newest complete one, and is deleted; above it, it may be
  in flight and is kept;
- a shared file is deleted when no kept checkpoint references it and the
  checkpoint that uploaded it is not in flight (its id is not above the newest
  complete one);
- a file a kept checkpoint references is never deleted, wherever it lives;
- while some complete checkpoint's metadata cannot be read, only expired metadata
  is deleted, no file: what the unreadable one references is unknown.

>>> scan = Scan(complete={1: 10, 2: 10, 3: 10}, keys_by_id={1: ["chk-1/a"], 4: ["chk-4/b"]})
>>> metas = {i: CheckpointMetadata(i) for i in (1, 2, 3)}
>>> plan = plan_cleanup(scan, metas, retained=2, shared_keys=["shared/1-x-f", "shared/4-y-g"])
>>> plan.expired, plan.orphan_keys, plan.shared_keys
([1], ['chk-1/a'], ['shared/1-x-f'])
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Mapping, Optional

from headrace.runners.state.checkpoint_storage.base import layout
from headrace.runners.state.checkpoint_storage.base.metadata import (
    CHECKPOINT,
    CheckpointMetadata,
)


@dataclasses.dataclass
class Scan:
    """What a listing of ``chk-*/`` shows: complete ids (with their metadata's size, which
    tells a cached metadata from a rewritten one) and every key by checkpoint id."""

    complete: Dict[int, int] = dataclasses.field(default_factory=dict)
    keys_by_id: Dict[int, List[str]] = dataclasses.field(default_factory=dict)

    @property
    def latest(self) -> int:
        """The newest complete id, 0 when there is none."""
        return max(self.complete, default=0)

    @property
    def highest(self) -> int:
        """The highest id with anything stored, complete or not."""
        return max([*self.complete, *self.keys_by_id], default=0)


@dataclasses.dataclass
class CleanupPlan:
    expired: List[int]
    orphan_keys: List[str]
    shared_keys: List[str]
    unreadable: List[int]


@dataclasses.dataclass
class CleanupReport:
    """What one cleanup pass deleted."""

    expired: List[int]
    deleted_files: int
    unreadable: List[int]


def plan_cleanup(scan: Scan, metadata: Mapping[int, Optional[CheckpointMetadata]],
                 retained: int, shared_keys: Iterable[str]) -> CleanupPlan:
    """The deletions of one pass; ``metadata[i]`` is None when checkpoint i is unreadable."""
    unreadable = sorted(i for i in scan.complete if metadata.get(i) is None)
    checkpoints = sorted(i for i in scan.complete
                         if metadata.get(i) is not None and metadata[i].kind == CHECKPOINT)
    kept = set(checkpoints[-retained:]) | {i for i in scan.complete if i not in checkpoints}
    expired = [i for i in checkpoints if i not in kept]
    orphans = [i for i in scan.keys_by_id if i not in scan.complete and i < scan.latest]
    if unreadable:
        return CleanupPlan(expired, [], [], unreadable)
    live = set()
    for i in kept:
        live |= metadata[i].keys()
    # A kept checkpoint may reference an older one's own files (a task handle acknowledged
    # again unchanged): those stay.
    orphan_keys = [key for i in sorted(expired + orphans) for key in scan.keys_by_id.get(i, [])
                   if key != layout.metadata_key(i) and key not in live]
    shared = []
    for key in shared_keys:
        creator = layout.shared_creator_of(key)
        if key not in live and creator is not None and creator <= scan.latest:
            shared.append(key)
    return CleanupPlan(expired, orphan_keys, shared, unreadable)
