"""Root operators: reading sources split by split, and replaying a TestStream.

In streaming mode each split keeps its own watermark (from the watermark
strategy) and idleness; the source forwards the minimum over its active
splits, or declares itself idle when every unfinished split is idle. A
source with a ``discovery_interval`` is asked for new splits while it runs;
this reader opens the ones it owns (``assign_splits``) and has not seen.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from headrace.runners.common.errors import reraise_with_label
from headrace.runners.operators.base import Batch, Operator, to_windowed_values
from headrace.sdk.io_base import SplitReader, assign_splits
from headrace.sdk.metrics import metrics_scope
from headrace.sdk.test_stream import ElementEvent, ProcessingTimeEvent, TestStream, WatermarkEvent
from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS
from headrace.sdk.watermarks import WatermarkStrategy
from headrace.sdk.window import GLOBAL_WINDOW
from headrace.sdk.windowed_value import WindowedValue


class _SplitState:
    def __init__(self, reader: Any, strategy: Optional[WatermarkStrategy], now: int,
                 index: Optional[int] = None, split_id: Optional[str] = None) -> None:
        self.reader = reader
        #: Where the split is in ``source.split(parallelism)`` (None: discovered), and its id:
        #: how a checkpoint names it.
        self.index = index
        self.split_id = split_id
        self.strategy = strategy
        self.generator = strategy.create_generator() if strategy is not None else None
        self.last_data = now
        self.idle = False
        self.finished = False

    def watermark(self) -> int:
        if self.finished:
            return MAX_MICROS
        return self.generator.current_watermark() if self.generator else MIN_MICROS


class ReadOperator(Operator):
    """Reads a source; ``drain`` for batch execution, ``poll`` for streaming."""

    BATCH = 1024

    def __init__(self, label: str, source: Any, watermark_strategy: Any = None) -> None:
        super().__init__(label, 0)
        self.source = source
        self.strategy = (watermark_strategy if watermark_strategy is not None
                         else source.default_watermark_strategy())
        self.splits: List[_SplitState] = []
        self.finished = False
        #: This reader's place among the source's parallel readers (set by the engine).
        self.subtask, self.parallelism = 0, 1
        interval = getattr(source, "discovery_interval", None)
        self._discovery_micros = int(interval * 1e6) if interval else None
        self._next_discovery = 0
        self._known_ids: set = set()
        #: Split entries to resume from (``restore_state``), and the positions of the
        #: checkpoints not yet known complete (``notify_checkpoint_complete``).
        self._restored: Optional[List[Any]] = None
        self._checkpoint_positions: Dict[int, List[Any]] = {}

    def open(self) -> None:
        """Open every split of the source (one reader for all of it)."""
        self.open_splits()

    def open_splits(self, make_splits: Optional[Callable[[], List[Any]]] = None) -> None:
        """Open this reader's share of the source (``assign_splits`` of
        ``source.split(parallelism)``), or the splits ``make_splits`` returns; after
        :meth:`restore_state`, the splits of the snapshots, at their positions."""
        try:
            if self._restored is not None:
                self._open_restored(self._restored)
            else:
                if make_splits is None:
                    every = self.source.split(self.parallelism)
                    mine = {id(s) for s in assign_splits(every, self.subtask, self.parallelism)}
                    indexed = [(i, s) for i, s in enumerate(every) if id(s) in mine]
                else:
                    indexed = list(enumerate(make_splits()))
                self._known_ids = {split.split_id() for _, split in indexed}
                self.splits = [_SplitState(split.open(), self.strategy, self.clock.now(), index,
                                           split.split_id()) for index, split in indexed]
            if self.checkpointing:
                self._refuse_positionless_readers()
        except Exception as exc:
            reraise_with_label(exc, self.label)
        if self._discovery_micros is not None:
            self._next_discovery = self.clock.now() + self._discovery_micros

    # -- checkpoints ----------------------------------------------------------------------------
    def _refuse_positionless_readers(self) -> None:
        """A reader that cannot say where it is would be reopened from its start after a
        restore, replaying what the checkpoint already holds: refuse it up front."""
        for split in self.splits:
            if type(split.reader).position is SplitReader.position:
                raise ValueError(
                    f"{self.source.display_name()} cannot be checkpointed: its split reader "
                    f"{type(split.reader).__name__} does not report positions "
                    "(SplitReader.position); run without --checkpoint_interval")

    def snapshot_state(self, checkpoint_id: int) -> Any:
        """Every split this reader has (discovered ones too): where it is, by its place in
        ``source.split(parallelism)`` or its id, its position and whether it finished."""
        entries = []
        positions = []
        try:
            for split in self.splits:
                position = None if split.finished else split.reader.position()
                entries.append({"index": split.index, "id": split.split_id,
                                "position": position, "finished": split.finished})
                positions.append((split, position))
        except Exception as exc:
            reraise_with_label(exc, self.label)
        self._checkpoint_positions[checkpoint_id] = positions
        return {"parallelism": self.parallelism, "splits": entries}

    def restore_state(self, snapshots: List[Any]) -> None:
        """Read, from :meth:`open_splits` on, the splits of ``snapshots`` from their
        positions (none when there are none: the splits are other subtasks')."""
        self._restored = [entry for snapshot in snapshots if snapshot is not None
                          for entry in ((snapshot["parallelism"], e) for e in snapshot["splits"])]

    def _open_restored(self, entries: List[Any]) -> None:
        by_parallelism: Dict[int, List[Any]] = {}
        discovered: Optional[Dict[Any, Any]] = None
        now = self.clock.now()
        self.splits = []
        for parallelism, entry in entries:
            self._known_ids.add(entry["id"])
            if entry["finished"]:
                continue
            if entry["index"] is not None:
                every = by_parallelism.get(parallelism)
                if every is None:
                    every = by_parallelism[parallelism] = self.source.split(parallelism)
                split = every[entry["index"]]
            else:
                if discovered is None:
                    discovered = {s.split_id(): s for s in self.source.discover_splits()}
                split = discovered.get(entry["id"])
                if split is None:
                    raise ValueError(f"split {entry['id']!r} of the checkpoint is gone from "
                                     f"{self.source.display_name()}")
            self.splits.append(_SplitState(split.open(entry["position"]), self.strategy, now,
                                           entry["index"], entry["id"]))

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Tell each split's reader that the position it had at ``checkpoint_id`` is
        durable (a Kafka reader commits it to its consumer group)."""
        done = [n for n in self._checkpoint_positions if n <= checkpoint_id]
        if not done:
            return
        positions = self._checkpoint_positions[max(done)]
        for n in done:
            del self._checkpoint_positions[n]
        try:
            for split, position in positions:
                notify = getattr(split.reader, "notify_checkpoint_complete", None)
                if notify is not None and not split.finished and position is not None:
                    notify(position)
        except Exception as exc:
            reraise_with_label(exc, self.label)

    def _discover(self, now: int) -> None:
        """Open the splits that appeared since the last look and belong to this reader."""
        self._next_discovery = now + self._discovery_micros
        try:
            found = assign_splits(self.source.discover_splits(), self.subtask, self.parallelism)
            for split in found:
                split_id = split.split_id()
                if split_id is not None and split_id not in self._known_ids:
                    self._known_ids.add(split_id)
                    self.splits.append(_SplitState(split.open(), self.strategy, now, None,
                                                   split_id))
        except Exception as exc:
            reraise_with_label(exc, self.label)

    def close(self) -> None:
        for split in self.splits:
            if not split.finished:
                split.finished = True
                split.reader.close()

    def _read(self, split: _SplitState) -> Optional[Batch]:
        try:
            with metrics_scope(self.metrics):  # metrics the source's code records are this step's
                elements = split.reader.read_batch(self.BATCH)
            if elements is None:
                split.finished = True
                split.reader.close()
                return None
            batch = to_windowed_values(elements)
            if split.strategy is not None and batch:
                strategy, generator = split.strategy, split.generator
                for wv in batch:
                    if strategy.timestamp_assigner is not None:
                        wv.timestamp_micros = strategy.assign_timestamp(wv.value,
                                                                        wv.timestamp_micros)
                    generator.on_event(wv.timestamp_micros)
            return batch
        except Exception as exc:
            reraise_with_label(exc, self.label)

    def drain(self) -> None:
        """Read every split to its end, then declare the input complete (batch execution)."""
        for split in self.splits:
            while True:
                batch = self._read(split)
                if batch is None:
                    break
                self.emit_batch(None, batch)
        self.finished = True
        self.forward_watermark(MAX_MICROS)

    def poll(self) -> bool:
        """Read one batch from each unfinished split; update watermarks. True if data came."""
        got_data = False
        now = self.clock.now()
        if self._discovery_micros is not None and now >= self._next_discovery:
            self._discover(now)
        for split in self.splits:
            if split.finished:
                continue
            batch = self._read(split)
            if batch:
                got_data = True
                split.last_data = now
                split.idle = False
                self.emit_batch(None, batch)
        self._mark_idle_splits(now)
        self._update_watermark()
        return got_data

    def _mark_idle_splits(self, now: int) -> None:
        if self.strategy is None or self.strategy.idle_timeout_micros is None:
            return
        for split in self.splits:
            if not split.finished and not split.idle:
                split.idle = now - split.last_data >= self.strategy.idle_timeout_micros

    def on_processing_time(self, now: int) -> None:
        """An idle timeout expired between polls: stop holding the watermark back now (and
        look for new splits when that is due)."""
        if not self.finished:
            if self._discovery_micros is not None and now >= self._next_discovery:
                self._discover(now)
            self._mark_idle_splits(now)
            self._update_watermark()

    def _update_watermark(self) -> None:
        # An unbounded discovering reader without splits is idle, not finished: splits may
        # come. (A bounded one ends with its last split; it discovers only while reading.)
        waiting = (self._discovery_micros is not None and not self.source.is_bounded
                   and not self.splits)
        if not waiting and all(split.finished for split in self.splits):
            self.finished = True
            self.forward_watermark(MAX_MICROS)
            return
        active = [split.watermark() for split in self.splits
                  if not split.finished and not split.idle]
        self._set_output_idle(not active)
        if active:
            self.forward_watermark(min(active))

    def next_processing_time(self) -> Optional[int]:
        """When an idle timeout could next expire: the runner must poll again by then."""
        discovering = self._discovery_micros is not None and not self.finished
        times = [self._next_discovery] if discovering else []
        if self.strategy is not None and self.strategy.idle_timeout_micros is not None:
            times += [split.last_data + self.strategy.idle_timeout_micros
                      for split in self.splits if not split.finished and not split.idle]
        return min(times) if times else None


class TestStreamOperator(Operator):
    """Replays a TestStream's events; processing-time events advance the manual clock."""

    __test__ = False

    def __init__(self, label: str, transform: TestStream) -> None:
        super().__init__(label, 0)
        self.events = list(transform.events)
        self.position = 0
        self.tag_watermarks = {tag: MIN_MICROS for tag in transform.output_tags or {None}}
        self.single_output = len(self.tag_watermarks) == 1

    @property
    def finished(self) -> bool:
        return self.position >= len(self.events)

    def _receivers(self, tag: Optional[str]) -> list:
        # A single output is registered under its own tag, which may be None or a name.
        if self.single_output:
            return [r for receivers in self.receivers.values() for r in receivers]
        return self.receivers.get(tag, [])

    def step(self) -> Optional[int]:
        """Replay the next event; returns the processing time to advance by, if any."""
        event = self.events[self.position]
        self.position += 1
        if isinstance(event, ElementEvent):
            batch = [WindowedValue.of(value, micros, (GLOBAL_WINDOW,))
                     for value, micros in event.timestamped_values]
            for receiver, index in self._receivers(event.tag):
                receiver.process_batch(index, batch)
        elif isinstance(event, WatermarkEvent):
            self.tag_watermarks[event.tag] = event.new_watermark_micros
            for receiver, index in self._receivers(event.tag):
                receiver.on_watermark(index, event.new_watermark_micros)
            self.output_watermark = min(self.tag_watermarks.values())
        elif isinstance(event, ProcessingTimeEvent):
            return event.advance_by_micros
        return None
