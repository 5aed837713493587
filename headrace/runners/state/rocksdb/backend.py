"""Keyed state in RocksDB (through rocksdict): one instance per subtask, on local disk.

The layout is in :mod:`.layout`. The write-ahead log is off, as in Flink:
durability comes from checkpoints, and a checkpoint flushes the memtable.
Facts of rocksdict 0.3.29 this module is built around: iterating a
``Snapshot`` does not respect the snapshot (so snapshots are native
checkpoints, hard-linked SST files, not RocksDB snapshots), and
``ReadOptions.set_iterate_lower_bound`` is ignored (so every scan seeks to its
start and stops at its end itself).
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
import uuid
import zlib
from typing import Any, Dict, Hashable, Iterable, Iterator, List, Optional, Sequence, Tuple

from rocksdict import Checkpoint, Env, Options, Rdict, WriteBatch, WriteOptions

from headrace.runners.state.base.backend import KeyedStateBackend, StateKind
from headrace.runners.state.base.key_groups import DEFAULT_MAX_PARALLELISM
from headrace.runners.state.base.snapshot import (
    StateRecord,
    as_snapshot,
    check_max_parallelism,
    overlapping,
    owner_of,
)
from headrace.runners.state.rocksdb import layout
from headrace.runners.state.rocksdb.layout import BAG, MAP, VALUE
from headrace.runners.state.rocksdb.snapshot import RocksDBSnapshot

_KIND_BYTES = {StateKind.VALUE: VALUE, StateKind.BAG: BAG, StateKind.MAP: MAP}
_NAMESPACE_CACHE_LIMIT = 4096


#: The process that opened RocksDB first. RocksDB's background threads (flushes) do not
#: survive ``fork()``: a forked child of a process that used it hangs at its first flush.
_OPENED_IN_PID: Optional[int] = None


def _check_fork_safe() -> None:
    global _OPENED_IN_PID
    if _OPENED_IN_PID is None:
        _OPENED_IN_PID = os.getpid()
    elif _OPENED_IN_PID != os.getpid():
        raise RuntimeError(
            "--state_backend=rocksdb in a process forked from one that had already used "
            "RocksDB: RocksDB's background threads do not survive fork(), so it would hang. "
            "Start such processes from a fresh interpreter (the multiprocess runner then "
            "starts its workers from a fork server).")


_ENV: Optional[Env] = None


def _db_options() -> Options:
    global _ENV
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    if _ENV is None:
        # Compactions (the low-priority pool) run at the lowest CPU priority, so that the
        # memtable flush a checkpoint waits for (the high-priority pool), and the operator
        # thread, are not slowed by a compaction competing for the same cores: measured on
        # 2 busy cores, the median flush of 10,000 changed keys went from 17-33 ms to 8-10
        # ms. A starved compaction is not a correctness problem: RocksDB slows writes down
        # itself once level 0 holds too many files. The Env is the process's default one.
        _ENV = Env()
        _ENV.lower_thread_pool_cpu_priority()
    options.set_env(_ENV)
    return options


class RocksDBStateBackend(KeyedStateBackend):
    """State of one subtask in its own RocksDB instance under ``state_dir``.

    ``close()`` closes the instance and deletes its directory (local state is a
    cache of what checkpoints hold).

    >>> state = RocksDBStateBackend()
    >>> state.add_to_bag("seen", b"k", None, 1); state.add_to_bag("seen", b"k", None, 2)
    >>> state.read_bag("seen", b"k", None)
    [1, 2]
    >>> state.close()
    """

    def __init__(self, key_groups: Optional[range] = None,
                 max_parallelism: int = DEFAULT_MAX_PARALLELISM,
                 state_dir: Optional[str] = None, name: str = "state",
                 base: Optional[RocksDBSnapshot] = None) -> None:
        _check_fork_safe()
        self.max_parallelism = max_parallelism
        self.key_groups = key_groups if key_groups is not None else range(max_parallelism)
        if state_dir is not None:
            os.makedirs(state_dir, exist_ok=True)
        safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64]
        #: This instance's directory: the database and the checkpoints of its snapshots.
        self.directory = tempfile.mkdtemp(prefix=f"headrace-rocksdb-{safe_name}-", dir=state_dir)
        #: Unique per instance: RocksDB numbers files from 1 in every new database, so a file
        #: is identified across instances (for incremental checkpoints) by this and its name.
        self.instance_id = uuid.uuid4().hex
        self._db: Optional[Rdict] = None
        self._open(base)
        self._kinds: Dict[str, Optional[StateKind]] = {}  # None: written with several kinds
        self._names: Dict[str, bytes] = {}
        self._namespaces: Dict[Hashable, bytes] = {}
        self._sequence = itertools.count()
        self._snapshots = itertools.count(1)

    def _open(self, base: Optional[RocksDBSnapshot]) -> None:
        """Open the database, empty or started from ``base``'s files."""
        path = os.path.join(self.directory, "db")
        if base is not None:
            os.makedirs(path)
            for entry in base.files():
                source = os.path.join(base.directory, entry.name)
                target = os.path.join(path, entry.name)
                try:
                    if not entry.name.endswith(".sst"):
                        raise OSError("copied: RocksDB may rewrite it")
                    os.link(source, target)  # immutable: RocksDB never rewrites an SST
                except OSError:
                    shutil.copyfile(source, target)
        self._db = Rdict(path, _db_options())
        write_options = WriteOptions()
        write_options.disable_wal = True
        self._db.set_write_options(write_options)
        if base is not None:
            # Drop the key groups this backend does not own (as Flink clips a restored DB).
            if self.key_groups.start > 0:
                self._db.delete_range(layout.group_prefix(0),
                                      layout.group_prefix(self.key_groups.start))
            self._db.delete_range(layout.group_prefix(self.key_groups.stop), b"\xff\xff\xff")

    # -- encoding ---------------------------------------------------------------------------
    def _register(self, name: str, kind: StateKind) -> bytes:
        known = self._kinds.get(name, kind)
        self._kinds[name] = kind if known is kind else None
        encoded = self._names.get(name)
        if encoded is None:
            encoded = self._names[name] = layout.name_part(name)
        return encoded

    def _namespace(self, namespace: Hashable) -> bytes:
        encoded = self._namespaces.get(namespace)
        if encoded is None:
            if len(self._namespaces) >= _NAMESPACE_CACHE_LIMIT:
                self._namespaces.clear()  # windows come and go; keep the cache small
            encoded = self._namespaces[namespace] = layout.encode_namespace(namespace)
        return encoded

    def _group_of(self, key: bytes) -> int:
        group = zlib.crc32(key) % self.max_parallelism
        if group not in self.key_groups:
            raise ValueError(f"key {key!r} is in key group {group}, which this state backend "
                             f"(key groups {self.key_groups}) does not own")
        return group

    def _prefix(self, name: str, key: bytes, namespace: Hashable, kind: StateKind) -> bytes:
        return layout.cell_prefix(self._group_of(key), self._register(name, kind), key,
                                  self._namespace(namespace))

    def _read_prefix(self, name: str, key: bytes, namespace: Hashable) -> Optional[bytes]:
        """The cell prefix for a read; None when nothing was ever written under ``name``."""
        encoded = self._names.get(name)
        if encoded is None:
            return None
        return layout.cell_prefix(self._group_of(key), encoded, key, self._namespace(namespace))

    @property
    def db(self) -> Rdict:
        if self._db is None:
            raise RuntimeError(f"the RocksDB state backend in {self.directory} is closed")
        return self._db

    def _scan(self, lower: bytes, upper: bytes) -> Iterator[Tuple[bytes, bytes]]:
        """``(key, value)`` for ``lower <= key < upper``."""
        return layout.scan(self.db, lower, upper)

    # -- values, bags, maps -----------------------------------------------------------------
    def get_value(self, name: str, key: bytes, namespace: Hashable, default: Any = None) -> Any:
        prefix = self._read_prefix(name, key, namespace)
        raw = None if prefix is None else self.db.get(prefix + VALUE)
        return default if raw is None else layout.decode_value(raw)

    def put_value(self, name: str, key: bytes, namespace: Hashable, value: Any) -> None:
        self.db[self._prefix(name, key, namespace, StateKind.VALUE) + VALUE] = \
            layout.encode_value(value)

    def add_to_bag(self, name: str, key: bytes, namespace: Hashable, value: Any) -> None:
        prefix = self._prefix(name, key, namespace, StateKind.BAG)
        self.db[prefix + BAG + layout.sequence_suffix(next(self._sequence))] = \
            layout.encode_value(value)

    def read_bag(self, name: str, key: bytes, namespace: Hashable) -> List[Any]:
        prefix = self._read_prefix(name, key, namespace)
        if prefix is None:
            return []
        start = prefix + BAG
        return [layout.decode_value(v) for _, v in self._scan(start, layout.successor(start))]

    def map_get(self, name: str, key: bytes, namespace: Hashable, user_key: Hashable,
                default: Any = None) -> Any:
        prefix = self._read_prefix(name, key, namespace)
        raw = None if prefix is None else self.db.get(
            prefix + MAP + layout.encode_user_key(user_key))
        return default if raw is None else layout.decode_value(raw)

    def map_put(self, name: str, key: bytes, namespace: Hashable, user_key: Hashable,
                value: Any) -> None:
        prefix = self._prefix(name, key, namespace, StateKind.MAP)
        self.db[prefix + MAP + layout.encode_user_key(user_key)] = layout.encode_value(value)

    def map_remove(self, name: str, key: bytes, namespace: Hashable, user_key: Hashable) -> None:
        prefix = self._read_prefix(name, key, namespace)
        if prefix is not None:
            self.db.delete(prefix + MAP + layout.encode_user_key(user_key))

    def map_items(self, name: str, key: bytes, namespace: Hashable) -> List[Tuple[Any, Any]]:
        prefix = self._read_prefix(name, key, namespace)
        if prefix is None:
            return []
        start = prefix + MAP
        skip = len(start)
        return [(layout.decode_user_key(k[skip:]), layout.decode_value(v))
                for k, v in self._scan(start, layout.successor(start))]

    # -- lifecycle --------------------------------------------------------------------------
    def clear(self, name: str, key: bytes, namespace: Hashable) -> None:
        prefix = self._read_prefix(name, key, namespace)
        if prefix is None:
            return
        if self._kinds[name] is StateKind.VALUE:
            self.db.delete(prefix + VALUE)
            return
        batch = WriteBatch(raw_mode=True)
        for raw, _ in self._scan(prefix, layout.successor(prefix)):
            batch.delete(raw)
        if not batch.is_empty():
            self.db.write(batch)

    def clear_namespace(self, key: bytes, namespace: Hashable) -> None:
        for name in self._kinds:
            self.clear(name, key, namespace)

    def namespaces(self, key: bytes) -> List[Hashable]:
        group = self._group_of(key)
        found: Dict[bytes, None] = {}
        it = self.db.iter()
        for encoded_name in self._names.values():
            head = layout.group_prefix(group) + encoded_name + layout.length_prefixed(key)
            it.seek(head)
            while it.valid():
                raw = it.key()
                if not raw.startswith(head):
                    break
                namespace = layout.split_key(raw)[3]
                found[namespace] = None
                # Skip the rest of this namespace's entries (a bag may have many).
                it.seek(layout.successor(head + layout.length_prefixed(namespace)))
        return [layout.decode_namespace(ns) for ns in found]

    def keys(self) -> Iterable[bytes]:
        found: Dict[bytes, None] = {}
        it = self.db.iter()
        it.seek_to_first()
        while it.valid():
            group, name, key, _, _, _, _ = layout.split_key(it.key())
            found[key] = None
            it.seek(layout.successor(layout.group_prefix(group) + layout.length_prefixed(name)
                                     + layout.length_prefixed(key)))
        return list(found)

    def is_empty(self) -> bool:
        it = self.db.iter()
        it.seek_to_first()
        return not it.valid()

    def close(self) -> None:
        """Close the database and delete this instance's directory (snapshots included)."""
        if self._db is not None:
            self._db.close()
            self._db = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def __del__(self) -> None:
        if getattr(self, "_db", None) is not None:
            self.close()

    # -- snapshots --------------------------------------------------------------------------
    def snapshot(self) -> RocksDBSnapshot:
        """A native checkpoint (flush, then hard links to the immutable SST files).

        The memtable is flushed explicitly first (the checkpoint's own flush then has
        nothing to do), so that the snapshot's ``timings`` tell the two costs apart.
        """
        started = time.perf_counter()
        path = os.path.join(self.directory, "snapshots", f"snapshot-{next(self._snapshots)}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.db.flush(True)
        flushed = time.perf_counter()
        Checkpoint(self.db).create_checkpoint(path)
        linked = time.perf_counter()
        snapshot = RocksDBSnapshot.taken(path, self, {"flush": flushed - started,
                                                      "checkpoint": linked - flushed})
        snapshot.timings["metadata"] = time.perf_counter() - linked
        return snapshot

    def metadata(self) -> Dict[str, Any]:
        """What a snapshot needs besides the database files to be restored."""
        return {"format": "rocksdb", "version": 1, "instance_id": self.instance_id,
                "max_parallelism": self.max_parallelism,
                "key_groups": [self.key_groups.start, self.key_groups.stop],
                "states": {name: (kind.value if kind is not None else None)
                           for name, kind in self._kinds.items()},
                # Next bag sequence number: appends after a restore must sort after these.
                "next_sequence": self._peek_sequence()}

    def _peek_sequence(self) -> int:
        value = next(self._sequence)
        self._sequence = itertools.count(value)
        return value

    @classmethod
    def restore(cls, snapshots: Sequence[Any], key_groups: range,
                max_parallelism: int = DEFAULT_MAX_PARALLELISM, state_dir: Optional[str] = None,
                name: str = "state") -> "RocksDBStateBackend":
        """A backend owning ``key_groups``, with their state from ``snapshots``.

        ``snapshots`` (snapshot objects or directories of materialized ones, of any
        backend) may come from several subtasks of a job at another parallelism:
        only the key groups in ``key_groups`` are taken. When one RocksDB snapshot holds
        them all, the new database starts from its files (hard-linked SSTs) with the other
        key groups deleted; otherwise RocksDB snapshots are copied key group by key group
        as raw entries, and others go through their records.
        """
        sources = [as_snapshot(s) for s in snapshots]
        check_max_parallelism(sources, max_parallelism)
        needed = [s for s in sources if len(overlapping(s, key_groups))]
        for group in key_groups:
            owner_of(needed, group)  # overlapping snapshots are an error
        base = needed[0] if (len(needed) == 1 and isinstance(needed[0], RocksDBSnapshot)
                             and overlapping(needed[0], key_groups) == key_groups) else None
        backend = cls(key_groups, max_parallelism, state_dir, name, base)
        try:
            next_sequence = 0
            for source in needed:
                if isinstance(source, RocksDBSnapshot):
                    for state, kind in source.manifest["states"].items():
                        backend._register(state, StateKind(kind) if kind else StateKind.VALUE)
                        if kind is None:
                            backend._kinds[state] = None
                    next_sequence = max(next_sequence, source.manifest["next_sequence"])
            backend._sequence = itertools.count(next_sequence)
            for group in key_groups if base is None else ():
                source = owner_of(needed, group)
                if isinstance(source, RocksDBSnapshot):
                    backend._load_raw(source.raw_items(group))
                elif source is not None:
                    backend._load(group, source.records(group))
        except BaseException:
            backend.close()
            raise
        return backend

    def _load_raw(self, items: Iterable[Tuple[bytes, bytes]]) -> None:
        batch = WriteBatch(raw_mode=True)
        for raw, value in items:
            batch.put(raw, value)
            if batch.len() >= 10000:
                self.db.write(batch)
                batch = WriteBatch(raw_mode=True)
        if not batch.is_empty():
            self.db.write(batch)

    def _load(self, group: int, records: Iterable[StateRecord]) -> None:
        def entries() -> Iterator[Tuple[bytes, bytes]]:
            for name, key, namespace, kind, value in records:
                prefix = layout.cell_prefix(group, self._register(name, kind), key,
                                            self._namespace(namespace))
                if kind is StateKind.VALUE:
                    yield prefix + VALUE, layout.encode_value(value)
                elif kind is StateKind.BAG:
                    yield (prefix + BAG + layout.sequence_suffix(next(self._sequence)),
                           layout.encode_value(value))
                else:
                    user_key, entry = value
                    yield prefix + MAP + layout.encode_user_key(user_key), \
                        layout.encode_value(entry)
        self._load_raw(entries())
