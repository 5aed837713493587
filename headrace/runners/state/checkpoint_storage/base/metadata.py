"""What a checkpoint's ``_metadata`` records, and its JSON form.

A :class:`FileRef` points at bytes on storage: a whole object, or a slice of a
pack (the small files of one task stored as one object). A
:class:`TaskStateHandle` is what one subtask of one operator acknowledges: its
files by local name, plus an opaque source position and backend info. A
:class:`CheckpointMetadata` gathers the handles of every task; its sizes are
computed from the references, so they cannot disagree with them.

>>> ref = FileRef(key="shared/1-ab-000007.sst", size=10, sha256="0" * 64, checkpoint_id=1)
>>> task = TaskStateHandle("counts", 0, files={"000007.sst": ref}, position={"offset": 3})
>>> meta = CheckpointMetadata(2, tasks=[task], job_id="job", timestamp=0.0)
>>> meta.total_size, meta.incremental_size
(10, 0)
>>> CheckpointMetadata.from_json(meta.to_json()) == meta
True
"""
from __future__ import annotations

import base64
import dataclasses
import json
import time
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional

from headrace.runners.state.checkpoint_storage.base.errors import CorruptCheckpointError

FORMAT = "headrace-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT = "checkpoint"
SAVEPOINT = "savepoint"


@dataclasses.dataclass(frozen=True)
class FileRef:
    """A file on checkpoint storage.

    ``key`` is relative to the storage root; ``offset`` is set when the file is a
    slice of a pack object; ``checkpoint_id`` is the checkpoint that uploaded it, so
    a later checkpoint that references it did not upload it again.
    """

    key: str
    size: int
    sha256: str
    checkpoint_id: int
    offset: Optional[int] = None

    @property
    def shared(self) -> bool:
        """Whether the file lives in ``shared/`` (may be referenced by several checkpoints)."""
        return self.key.startswith("shared/")

    def to_json(self) -> Dict[str, Any]:
        out = {"key": self.key, "size": self.size, "sha256": self.sha256,
               "checkpoint_id": self.checkpoint_id}
        if self.offset is not None:
            out["offset"] = self.offset
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FileRef":
        return cls(key=data["key"], size=int(data["size"]), sha256=data["sha256"],
                   checkpoint_id=int(data["checkpoint_id"]), offset=data.get("offset"))


@dataclasses.dataclass(frozen=True)
class TaskStateHandle:
    """The state one subtask of one operator stored for a checkpoint.

    ``files`` maps the backend's local file names to their references; ``position``
    is opaque (a source's split positions: JSON values, bytes allowed); ``info`` is
    the backend's own JSON (its kind, format version, key-group range...).
    """

    operator_id: str
    subtask_index: int
    files: Mapping[str, FileRef] = dataclasses.field(default_factory=dict)
    position: Any = None
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def size(self) -> int:
        """Bytes this task's state occupies on storage."""
        return sum(ref.size for ref in self.files.values())

    def to_json(self) -> Dict[str, Any]:
        return {"files": {name: ref.to_json() for name, ref in sorted(self.files.items())},
                "position": _encode_opaque(self.position), "info": dict(self.info)}

    @classmethod
    def from_json(cls, operator_id: str, subtask_index: int,
                  data: Mapping[str, Any]) -> "TaskStateHandle":
        files = {name: FileRef.from_json(ref) for name, ref in data.get("files", {}).items()}
        return cls(operator_id, subtask_index, files=files,
                   position=_decode_opaque(data.get("position")), info=data.get("info", {}))


@dataclasses.dataclass(frozen=True)
class CheckpointMetadata:
    """Checkpoint ``checkpoint_id``: every task's state handles, job id, trigger time.

    ``kind`` is ``"checkpoint"`` (subject to retention) or ``"savepoint"``
    (self-contained, never garbage-collected). ``properties`` holds job-level JSON
    the runtime wants back on restore (parallelism, max parallelism...).
    """

    checkpoint_id: int
    tasks: Iterable[TaskStateHandle] = ()
    job_id: str = ""
    timestamp: float = dataclasses.field(default_factory=time.time)
    kind: str = CHECKPOINT
    properties: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        tasks = tuple(sorted(self.tasks, key=lambda t: (t.operator_id, t.subtask_index)))
        seen = set()
        for task in tasks:
            if (task.operator_id, task.subtask_index) in seen:
                raise ValueError(f"checkpoint {self.checkpoint_id}: two handles for operator "
                                 f"{task.operator_id!r} subtask {task.subtask_index}")
            seen.add((task.operator_id, task.subtask_index))
        if self.kind not in (CHECKPOINT, SAVEPOINT):
            raise ValueError(f"checkpoint kind must be {CHECKPOINT!r} or {SAVEPOINT!r}, "
                             f"got {self.kind!r}")
        object.__setattr__(self, "tasks", tasks)

    @property
    def operators(self) -> Dict[str, List[TaskStateHandle]]:
        """The task handles grouped by operator id, subtasks in order."""
        grouped: Dict[str, List[TaskStateHandle]] = {}
        for task in self.tasks:
            grouped.setdefault(task.operator_id, []).append(task)
        return grouped

    def task(self, operator_id: str, subtask_index: int) -> Optional[TaskStateHandle]:
        """The handle of one subtask, or None if it stored nothing."""
        for task in self.tasks:
            if task.operator_id == operator_id and task.subtask_index == subtask_index:
                return task
        return None

    def file_refs(self) -> Iterator[FileRef]:
        """Every reference, once per (key, offset): tasks may share a file."""
        seen = set()
        for task in self.tasks:
            for ref in task.files.values():
                if (ref.key, ref.offset) not in seen:
                    seen.add((ref.key, ref.offset))
                    yield ref

    def keys(self) -> set:
        """The storage keys this checkpoint needs (its ``_metadata`` aside)."""
        return {ref.key for ref in self.file_refs()}

    @property
    def total_size(self) -> int:
        """Bytes of state this checkpoint references on storage."""
        return sum(ref.size for ref in self.file_refs())

    @property
    def incremental_size(self) -> int:
        """Bytes uploaded for this checkpoint (the rest was uploaded by earlier ones)."""
        return sum(ref.size for ref in self.file_refs()
                   if ref.checkpoint_id == self.checkpoint_id)

    def to_json(self, commit_token: str = "") -> str:
        """The ``_metadata`` document (``commit_token`` tells a writer its own commit)."""
        operators: Dict[str, Dict[str, Any]] = {}
        for op, tasks in self.operators.items():
            operators[op] = {str(t.subtask_index): t.to_json() for t in tasks}
        doc = {"format": FORMAT, "version": FORMAT_VERSION, "checkpoint_id": self.checkpoint_id,
               "kind": self.kind, "job_id": self.job_id, "timestamp": self.timestamp,
               "total_size": self.total_size, "incremental_size": self.incremental_size,
               "properties": dict(self.properties), "operators": operators,
               "commit_token": commit_token}
        return json.dumps(doc, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "_metadata") -> "CheckpointMetadata":
        """Parse a ``_metadata`` document; :class:`CorruptCheckpointError` names ``where``."""
        try:
            doc = json.loads(text)
            if doc.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} document")
            if doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"format version {doc.get('version')!r} is not "
                                 f"{FORMAT_VERSION} (written by another headrace version?)")
            tasks = [TaskStateHandle.from_json(op, int(index), task)
                     for op, subtasks in doc["operators"].items()
                     for index, task in subtasks.items()]
            return cls(int(doc["checkpoint_id"]), tasks, job_id=doc.get("job_id", ""),
                       timestamp=float(doc["timestamp"]), kind=doc.get("kind", CHECKPOINT),
                       properties=doc.get("properties", {}))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptCheckpointError(
                f"{where}: unreadable checkpoint metadata: {exc}") from None

    @staticmethod
    def commit_token_of(text: str) -> str:
        """The commit token a ``_metadata`` document was written with ('' if unreadable)."""
        try:
            return str(json.loads(text).get("commit_token", ""))
        except (ValueError, AttributeError):
            return ""


def _encode_opaque(value: Any) -> Any:
    """JSON for an opaque position: bytes become ``{"$bytes": base64}`` wherever they occur."""
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): _encode_opaque(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_opaque(v) for v in value]
    return value


def _decode_opaque(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        return {k: _decode_opaque(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_opaque(v) for v in value]
    return value
