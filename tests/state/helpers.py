"""Backends under test, and reading a backend's whole state back for comparisons."""
from __future__ import annotations

from typing import Any, Iterable, List, Tuple

from headrace.runners.state.base.key_groups import key_group_for, key_group_range
from headrace.runners.state.memory import MemoryStateBackend
from headrace.runners.state.rocksdb import RocksDBStateBackend

BACKENDS = ["memory", "rocksdb"]


def new_backend(kind: str, state_dir: str, key_groups: Any = None,
                max_parallelism: int = 128) -> Any:
    if kind == "memory":
        return MemoryStateBackend(key_groups, max_parallelism)
    return RocksDBStateBackend(key_groups, max_parallelism, state_dir)


def restore(kind: str, snapshots: Iterable[Any], key_groups: range, state_dir: str,
            max_parallelism: int = 128) -> Any:
    if kind == "memory":
        return MemoryStateBackend.restore(list(snapshots), key_groups, max_parallelism)
    return RocksDBStateBackend.restore(list(snapshots), key_groups, max_parallelism, state_dir)


def contents(snapshot: Any) -> List[Tuple]:
    """Every record of a snapshot, bags in order, as a canonically sorted list."""
    records = []
    for group in snapshot.key_groups:
        bag_positions: dict = {}
        for record in snapshot.records(group):
            cell = (record.name, record.key, repr(record.namespace))
            position = 0
            if record.kind.value == "bag":
                position = bag_positions[cell] = bag_positions.get(cell, -1) + 1
            records.append((group, record.name, record.key, repr(record.namespace),
                            record.kind.value, position, repr(record.value)))
    return sorted(records)


def owned_keys(parallelism: int, subtask: int, keys: Iterable[bytes],
               max_parallelism: int = 128) -> List[bytes]:
    groups = key_group_range(subtask, parallelism, max_parallelism)
    return [k for k in keys if key_group_for(k, max_parallelism) in groups]
