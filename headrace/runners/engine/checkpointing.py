"""A subtask's side of aligned-barrier checkpoints: snapshot, upload, acknowledge, notify.

When barrier N has reached an operator on every input, :meth:`SubtaskCheckpointer.snapshot`
takes its state synchronously: ``finish_bundle`` (a ParDo's bundle ends at a barrier),
``snapshot_state(N)`` pickled at once, and the keyed backend's ``snapshot()``
(copy-on-write, or a RocksDB checkpoint of hard links). The rest runs on an upload
thread: the keyed snapshot is materialized into a temporary directory and
``CheckpointStorage.upload_task_state`` stores everything, referencing the shared
files (RocksDB SSTs, content-named key-group files) of the operator's handle from the
last *complete* checkpoint instead of uploading them again. When every operator of the
subtask has its handle, the subtask acknowledges N to the coordinator with all of them
(or declines N when an upload failed). After the coordinator committed N, every
operator gets ``notify_checkpoint_complete(N)``, in topological order.

Messages to the coordinator (through ``report``): ``("ack", N, subtask, handles,
stats)`` and ``("decline", N, subtask, reason)``.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple

from headrace.runners.engine.crash_points import crash_point
from headrace.runners.engine.snapshots import KEYED_STATE_DIR, OPERATOR_STATE_FILE, operator_id
from headrace.runners.operators.base import Operator
from headrace.runners.operators.pardo_operator import ParDoOperator
from headrace.runners.operators.sources import ReadOperator
from headrace.runners.state.base.pickling import dumps
from headrace.runners.state.base.snapshot import MANIFEST
from headrace.runners.state.checkpoint_storage import CheckpointStorage, TaskStateHandle

_LOG = logging.getLogger(__name__)


class _Pending:
    """Checkpoint N in this subtask: what was snapshotted, what was uploaded."""

    def __init__(self) -> None:
        self.snapshotted = 0
        self.sync_seconds = 0.0
        self.started = time.monotonic()
        self.handles: Dict[str, TaskStateHandle] = {}
        self.failed = False


class SubtaskCheckpointer:
    """Checkpoints of the operators ``operators`` (plan nodes by id) of one subtask."""

    def __init__(self, nodes: List[Any], operators: Dict[int, Operator], subtask: int,
                 storage: CheckpointStorage, report: Callable[[Tuple], None]) -> None:
        self.nodes = nodes
        self.operators = operators
        self.subtask = subtask
        self.storage = storage
        self.report = report
        self.pending: Dict[int, _Pending] = {}
        #: Each operator's handle in the last complete checkpoint (shared files reused).
        self.previous: Dict[str, TaskStateHandle] = {}
        self._acked: Dict[int, Dict[str, TaskStateHandle]] = {}
        self._done: "queue.SimpleQueue[Tuple[int, str, Future]]" = queue.SimpleQueue()
        self._uploads: Optional[ThreadPoolExecutor] = None

    # -- the synchronous part -------------------------------------------------------------------
    def snapshot(self, node: Any, checkpoint_id: int) -> None:
        """Barrier ``checkpoint_id`` reached ``node`` on every input: snapshot it."""
        started = time.perf_counter()
        pending = self.pending.get(checkpoint_id)
        if pending is None:
            pending = self.pending[checkpoint_id] = _Pending()
        operator = self.operators[node.node_id]
        if isinstance(operator, ParDoOperator):
            operator.finish_bundle()  # its outputs go before the barrier
        state = operator.snapshot_state(checkpoint_id)
        blob = dumps(state) if state is not None else None
        backend = getattr(operator, "keyed_backend", None)
        keyed = backend.snapshot() if backend is not None else None
        position = _position(state) if isinstance(operator, ReadOperator) else None
        pending.sync_seconds += time.perf_counter() - started
        pending.snapshotted += 1
        crash_point("after-snapshot", checkpoint_id)
        op_id = operator_id(node)
        if blob is None and keyed is None:
            future: Future = Future()
            future.set_result(TaskStateHandle(op_id, self.subtask))
        else:
            if self._uploads is None:
                self._uploads = ThreadPoolExecutor(1, thread_name_prefix="checkpoint-materialize")
            future = self._uploads.submit(
                _upload, self.storage, checkpoint_id, op_id, self.subtask, blob, keyed, position,
                self.previous.get(op_id))
        future.add_done_callback(lambda f: self._done.put((checkpoint_id, op_id, f)))

    # -- the asynchronous part ------------------------------------------------------------------
    def poll(self) -> None:
        """Collect finished uploads; acknowledge or decline the checkpoints they finish
        (called by the event loop every turn)."""
        done = self._done
        while not done.empty():
            checkpoint_id, op_id, future = done.get()
            pending = self.pending.get(checkpoint_id)
            if pending is None or pending.failed:
                continue  # aborted meanwhile
            try:
                pending.handles[op_id] = future.result()
            except Exception as exc:
                pending.failed = True
                _LOG.warning("checkpoint %d: subtask %d could not upload the state of %r: %s",
                             checkpoint_id, self.subtask, op_id, exc)
                self.report(("decline", checkpoint_id, self.subtask,
                             f"subtask {self.subtask} could not upload the state of "
                             f"{op_id!r}: {type(exc).__name__}: {exc}"))
                continue
            if len(pending.handles) == len(self.nodes):
                del self.pending[checkpoint_id]
                self._acked[checkpoint_id] = pending.handles
                stats = {"sync_seconds": pending.sync_seconds,
                         "seconds": time.monotonic() - pending.started}
                self.report(("ack", checkpoint_id, self.subtask,
                             list(pending.handles.values()), stats))

    def complete(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` is committed: its handles are the base of the next
        uploads, and every operator is notified."""
        handles = self._acked.pop(checkpoint_id, None)
        if handles is not None:
            self.previous = handles
        for n in [n for n in self._acked if n < checkpoint_id]:
            del self._acked[n]
        for n in [n for n in self.pending if n < checkpoint_id]:
            del self.pending[n]
        for node in self.nodes:
            self.operators[node.node_id].notify_checkpoint_complete(checkpoint_id)

    def abort(self, checkpoint_id: int) -> None:
        """The coordinator gave checkpoint ``checkpoint_id`` up: forget it."""
        self.pending.pop(checkpoint_id, None)
        self._acked.pop(checkpoint_id, None)

    def close(self) -> None:
        if self._uploads is not None:
            self._uploads.shutdown(wait=True)
        self.storage.close()


def _position(state: Any) -> Any:
    """A source's split positions for the metadata (JSON; others are kept in the pickle)."""
    try:
        json.dumps(state["splits"])
        return {"splits": state["splits"]}
    except (TypeError, ValueError):
        return {"splits": [{**entry, "position": repr(entry["position"])}
                           for entry in state["splits"]]}


def _upload(storage: CheckpointStorage, checkpoint_id: int, op_id: str, subtask: int,
            blob: Optional[bytes], keyed: Any, position: Any,
            previous: Optional[TaskStateHandle]) -> TaskStateHandle:
    """Materialize the keyed snapshot and upload an operator's state (an upload thread)."""
    private: Dict[str, Any] = {}
    shared: Dict[str, Any] = {}
    info: Dict[str, Any] = {}
    directory = None
    try:
        if blob is not None:
            private[OPERATOR_STATE_FILE] = blob
        if keyed is not None:
            directory = tempfile.mkdtemp(prefix="headrace-checkpoint-")
            for file in keyed.materialize(directory):
                name = f"{KEYED_STATE_DIR}/{file.name}"
                (shared if file.shared else private)[name] = os.path.join(directory, file.name)
            private[f"{KEYED_STATE_DIR}/{MANIFEST}"] = os.path.join(directory, MANIFEST)
            info = {"keyed_format": keyed.format,
                    "key_groups": [keyed.key_groups.start, keyed.key_groups.stop]}
        crash_point("during-upload", checkpoint_id)
        return storage.upload_task_state(checkpoint_id, op_id, subtask, shared_files=shared,
                                         private_files=private, previous=previous,
                                         position=position, info=info).result()
    finally:
        if keyed is not None:
            keyed.release()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
