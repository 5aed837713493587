"""RocksDB snapshots: native checkpoints whose SST files are the unit of incremental upload.

``RocksDBStateBackend.snapshot()`` flushes the memtable and hard-links the live
SST files into a checkpoint directory (milliseconds, whatever the state size);
that directory is the snapshot, which no later write changes, so listing its
files and their sizes waits for ``files()`` / ``materialize()`` (the
asynchronous phase) instead of lengthening the synchronous pause. Its SST files
are immutable: ``files()`` marks them ``shared`` with a key unique across
instances (``<instance id>/<file name>``), so checkpoint storage uploads each
once and lets later checkpoints refer to it. The other files (MANIFEST,
CURRENT, OPTIONS, an empty log) are small and private to the snapshot.

Reading it (for restore or a portable savepoint) opens the checkpoint
read-only and scans key-group ranges.
"""
from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

from rocksdict import AccessType, Options, Rdict

from headrace.runners.state.base.backend import StateKind
from headrace.runners.state.base.snapshot import (
    KeyedStateSnapshot,
    SnapshotFile,
    StateRecord,
    write_manifest,
)
from headrace.runners.state.rocksdb import layout

if TYPE_CHECKING:
    from headrace.runners.state.rocksdb.backend import RocksDBStateBackend

_KINDS = {layout.VALUE: StateKind.VALUE, layout.BAG: StateKind.BAG, layout.MAP: StateKind.MAP}


class RocksDBSnapshot(KeyedStateSnapshot):
    """A RocksDB checkpoint directory plus the metadata to restore it (its manifest).

    >>> from headrace.runners.state.rocksdb import RocksDBStateBackend
    >>> state = RocksDBStateBackend()
    >>> state.put_value("count", b"k", None, 1)
    >>> snapshot = state.snapshot()
    >>> state.put_value("count", b"k", None, 2)
    >>> [(r.kind.value, r.value) for g in snapshot.key_groups for r in snapshot.records(g)]
    [('value', 1)]
    >>> any(f.shared and f.name.endswith(".sst") for f in snapshot.files())
    True
    >>> snapshot.release(); state.close()
    """

    format = "rocksdb"

    def __init__(self, directory: str, manifest: Dict[str, Any], owned: bool = False) -> None:
        if manifest.get("format") != "rocksdb" or manifest.get("version") != 1:
            raise ValueError(f"{directory}: not a version-1 rocksdb snapshot manifest")
        if owned:
            manifest.setdefault("files", None)  # listed on first use (see _listed)
        self.directory = directory
        self.manifest = manifest
        self.key_groups = range(*manifest["key_groups"])
        self.max_parallelism = int(manifest["max_parallelism"])
        self._owned = owned  # a checkpoint this process made: release() deletes it
        #: Seconds spent in each step of the synchronous ``snapshot()`` that took it
        #: (``flush``, ``checkpoint``, ``metadata``); empty for a snapshot read back.
        self.timings: Dict[str, float] = {}
        self._reader: Optional[Rdict] = None

    @classmethod
    def taken(cls, directory: str, backend: "RocksDBStateBackend",
              timings: Optional[Dict[str, float]] = None) -> "RocksDBSnapshot":
        """The checkpoint just created in ``directory``: the backend's metadata is taken
        now (it changes with later writes), the listing of the immutable files later."""
        snapshot = cls(directory, backend.metadata(), owned=True)
        snapshot.timings.update(timings or {})
        return snapshot

    def _listed(self) -> List[Dict[str, Any]]:
        if self.manifest["files"] is None:
            self.manifest["files"] = [file._asdict() for file in _list_files(
                self.directory, self.manifest["instance_id"])]
        return self.manifest["files"]

    def files(self) -> List[SnapshotFile]:
        """The files of the checkpoint, with their sizes (SSTs shared, the rest private)."""
        return [SnapshotFile(**entry) for entry in self._listed()]

    # -- reading ----------------------------------------------------------------------------
    def _db(self) -> Rdict:
        if self._reader is None:
            self._reader = Rdict(self.directory, Options(raw_mode=True),
                                 access_type=AccessType.read_only())
        return self._reader

    def raw_items(self, key_group: int) -> Iterator[Tuple[bytes, bytes]]:
        """The RocksDB entries of one key group, as stored."""
        if key_group not in self.key_groups:
            return
        lower = layout.group_prefix(key_group)
        yield from layout.scan(self._db(), lower, layout.successor(lower))

    def records(self, key_group: int) -> Iterator[StateRecord]:
        namespaces: Dict[bytes, Any] = {}
        for raw, value in self.raw_items(key_group):
            _, name, key, namespace, kind, suffix, _ = layout.split_key(raw)
            decoded = namespaces.get(namespace)
            if decoded is None and namespace not in namespaces:
                decoded = namespaces[namespace] = layout.decode_namespace(namespace)
            state_kind = _KINDS[kind]
            decoded_value = layout.decode_value(value)
            if state_kind is StateKind.MAP:
                decoded_value = (layout.decode_user_key(suffix), decoded_value)
            yield StateRecord(name.decode("utf-8"), key, decoded, state_kind, decoded_value)

    # -- writing out ------------------------------------------------------------------------
    def materialize(self, directory: str) -> List[SnapshotFile]:
        """Hard-link (or copy, across file systems) the checkpoint into ``directory``."""
        os.makedirs(directory, exist_ok=True)
        for entry in self._listed():
            source = os.path.join(self.directory, entry["name"])
            target = os.path.join(directory, entry["name"])
            if os.path.exists(target):
                continue
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        write_manifest(directory, self.manifest)
        return self.files()

    def release(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)
            self._owned = False


def _list_files(directory: str, instance_id: str) -> List[SnapshotFile]:
    files = []
    for name in sorted(os.listdir(directory)):
        size = os.path.getsize(os.path.join(directory, name))
        shared_key = f"{instance_id}/{name}" if name.endswith(".sst") else None
        files.append(SnapshotFile(name, size, shared_key))
    return files

