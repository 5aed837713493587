"""The portable savepoint format: keyed state and timers, per key group, for any backend.

A savepoint directory holds ``manifest.json`` and one file per non-empty key
group, ``kg-<group>-<content hash>.hrs``: a header, then length-prefixed
records, each the pickle (protocol 5, see ``base.pickling``) of ``(state name, encoded key,
namespace, kind, value)``; kind is a :class:`StateKind` value (a bag is one
record per element, a map one per ``(user_key, value)`` entry) or ``"timer"``,
whose value is ``(tag, domain, fire_at, output_timestamp)`` and whose name is
the timer family. Either backend writes it and either restores it; a file
holds exactly one key group, so restoring at another parallelism reads only
the files of the groups it owns.

Pickle (not the element coders) because backends store Python objects whose
coder the backend never sees (accumulators, trigger bookkeeping, windows);
protocol 5 is read by every supported Python.

>>> import tempfile
>>> from headrace.runners.state.memory import MemoryStateBackend
>>> state = MemoryStateBackend()
>>> state.add_to_bag("seen", b"k", None, "a")
>>> path = tempfile.mkdtemp()
>>> manifest = write_savepoint(path, state.snapshot())
>>> [record.value for g in SavepointReader(path).key_groups
...  for record in SavepointReader(path).records(g)]
['a']
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import struct
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from headrace.runners.state.base.backend import StateKind
from headrace.runners.state.base.key_groups import key_group_for
from headrace.runners.state.base.pickling import dumps
from headrace.runners.state.base.snapshot import (
    KeyedStateSnapshot,
    SnapshotFile,
    StateRecord,
    read_manifest,
    write_manifest,
)
from headrace.runners.state.base.timers import Timer

HEADER = b"HRSTATE1"
VERSION = 1
TIMER = "timer"
_LENGTH = struct.Struct(">I")


def encode_key_group(records: Iterable[Tuple[str, bytes, Any, str, Any]]) -> Tuple[bytes, int]:
    """The bytes of one key-group file, and how many records it holds."""
    parts = [HEADER]
    count = 0
    for record in records:
        data = dumps(record)
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
        count += 1
    return b"".join(parts), count


def decode_key_group(data: bytes, path: str) -> Iterator[Tuple[str, bytes, Any, str, Any]]:
    if not data.startswith(HEADER):
        raise ValueError(f"{path}: not a headrace key-group file (bad header)")
    offset, end = len(HEADER), len(data)
    while offset < end:
        if offset + 4 > end:
            raise ValueError(f"{path}: truncated at byte {offset}")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + length > end:
            raise ValueError(f"{path}: truncated record at byte {offset}")
        yield pickle.loads(data[offset:offset + length])
        offset += length


def _timer_records(timers: Iterable[Timer]) -> Iterator[Tuple[str, bytes, Any, str, Any]]:
    for t in timers:
        yield (t.family, t.key, t.namespace, TIMER, (t.tag, t.domain, t.fire_at,
                                                    t.output_timestamp))


def write_savepoint(directory: str, snapshot: KeyedStateSnapshot,
                    timers: Optional[Iterable[Timer]] = None) -> Dict[str, Any]:
    """Write ``snapshot`` (and the operator's pending ``timers``) as a portable savepoint."""
    os.makedirs(directory, exist_ok=True)
    max_parallelism = snapshot.max_parallelism
    timers_by_group: Dict[int, List[Timer]] = {}
    for timer in timers or ():
        group = key_group_for(timer.key, max_parallelism)
        if group not in snapshot.key_groups:
            raise ValueError(f"a timer of key {timer.key!r} is in key group {group}, outside "
                             f"the snapshot's key groups {snapshot.key_groups}")
        timers_by_group.setdefault(group, []).append(timer)
    files = []
    for group in snapshot.key_groups:
        records = ((r.name, r.key, r.namespace, r.kind.value, r.value)
                   for r in snapshot.records(group))
        data, count = encode_key_group(records)
        timer_data, timer_count = encode_key_group(_timer_records(timers_by_group.get(group, ())))
        if count == 0 and timer_count == 0:
            continue
        data += timer_data[len(HEADER):]
        name = f"kg-{group:05d}-{hashlib.sha256(data).hexdigest()[:20]}.hrs"
        path = os.path.join(directory, name)
        if not os.path.exists(path):  # content-named: an existing file has these bytes
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.replace(path + ".tmp", path)
        files.append({"key_group": group, "name": name, "size": len(data), "records": count,
                      "timers": timer_count})
    manifest = {"format": "savepoint", "version": VERSION, "source": snapshot.format,
                "max_parallelism": max_parallelism,
                "key_groups": [snapshot.key_groups.start, snapshot.key_groups.stop],
                "files": files}
    write_manifest(directory, manifest)
    return manifest


class SavepointReader(KeyedStateSnapshot):
    """A savepoint (or materialized memory snapshot) directory, read as a snapshot."""

    format = "savepoint"

    def __init__(self, directory: str, manifest: Optional[Dict[str, Any]] = None) -> None:
        self.directory = directory
        self.manifest = manifest if manifest is not None else read_manifest(directory)
        if self.manifest.get("format") != "savepoint":
            raise ValueError(f"{directory} holds a {self.manifest.get('format')!r} snapshot, "
                             "not a portable savepoint")
        if self.manifest.get("version") != VERSION:
            raise ValueError(f"{directory}: savepoint format version "
                             f"{self.manifest.get('version')!r} is not supported (expected "
                             f"{VERSION})")
        self.max_parallelism = int(self.manifest["max_parallelism"])
        self.key_groups = range(*self.manifest["key_groups"])
        self._files = {entry["key_group"]: entry for entry in self.manifest["files"]}

    def files(self) -> List[SnapshotFile]:
        return [SnapshotFile(e["name"], e["size"], e["name"]) for e in self.manifest["files"]]

    def _raw(self, key_group: int) -> Iterator[Tuple[str, bytes, Any, str, Any]]:
        entry = self._files.get(key_group)
        if entry is None:
            return iter(())
        path = os.path.join(self.directory, entry["name"])
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: listed in {self.directory}/manifest.json but "
                                    "missing") from None
        return decode_key_group(data, path)

    def records(self, key_group: int) -> Iterator[StateRecord]:
        for name, key, namespace, kind, value in self._raw(key_group):
            if kind != TIMER:
                yield StateRecord(name, key, namespace, StateKind(kind), value)

    def timers(self, key_group: int) -> Iterator[Timer]:
        """The pending timers saved for one key group."""
        for family, key, namespace, kind, value in self._raw(key_group):
            if kind == TIMER:
                tag, domain, fire_at, output_timestamp = value
                yield Timer(key, namespace, family, tag, domain, fire_at, output_timestamp)

    def materialize(self, directory: str) -> List[SnapshotFile]:
        os.makedirs(directory, exist_ok=True)
        for entry in self.manifest["files"]:
            shutil.copyfile(os.path.join(self.directory, entry["name"]),
                            os.path.join(directory, entry["name"]))
        write_manifest(directory, self.manifest)
        return self.files()

