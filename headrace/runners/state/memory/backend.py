"""Keyed state in dicts, one per key group: key -> namespace -> state name -> cell.

A cell is the value itself, a :class:`_Bag` (list) or a :class:`_Map` (dict):
the marker classes keep a value that happens to be a list or a dict apart
from a bag or a map when the state is written out.

Snapshots are copy-on-write, in two steps. ``snapshot()`` copies only the
outer dict (at most ``max_parallelism`` entries), marks every group shared
and empties the key index (key -> namespaces, so that the hot path is one
lookup). The first access to a shared group afterwards gives the backend a
shallow copy of it; the first access to a key afterwards (a read too, since
callers change values they read before writing them back) gives the backend
a deep copy of that key's state, and the snapshot keeps the frozen objects.
So what a snapshot costs is proportional to the keys touched after it, and
keys never touched again are never copied.
"""
from __future__ import annotations

import pickle
import zlib
from typing import Any, Dict, Hashable, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from headrace.runners.state.base.backend import KeyedStateBackend, StateKind
from headrace.runners.state.base.key_groups import DEFAULT_MAX_PARALLELISM
from headrace.runners.state.base.pickling import dumps
from headrace.runners.state.base.savepoint import write_savepoint
from headrace.runners.state.base.snapshot import (
    KeyedStateSnapshot,
    SnapshotFile,
    StateRecord,
    as_snapshot,
    check_max_parallelism,
    owner_of,
)

_NO_CELLS: Dict[str, Any] = {}  # read-only: never handed to a caller that writes
_Group = Dict[bytes, Dict[Hashable, Dict[str, Any]]]


class _Bag(list):
    """A bag cell (a plain list stored with put_value stays a value)."""

    __slots__ = ()


class _Map(dict):
    """A map cell (a plain dict stored with put_value stays a value)."""

    __slots__ = ()


def _deep_copy(group: Any) -> Any:
    # Pickle rather than copy.deepcopy: several times faster, and state must pickle anyway
    # to be checkpointed.
    return pickle.loads(dumps(group))


class MemoryStateBackend(KeyedStateBackend):
    """State held in the operator's process memory.

    >>> state = MemoryStateBackend()
    >>> state.add_to_bag("seen", b"k", None, 1); state.add_to_bag("seen", b"k", None, 2)
    >>> state.read_bag("seen", b"k", None)
    [1, 2]
    >>> snapshot = state.snapshot()
    >>> state.add_to_bag("seen", b"k", None, 3)
    >>> [record.value for g in snapshot.key_groups for record in snapshot.records(g)]
    [1, 2]
    """

    def __init__(self, key_groups: Optional[range] = None,
                 max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> None:
        self.max_parallelism = max_parallelism
        self.key_groups = key_groups if key_groups is not None else range(max_parallelism)
        self._groups: Dict[int, _Group] = {}
        self._shared: Set[int] = set()
        # key -> its namespaces, for the keys whose state the backend owns alone (not shared
        # with a snapshot). A miss means a new key, or a key whose state a snapshot holds
        # (copied then).
        self._index: Dict[bytes, Dict[Hashable, Dict[str, Any]]] = {}

    # -- key groups -------------------------------------------------------------------------
    def _lookup(self, key: bytes, create: bool) -> Optional[Dict[Hashable, Dict[str, Any]]]:
        """``key``'s namespaces after an index miss: copy what a snapshot shares, or add it."""
        group = zlib.crc32(key) % self.max_parallelism
        data = self._groups.get(group)
        if data is None:
            if not create:
                return None
            if group not in self.key_groups:
                raise ValueError(f"key {key!r} is in key group {group}, which this state "
                                 f"backend (key groups {self.key_groups}) does not own")
            data = self._groups[group] = {}
        elif group in self._shared:
            data = self._groups[group] = dict(data)
            self._shared.discard(group)
        by_namespace = data.get(key)
        if by_namespace is not None:
            # Not in the index, so shared with a snapshot: the backend gets its own copy.
            by_namespace = data[key] = self._index[key] = _deep_copy(by_namespace)
        elif create:
            by_namespace = data[key] = self._index[key] = {}
        return by_namespace

    def _forget_key(self, key: bytes) -> None:
        del self._index[key]
        del self._groups[zlib.crc32(key) % self.max_parallelism][key]

    def _cells(self, key: bytes, namespace: Hashable) -> Dict[str, Any]:
        by_namespace = self._index.get(key)
        if by_namespace is None:
            by_namespace = self._lookup(key, True)
        cells = by_namespace.get(namespace)
        if cells is None:
            cells = by_namespace[namespace] = {}
        return cells

    def _peek(self, key: bytes, namespace: Hashable) -> Dict[str, Any]:
        """The cells of (key, namespace) for reading; an empty shared dict when there are none."""
        by_namespace = self._index.get(key)
        if by_namespace is None:
            by_namespace = self._lookup(key, False)
            if by_namespace is None:
                return _NO_CELLS
        return by_namespace.get(namespace, _NO_CELLS)

    # -- values, bags, maps -----------------------------------------------------------------
    def get_value(self, name: str, key: bytes, namespace: Hashable, default: Any = None) -> Any:
        return self._peek(key, namespace).get(name, default)

    def put_value(self, name: str, key: bytes, namespace: Hashable, value: Any) -> None:
        self._cells(key, namespace)[name] = value

    def add_to_bag(self, name: str, key: bytes, namespace: Hashable, value: Any) -> None:
        cells = self._cells(key, namespace)
        bag = cells.get(name)
        if bag is None:
            cells[name] = _Bag((value,))
        else:
            bag.append(value)

    def read_bag(self, name: str, key: bytes, namespace: Hashable) -> List[Any]:
        return list(self._peek(key, namespace).get(name, ()))

    def map_get(self, name: str, key: bytes, namespace: Hashable, user_key: Hashable,
                default: Any = None) -> Any:
        return self._peek(key, namespace).get(name, _NO_CELLS).get(user_key, default)

    def map_put(self, name: str, key: bytes, namespace: Hashable, user_key: Hashable,
                value: Any) -> None:
        cells = self._cells(key, namespace)
        entries = cells.get(name)
        if entries is None:
            entries = cells[name] = _Map()
        entries[user_key] = value

    def map_remove(self, name: str, key: bytes, namespace: Hashable, user_key: Hashable) -> None:
        entries = self._peek(key, namespace).get(name)
        if entries is not None:
            entries.pop(user_key, None)
            if not entries:
                self.clear(name, key, namespace)

    def map_items(self, name: str, key: bytes, namespace: Hashable) -> List[Tuple[Any, Any]]:
        return list(self._peek(key, namespace).get(name, _NO_CELLS).items())

    # -- lifecycle --------------------------------------------------------------------------
    def clear(self, name: str, key: bytes, namespace: Hashable) -> None:
        cells = self._peek(key, namespace)
        if name in cells:
            del cells[name]
            if not cells:
                self.clear_namespace(key, namespace)

    def clear_namespace(self, key: bytes, namespace: Hashable) -> None:
        by_namespace = self._index.get(key)
        if by_namespace is None:
            by_namespace = self._lookup(key, False)
        if by_namespace is not None and namespace in by_namespace:
            del by_namespace[namespace]
            if not by_namespace:
                self._forget_key(key)

    def namespaces(self, key: bytes) -> List[Hashable]:
        by_namespace = self._index.get(key)
        if by_namespace is None:  # reading namespaces changes nothing: no need to unshare
            data = self._groups.get(zlib.crc32(key) % self.max_parallelism)
            by_namespace = data.get(key) if data is not None else None
        return list(by_namespace) if by_namespace is not None else []

    def keys(self) -> Iterable[bytes]:
        return [key for data in self._groups.values() for key in data]

    def close(self) -> None:
        """Nothing to release but memory (present so that every backend can be closed)."""
        self._groups.clear()
        self._shared.clear()
        self._index.clear()

    # -- snapshots --------------------------------------------------------------------------
    def snapshot(self) -> "MemorySnapshot":
        """A snapshot of the state now; O(key groups), the data is copied lazily."""
        frozen = {group: data for group, data in self._groups.items() if data}
        self._shared = set(frozen)
        self._index = {}  # every key now goes through _lookup once, which copies its state
        return MemorySnapshot(frozen, self.key_groups, self.max_parallelism)

    @classmethod
    def restore(cls, snapshots: Sequence[Any], key_groups: range,
                max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> "MemoryStateBackend":
        """A backend owning ``key_groups``, with their state from ``snapshots``.

        ``snapshots`` (snapshot objects or directories of materialized ones, of any
        backend) may come from several subtasks of a job at another parallelism: only
        the key groups in ``key_groups`` are taken.
        """
        sources = [as_snapshot(s) for s in snapshots]
        check_max_parallelism(sources, max_parallelism)
        backend = cls(key_groups, max_parallelism)
        for group in key_groups:
            source = owner_of(sources, group)
            if source is not None:
                backend._load(group, source.records(group))
        return backend

    def _load(self, group: int, records: Iterable[StateRecord]) -> None:
        data: _Group = {}
        for name, key, namespace, kind, value in records:
            cells = data.setdefault(key, {}).setdefault(namespace, {})
            if kind is StateKind.VALUE:
                cells[name] = value
            elif kind is StateKind.BAG:
                cells.setdefault(name, _Bag()).append(value)
            else:
                user_key, entry = value
                cells.setdefault(name, _Map())[user_key] = entry
        if data:
            self._groups[group] = data
            self._index.update(data)


class MemorySnapshot(KeyedStateSnapshot):
    """Frozen key-group dicts of a :class:`MemoryStateBackend`; written as a savepoint."""

    format = "memory"

    def __init__(self, groups: Dict[int, _Group], key_groups: range,
                 max_parallelism: int) -> None:
        self._groups = groups
        self.key_groups = key_groups
        self.max_parallelism = max_parallelism

    def records(self, key_group: int) -> Iterator[StateRecord]:
        data = self._groups.get(key_group, {})
        for key, by_namespace in data.items():
            for namespace, cells in by_namespace.items():
                for name, cell in cells.items():
                    cell_type = type(cell)
                    if cell_type is _Bag:
                        for value in cell:
                            yield StateRecord(name, key, namespace, StateKind.BAG, value)
                    elif cell_type is _Map:
                        for entry in cell.items():
                            yield StateRecord(name, key, namespace, StateKind.MAP, entry)
                    else:
                        yield StateRecord(name, key, namespace, StateKind.VALUE, cell)

    def materialize(self, directory: str) -> List[SnapshotFile]:
        """Write the portable savepoint format: one content-named file per key group."""
        manifest = write_savepoint(directory, self)
        return [SnapshotFile(entry["name"], entry["size"], entry["name"])
                for entry in manifest["files"]]

    def release(self) -> None:
        self._groups = {}
