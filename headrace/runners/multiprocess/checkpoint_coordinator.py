"""The coordinator's side of checkpoints: trigger, collect acknowledgements, commit, notify.

Checkpoint N is triggered every ``--checkpoint_interval`` seconds (never sooner than
``--min_pause_between_checkpoints`` after the previous one ended, at most one in
flight): every worker's sources snapshot their positions and emit barrier N. Each
worker acknowledges N with the state handles of all its operators once they are
uploaded. When every worker has, N's ``_metadata`` is committed (N is complete),
retention runs, and every worker is told, so its operators get
``notify_checkpoint_complete(N)``. A worker that could not upload declines N; N not
complete within ``--checkpoint_timeout`` is aborted too: logged, its files discarded,
the workers told to forget it, and the next checkpoint comes at the next interval.

At the end of input (Flink's final checkpoint): once every worker reported its
sources finished, one more checkpoint is triggered (retried until one completes);
after its notifications the workers are told to ``finish``, which sends the ends
held back, and the job ends.

Each checkpoint's figures go to the job's metrics (step ``headrace/checkpoints``):
counters ``checkpoints_completed`` and ``checkpoints_aborted``, distributions
``checkpoint_duration_ms``, ``checkpoint_sync_pause_ms`` (per subtask: the time its
operators were stopped for their synchronous snapshots), ``checkpoint_size_bytes``
(full) and ``checkpoint_incremental_size_bytes``, and a gauge ``last_checkpoint_id``;
and to a debug log line.
"""
from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from headrace.runners.engine.crash_points import crash_point
from headrace.runners.state.checkpoint_storage import CheckpointMetadata, CheckpointStorage
from headrace.sdk.metrics import SYSTEM_NAMESPACE, MetricName, MetricsContainer

_LOG = logging.getLogger(__name__)
#: The metrics step of the job's checkpoint figures.
CHECKPOINTS_STEP = "headrace/checkpoints"
COMPLETED = MetricName(SYSTEM_NAMESPACE, "checkpoints_completed")
ABORTED = MetricName(SYSTEM_NAMESPACE, "checkpoints_aborted")
DURATION = MetricName(SYSTEM_NAMESPACE, "checkpoint_duration_ms")
SYNC_PAUSE = MetricName(SYSTEM_NAMESPACE, "checkpoint_sync_pause_ms")
SIZE = MetricName(SYSTEM_NAMESPACE, "checkpoint_size_bytes")
INCREMENTAL_SIZE = MetricName(SYSTEM_NAMESPACE, "checkpoint_incremental_size_bytes")
LAST_ID = MetricName(SYSTEM_NAMESPACE, "last_checkpoint_id")


@dataclass
class CheckpointSettings:
    """``--checkpoint_interval`` and friends, in seconds."""

    interval: float
    min_pause: float = 0.0
    timeout: float = 600.0


@dataclass
class CheckpointStats:
    """What one completed checkpoint cost."""

    checkpoint_id: int
    duration: float
    sync_pause: Dict[int, float]
    total_size: int
    incremental_size: int
    final: bool = False


@dataclass
class _InFlight:
    checkpoint_id: int
    started: float
    final: bool
    acks: Dict[int, List[Any]] = field(default_factory=dict)
    sync_pause: Dict[int, float] = field(default_factory=dict)


class CheckpointCoordinator:
    """Checkpoints of one job on ``parallelism`` workers; ``send(subtask, command)`` sends
    a command to a worker."""

    def __init__(self, storage: CheckpointStorage, settings: CheckpointSettings,
                 parallelism: int, send: Callable[[int, bytes], None], job_id: str = "",
                 properties: Optional[Dict[str, Any]] = None, first_id: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self.settings = settings
        self.parallelism = parallelism
        self.send = send
        self.job_id = job_id
        self.properties = dict(properties or {})
        self.clock = clock
        self.next_id = max(first_id, storage.next_checkpoint_id())
        self.in_flight: Optional[_InFlight] = None
        self.metrics = MetricsContainer(CHECKPOINTS_STEP)
        self.completed: List[CheckpointStats] = []
        self.aborted: List[int] = []
        now = clock()
        self._last_trigger = now
        self._last_end = now - settings.min_pause
        self._sources_finished: set = set()
        #: The final checkpoint completed and the workers were told to finish.
        self.finished = False

    # -- timing ---------------------------------------------------------------------------------
    def _final_due(self) -> bool:
        return len(self._sources_finished) == self.parallelism and not self.finished

    def _due_at(self) -> float:
        """When the next checkpoint may be triggered (nothing in flight)."""
        earliest = self._last_end + self.settings.min_pause
        if self._final_due():
            return earliest
        return max(earliest, self._last_trigger + self.settings.interval)

    def tick(self) -> None:
        """Abort what timed out, trigger what is due (call often)."""
        now = self.clock()
        flight = self.in_flight
        if flight is not None and now - flight.started > self.settings.timeout:
            self._abort(f"it did not complete within --checkpoint_timeout="
                        f"{self.settings.timeout:g}s")
        if self.in_flight is None and not self.finished and now >= self._due_at():
            self._trigger(now)

    def seconds_to_next(self) -> float:
        """How long the coordinator may wait before :meth:`tick` has something to do."""
        now = self.clock()
        if self.finished:
            return float("inf")
        if self.in_flight is not None:
            return max(0.0, self.in_flight.started + self.settings.timeout - now)
        return max(0.0, self._due_at() - now)

    def _trigger(self, now: float) -> None:
        checkpoint_id = self.next_id
        self.next_id += 1
        self.in_flight = _InFlight(checkpoint_id, now, final=self._final_due())
        self._last_trigger = now
        self._broadcast(("trigger", checkpoint_id))

    def _broadcast(self, command: tuple) -> None:
        message = pickle.dumps(command, protocol=5)
        for subtask in range(self.parallelism):
            self.send(subtask, message)

    # -- messages from the workers --------------------------------------------------------------
    def on_message(self, message: tuple) -> None:
        """An ``ack``, ``decline`` or ``sources_finished`` message of a worker."""
        kind = message[0]
        if kind == "sources_finished":
            self._sources_finished.add(message[1])
            return
        checkpoint_id, subtask = message[1], message[2]
        flight = self.in_flight
        if flight is None or flight.checkpoint_id != checkpoint_id:
            return  # of a checkpoint already aborted
        if kind == "decline":
            self._abort(message[3])
            return
        handles, stats = message[3], message[4]
        flight.acks[subtask] = handles
        flight.sync_pause[subtask] = stats["sync_seconds"]
        if len(flight.acks) == self.parallelism:
            self._commit(flight)

    def _commit(self, flight: _InFlight) -> None:
        tasks = [handle for subtask in sorted(flight.acks) for handle in flight.acks[subtask]]
        metadata = CheckpointMetadata(flight.checkpoint_id, tasks, job_id=self.job_id,
                                      properties=self.properties)
        try:
            self.storage.commit(metadata)
        except Exception as exc:
            self._abort(f"its commit failed: {type(exc).__name__}: {exc}")
            return
        now = self.clock()
        self.in_flight = None
        self._last_end = now
        stats = CheckpointStats(flight.checkpoint_id, now - flight.started, flight.sync_pause,
                                metadata.total_size, metadata.incremental_size, flight.final)
        self.completed.append(stats)
        self._record(stats)
        crash_point("after-commit", flight.checkpoint_id)
        self._broadcast(("complete", flight.checkpoint_id))
        if flight.final:
            self.finished = True
            self._broadcast(("finish", flight.checkpoint_id))

    def _record(self, stats: CheckpointStats) -> None:
        metrics = self.metrics
        metrics.counter(COMPLETED).inc()
        metrics.distribution(DURATION).update(int(stats.duration * 1000))
        for pause in stats.sync_pause.values():
            metrics.distribution(SYNC_PAUSE).update(int(pause * 1000))
        metrics.distribution(SIZE).update(stats.total_size)
        metrics.distribution(INCREMENTAL_SIZE).update(stats.incremental_size)
        metrics.gauge(LAST_ID).set(stats.checkpoint_id)
        _LOG.debug("checkpoint %d complete%s in %.3fs: sync pause per subtask %s ms, "
                   "size %d bytes, incremental %d bytes", stats.checkpoint_id,
                   " (final)" if stats.final else "", stats.duration,
                   {s: round(p * 1000, 2) for s, p in sorted(stats.sync_pause.items())},
                   stats.total_size, stats.incremental_size)

    def _abort(self, reason: str) -> None:
        flight, self.in_flight = self.in_flight, None
        if flight is None:
            return
        self._last_end = self.clock()
        self.aborted.append(flight.checkpoint_id)
        self.metrics.counter(ABORTED).inc()
        _LOG.warning("checkpoint %d aborted: %s; the next one follows", flight.checkpoint_id,
                     reason)
        self._broadcast(("abort", flight.checkpoint_id))
        try:
            self.storage.discard(flight.checkpoint_id)
        except Exception as exc:  # retention collects what is left
            _LOG.warning("checkpoint %d: discarding its files failed: %s", flight.checkpoint_id,
                         exc)

    def close(self) -> None:
        self.storage.close()
