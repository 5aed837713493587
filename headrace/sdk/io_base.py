"""The source and sink interfaces through which IO talks to every runner.

A :class:`Source` is split into independent :class:`SourceSplit` s (a file, a
generated range, later a Kafka partition); each split is read by a
:class:`SplitReader` in batches, so that runners never pay a call per record.
A :class:`Sink` opens one :class:`SinkWriter` per parallel writer and
finalizes once every writer has closed.
"""
from __future__ import annotations

import abc
from typing import Any, Iterable, List, Optional, Sequence


class SplitReader(abc.ABC):
    """Reads one split, a batch at a time."""

    @abc.abstractmethod
    def read_batch(self, max_records: int) -> Optional[List[Any]]:
        """Return up to ``max_records`` elements; ``None`` once the split is exhausted.

        An empty list means "nothing available right now" (unbounded splits).
        An element may be a ``TimestampedValue`` to carry its event time.
        """

    def position(self) -> Any:
        """The position after the last element returned, for checkpoints."""
        return None

    def close(self) -> None:
        """Release resources; called exactly once."""


class SourceSplit(abc.ABC):
    """An independently readable part of a source, the unit of source parallelism."""

    @abc.abstractmethod
    def open(self, position: Any = None) -> SplitReader:
        """Open a reader, resuming after ``position`` when one is given."""

    def split_id(self) -> Optional[str]:
        """A stable identity (e.g. ``"topic-3"``), needed by sources that discover splits
        at runtime so that a split is opened once; None for fixed split lists."""
        return None

    def assignment_key(self) -> Optional[int]:
        """A stable number that places the split on subtask ``key % parallelism``
        whichever worker lists it and whenever; None: place by list position."""
        return None


class Source(abc.ABC):
    """A bounded or unbounded collection of splits."""

    is_bounded: bool = True

    #: Seconds between calls of :meth:`discover_splits` while reading (None: never).
    discovery_interval: Optional[float] = None

    @abc.abstractmethod
    def split(self, desired_num_splits: int) -> List[SourceSplit]:
        """Divide the source into at most about ``desired_num_splits`` splits."""

    def discover_splits(self) -> List[SourceSplit]:
        """Every split that exists now, for unbounded sources whose splits appear at runtime
        (new Kafka partitions); readers open the ones they own and have not seen, by
        :meth:`SourceSplit.split_id`. Called every :attr:`discovery_interval` seconds."""
        return []

    def display_name(self) -> str:
        """A short description used in errors and progress displays."""
        return type(self).__name__

    def validate(self) -> None:
        """Raise a clear error at pipeline construction if the source cannot be read."""

    def default_watermark_strategy(self) -> Any:
        """The ``WatermarkStrategy`` used when the pipeline names none (None: no watermarks
        before the end of a split)."""
        return None


def assign_splits(splits: Sequence[SourceSplit], subtask: int,
                  parallelism: int) -> List[SourceSplit]:
    """Subtask ``subtask``'s share of ``splits``: a split with an assignment key goes to
    ``key % parallelism``, the others are dealt round-robin by position.

    >>> class Part(SourceSplit):
    ...     def __init__(self, key): self.key = key
    ...     def open(self, position=None): raise NotImplementedError
    ...     def assignment_key(self): return self.key
    >>> [s.key for s in assign_splits([Part(k) for k in range(5)], 1, 2)]
    [1, 3]
    """
    share = []
    for index, split in enumerate(splits):
        key = split.assignment_key()
        if (index if key is None else key) % parallelism == subtask:
            share.append(split)
    return share


class SinkWriter(abc.ABC):
    """Writes the elements that reach one parallel instance of a sink."""

    @abc.abstractmethod
    def write(self, element: Any) -> None:
        """Write one element."""

    def write_batch(self, elements: Iterable[Any]) -> None:
        """Write many elements; override when a batch can be written faster."""
        for element in elements:
            self.write(element)

    @abc.abstractmethod
    def close(self) -> Any:
        """Flush and close; the picklable result is passed to :meth:`Sink.finalize`."""


class Sink(abc.ABC):
    """A destination written by parallel writers and finalized once."""

    @abc.abstractmethod
    def open_writer(self, writer_index: int, num_writers: int) -> SinkWriter:
        """Open the writer for parallel instance ``writer_index`` of ``num_writers``."""

    def finalize(self, writer_results: List[Any]) -> List[Any]:
        """Called once after every writer closed; returns the Write's output elements."""
        return list(writer_results)

    def display_name(self) -> str:
        return type(self).__name__


class CommittingSinkWriter(SinkWriter):
    """A writer whose output is published only when a checkpoint covering it completes.

    This is the writer half of a two-phase-commit sink (Flink's ``SinkWriter``
    with ``prepareCommit``): between barriers it writes where readers cannot see
    yet (an in-progress file, an open Kafka transaction); on barrier N it
    pre-commits and hands back *committables*, which travel in checkpoint N and
    are published by the sink's :class:`Committer` once N is complete.
    """

    @abc.abstractmethod
    def prepare_commit(self, checkpoint_id: int) -> List[Any]:
        """Pre-commit at barrier ``checkpoint_id``.

        Make everything written since the previous barrier durable but not yet
        visible, and return picklable committables describing it (empty when
        nothing was written). Runs synchronously as the barrier passes; an
        exception fails the checkpoint. Also called with the last checkpoint id
        + 1 at the end of input, before :meth:`close`.
        """

    def snapshot_state(self, checkpoint_id: int) -> Any:
        """The writer's own state for checkpoint ``checkpoint_id`` (picklable), or None."""
        return None


class Committer(abc.ABC):
    """Publishes committables; one per sink subtask, beside its writer."""

    @abc.abstractmethod
    def commit(self, committables: List[Any]) -> None:
        """Publish ``committables``.

        Called once the checkpoint holding them is complete, and again after a
        restore for every committable in the restored checkpoint, some of which
        may already be published before the crash: committing must therefore be
        idempotent. Raising fails the job (and, with a restart strategy,
        retries from the latest checkpoint).
        """

    def close(self) -> None:
        """Release resources."""


class CommittingSink(Sink):
    """A sink with exactly-once output by two-phase commit on checkpoints.

    Runners call :meth:`open_writer` (or :meth:`restore_writer` after a restore)
    and :meth:`create_committer` per subtask; at every checkpoint barrier the
    writer's :meth:`CommittingSinkWriter.prepare_commit`; after the checkpoint
    completes :meth:`Committer.commit` on what it returned; at the end of input
    a last ``prepare_commit`` and commit, then ``close`` and :meth:`finalize`
    as for any sink. Without checkpointing the whole output is committed at the
    end of input.
    """

    @abc.abstractmethod
    def open_writer(self, writer_index: int, num_writers: int) -> CommittingSinkWriter:
        """Open a fresh writer for parallel instance ``writer_index`` of ``num_writers``."""

    def restore_writer(self, writer_index: int, num_writers: int,
                       states: List[Any]) -> CommittingSinkWriter:
        """Open a writer from the states old writers snapshotted (after rescaling,
        possibly several or none); the default ignores them."""
        return self.open_writer(writer_index, num_writers)

    @abc.abstractmethod
    def create_committer(self, writer_index: int, num_writers: int) -> Committer:
        """The committer for parallel instance ``writer_index``."""
