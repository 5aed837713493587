"""The operators of ``Write``: one writer per subtask, and the sink's finalization.

A plain :class:`~headrace.sdk.io_base.Sink` is written, closed and finalized
at the end of input. A :class:`~headrace.sdk.io_base.CommittingSink` is
committed in two phases, as Flink's two-phase-commit sinks: its writer
pre-commits on every checkpoint barrier (``snapshot_state``) and the
committables travel in the checkpoint; they are published when the checkpoint
completes (``notify_checkpoint_complete``), or, after a crash, when the
checkpoint that holds them is restored (``restore_state``: the checkpoint is
complete, so what it holds must be published; commits are idempotent). Without
checkpointing the whole output is prepared and committed at the end of input.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from headrace.runners.common.errors import reraise_with_label
from headrace.runners.operators.base import Batch, Operator
from headrace.runners.operators.batch import ColumnBatch
from headrace.sdk.io_base import CommittingSink
from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS
from headrace.sdk.window import GLOBAL_WINDOW
from headrace.sdk.windowed_value import WindowedValue


class WriteOperator(Operator):
    """Writes every element; closes and finalizes the sink at the end of input.

    With several writers (``num_writers > 1``) each emits ``(writer_index,
    result)`` at the end instead, for a :class:`FinalizeWriteOperator` to
    finalize once.

    For a :class:`CommittingSink` with ``checkpointing`` on, the end of input
    (the MAX watermark) does not close the writer: the final checkpoint's
    barrier pre-commits the rest and its completion commits, closes, finalizes
    and only then forwards the MAX watermark, so that the Write's outputs are
    not late downstream. The snapshot is ``{"writer": writer state, "pending":
    {checkpoint id: committables not yet known committed}}``.
    """

    def __init__(self, label: str, sink: Any, writer_index: int = 0,
                 num_writers: int = 1) -> None:
        super().__init__(label, 1)
        self.sink = sink
        self.writer = None
        self.writer_index = writer_index
        self.num_writers = num_writers
        self.committing = isinstance(sink, CommittingSink)
        self.committer = None
        #: Committables by checkpoint id, prepared but not yet known to be committed.
        self.pending: Dict[int, List[Any]] = {}
        #: The highest checkpoint id prepared so far.
        self.last_checkpoint = 0
        # End of input reached while checkpointing: waiting for the final checkpoint.
        self._ended = False
        self._final_checkpoint: Optional[int] = None
        self._finished = False

    def start(self) -> None:
        # With checkpointing, a restore may still come before the first record: the
        # writer is opened then (or on first use), never fresh first, because a fresh
        # writer cleans up in-progress output that the restored checkpoint may commit.
        if self.writer is None and not (self.committing and self.checkpointing):
            self._open(None)

    def _open(self, states: Optional[List[Any]]) -> Any:
        if self.committing and self.committer is None:
            self._open_committer()
        try:
            if states is None:
                self.writer = self.sink.open_writer(self.writer_index, self.num_writers)
            else:
                self.writer = self.sink.restore_writer(self.writer_index, self.num_writers,
                                                       states)
        except Exception as exc:
            reraise_with_label(exc, self.label)
        return self.writer

    def _current_writer(self) -> Any:
        if self._finished:
            raise RuntimeError(f"{self.label}: element after the end of input")
        return self.writer if self.writer is not None else self._open(None)

    def process_batch(self, index: int, batch: Batch) -> None:
        writer = self._current_writer()
        try:
            writer.write_batch(list(batch.values) if type(batch) is ColumnBatch
                               else [wv.value for wv in batch])
        except Exception as exc:
            reraise_with_label(exc, self.label)

    def advance(self, watermark: int) -> None:
        if watermark == MAX_MICROS and not self._finished:
            if not self.committing:
                self._finish()
                return
            if self.checkpointing:
                # Held back: the final checkpoint commits, then _finish forwards it.
                self._ended = True
                return
            writer = self._current_writer()
            try:
                committables = writer.prepare_commit(self.last_checkpoint + 1)
            except Exception as exc:
                reraise_with_label(exc, self.label)
            self.last_checkpoint += 1
            if committables:
                self.pending[self.last_checkpoint] = list(committables)
            self._commit_through(self.last_checkpoint)
            self._finish()
            return
        self.forward_watermark(watermark)

    def _finish(self) -> None:
        """Close the writer, finalize (or pass the result on), then forward MAX."""
        writer, self.writer = self._current_writer(), None
        self._finished = True
        try:
            result = writer.close()
            outputs = ([(self.writer_index, result)] if self.num_writers > 1
                       else self.sink.finalize([result]))
        except Exception as exc:
            reraise_with_label(exc, self.label)
        self.emit_batch(None, _global(outputs))
        self.forward_watermark(MAX_MICROS)

    def snapshot_state(self, checkpoint_id: int) -> Any:
        if not self.committing:
            return None
        if self._finished:
            return {"writer": None, "pending": {}}
        writer = self._current_writer()
        try:
            committables = writer.prepare_commit(checkpoint_id)
            writer_state = writer.snapshot_state(checkpoint_id)
        except Exception as exc:
            reraise_with_label(exc, self.label)
        if committables:
            self.pending[checkpoint_id] = list(committables)
        self.last_checkpoint = max(self.last_checkpoint, checkpoint_id)
        if self._ended and self._final_checkpoint is None:
            self._final_checkpoint = checkpoint_id
        return {"writer": writer_state,
                "pending": {n: list(c) for n, c in self.pending.items()}}

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        if not self.committing:
            return
        self._commit_through(checkpoint_id)
        if (self._final_checkpoint is not None and checkpoint_id >= self._final_checkpoint
                and not self._finished):
            self._finish()

    def _commit_through(self, checkpoint_id: int) -> None:
        """Commit every pending checkpoint up to ``checkpoint_id``, oldest first."""
        for n in sorted(n for n in self.pending if n <= checkpoint_id):
            self._commit(self.pending[n])
            del self.pending[n]

    def _commit(self, committables: List[Any]) -> None:
        if self.committer is None:
            self._open_committer()
        try:
            self.committer.commit(list(committables))
        except Exception as exc:
            reraise_with_label(exc, self.label)

    def _open_committer(self) -> None:
        try:
            self.committer = self.sink.create_committer(self.writer_index, self.num_writers)
        except Exception as exc:
            reraise_with_label(exc, self.label)

    def restore_state(self, snapshots: List[Any]) -> None:
        if not self.committing:
            return
        snapshots = [s for s in snapshots if s is not None]
        # The restored checkpoint is complete: everything it holds as pending is
        # published now (again, if the crash came after the commit), oldest first,
        # before the writer opens and cleans up what no committable references.
        for n in sorted({n for s in snapshots for n in s["pending"]}):
            for snapshot in snapshots:
                if n in snapshot["pending"]:
                    self._commit(snapshot["pending"][n])
            self.last_checkpoint = max(self.last_checkpoint, n)
        self.pending = {}
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()
        self._open([s["writer"] for s in snapshots])

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            try:
                writer.close()
            except Exception:  # already failing; the original error matters
                pass
        if self.committer is not None:
            committer, self.committer = self.committer, None
            committer.close()


class FinalizeWriteOperator(Operator):
    """Collects every writer's ``(index, result)`` and finalizes the sink once, at the end."""

    def __init__(self, label: str, sink: Any) -> None:
        super().__init__(label, 1)
        self.sink = sink
        self.results: List[Tuple[int, Any]] = []

    def process_batch(self, index: int, batch: Batch) -> None:
        self.results.extend(wv.value for wv in batch)

    def advance(self, watermark: int) -> None:
        if watermark == MAX_MICROS and self.results:
            results = [result for _, result in sorted(self.results, key=lambda r: r[0])]
            self.results = []
            try:
                outputs = self.sink.finalize(results)
            except Exception as exc:
                reraise_with_label(exc, self.label)
            self.emit_batch(None, _global(outputs))
        self.forward_watermark(watermark)


def _global(values: List[Any]) -> Batch:
    return [WindowedValue.of(value, MIN_MICROS, (GLOBAL_WINDOW,)) for value in values]
