"""Snapshots of keyed state: taken synchronously, written out later.

``KeyedStateBackend.snapshot()`` is cheap and returns a :class:`KeyedStateSnapshot`
that no later write to the backend changes. Its files are produced afterwards
(``materialize``), possibly on another thread while the operator goes on
processing, as in Flink's asynchronous snapshot phase.

Every snapshot, whatever its backend, can also be read as records per key
group (:class:`StateRecord`): that is what a backend of another kind restores
from, and what the portable savepoint format (``base.savepoint``) stores.

A materialized snapshot is a directory with a ``manifest.json`` (its format,
key groups and files) and the files it lists; :func:`open_snapshot` reads one
back, whichever backend wrote it.
"""
from __future__ import annotations

import abc
import json
import os
from typing import Any, Dict, Hashable, Iterator, List, NamedTuple, Optional

from headrace.runners.state.base.backend import StateKind

MANIFEST = "manifest.json"


class StateRecord(NamedTuple):
    """One piece of keyed state in backend-independent form.

    A value cell is one record; a bag is one record per element, in order; a
    map is one record per entry, whose ``value`` is ``(user_key, value)``.
    """

    name: str
    key: bytes
    namespace: Hashable
    kind: StateKind
    value: Any


class SnapshotFile(NamedTuple):
    """One file of a materialized snapshot, by its name in the snapshot's directory.

    A ``shared_key`` marks an immutable file (a RocksDB SST, a key-group file named
    by its content hash): every snapshot listing the same key has the same bytes
    under it, so checkpoint storage uploads such a file once and lets later
    checkpoints refer to it. Other files (None) belong to one snapshot.
    """

    name: str
    size: int
    shared_key: Optional[str]

    @property
    def shared(self) -> bool:
        return self.shared_key is not None


class KeyedStateSnapshot(abc.ABC):
    """The state of one backend at one moment, for the key groups it owned."""

    #: ``"memory"``, ``"rocksdb"`` or ``"savepoint"`` (the portable format).
    format: str
    key_groups: range
    max_parallelism: int

    @abc.abstractmethod
    def records(self, key_group: int) -> Iterator[StateRecord]:
        """Every record of one key group (nothing for a group outside ``key_groups``)."""

    @abc.abstractmethod
    def materialize(self, directory: str) -> List[SnapshotFile]:
        """Write the snapshot's files and ``manifest.json`` into ``directory`` (created).

        Safe to call on another thread while the backend goes on being written.
        """

    def release(self) -> None:
        """Free what the snapshot holds (local files, frozen copies); idempotent."""

    def __enter__(self) -> "KeyedStateSnapshot":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def write_manifest(directory: str, manifest: Dict[str, Any]) -> None:
    """Write ``manifest.json`` last and atomically: a directory with one is complete."""
    path = os.path.join(directory, MANIFEST)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def read_manifest(directory: str) -> Dict[str, Any]:
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{directory} is not a state snapshot: it has no {MANIFEST} "
                                "(an incomplete or foreign directory)") from None


def open_snapshot(directory: str) -> KeyedStateSnapshot:
    """The snapshot materialized in ``directory``, whichever backend wrote it.

    >>> import tempfile
    >>> from headrace.runners.state.memory import MemoryStateBackend
    >>> state = MemoryStateBackend()
    >>> state.put_value("count", b"k", None, 3)
    >>> path = tempfile.mkdtemp()
    >>> _ = state.snapshot().materialize(path)
    >>> restored = MemoryStateBackend.restore([open_snapshot(path)], range(0, 128))
    >>> restored.get_value("count", b"k", None)
    3
    """
    manifest = read_manifest(directory)
    fmt = manifest.get("format")
    if fmt == "savepoint":
        from headrace.runners.state.base.savepoint import SavepointReader
        return SavepointReader(directory, manifest)
    if fmt == "rocksdb":
        from headrace.runners.state.rocksdb.snapshot import RocksDBSnapshot
        return RocksDBSnapshot(directory, manifest)
    raise ValueError(f"{directory}/{MANIFEST}: unknown snapshot format {fmt!r} "
                     "(expected 'savepoint' or 'rocksdb')")


def as_snapshot(source: Any) -> KeyedStateSnapshot:
    """A snapshot object, or the snapshot materialized in a directory path."""
    if isinstance(source, KeyedStateSnapshot):
        return source
    if isinstance(source, (str, os.PathLike)):
        return open_snapshot(os.fspath(source))
    raise TypeError(f"cannot restore state from {source!r}: expected a KeyedStateSnapshot "
                    "or the directory of a materialized one")


def check_max_parallelism(snapshots: List[KeyedStateSnapshot], max_parallelism: int) -> None:
    """Key groups are only redistributable between jobs with the same number of them."""
    for snapshot in snapshots:
        if snapshot.max_parallelism != max_parallelism:
            raise ValueError(
                f"a {snapshot.format} snapshot has {snapshot.max_parallelism} key groups but "
                f"the restoring job has --max_parallelism={max_parallelism}: key groups cannot "
                "be split, so restore with the --max_parallelism the snapshot was taken with")


def overlapping(snapshot: KeyedStateSnapshot, key_groups: range) -> range:
    """The key groups of ``key_groups`` that ``snapshot`` holds."""
    start = max(snapshot.key_groups.start, key_groups.start)
    stop = min(snapshot.key_groups.stop, key_groups.stop)
    return range(start, max(start, stop))


def owner_of(snapshots: List[KeyedStateSnapshot], key_group: int
             ) -> Optional[KeyedStateSnapshot]:
    """The snapshot holding ``key_group``; an error if two claim it (state would be doubled)."""
    found = [s for s in snapshots if key_group in s.key_groups]
    if len(found) > 1:
        raise ValueError(f"key group {key_group} is in {len(found)} of the snapshots being "
                         "restored: they overlap (snapshots of different checkpoints?)")
    return found[0] if found else None
