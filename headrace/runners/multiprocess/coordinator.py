"""The coordinator: starts the workers, watches them, shows progress, and always cleans up.

Workers are started with the ``multiprocess`` package; the plan (with the
user's code) is shipped to each once, as cloudpickle bytes. Every pair of
workers gets a pipe in each direction for data; each worker has a control
pipe to the coordinator for progress, its result or its error. The
coordinator waits on the control pipes and on the process sentinels, so a
worker that dies (even by SIGKILL) is noticed at once and the job fails with
a message naming it. Whatever happens, every worker is gone when
:meth:`Coordinator.run` returns or raises.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import warnings
from typing import Any, Dict, Iterator, List, Optional, Tuple

import cloudpickle
import multiprocess
import multiprocess.forkserver as multiprocess_forkserver
import multiprocess.spawn as multiprocess_spawn
import tblib.pickling_support  # noqa: F401  (unpickles the workers' tracebacks)
from multiprocess.connection import wait

from headrace.runners.engine.plan import FORWARD, PhysicalPlan
from headrace.runners.engine.runtime import ExchangeSettings
from headrace.runners.engine.snapshots import JobStart
from headrace.runners.engine.transport import enlarge_pipe
from headrace.runners.multiprocess import forwarding
from headrace.runners.multiprocess.checkpoint_coordinator import (
    CheckpointCoordinator,
    CheckpointSettings,
)
from headrace.runners.multiprocess.progress import ProgressDisplay, StageProgress
from headrace.runners.multiprocess.worker import worker_main
from headrace.sdk.options.state import StateBackendOptions
from headrace.sdk.timestamp import MIN_MICROS

#: How often the coordinator wakes without news (seconds); also the progress refresh.
TICK = 0.25
#: How long a worker gets to exit after SIGTERM before SIGKILL (seconds).
TERMINATE_GRACE = 2.0
#: How long a worker's report of a broken pipe waits for the peer's death to show (seconds).
PEER_DEATH_GRACE = 0.1


def _uses_rocksdb(options: Any) -> bool:
    return options is not None and options.view_as(StateBackendOptions).state_backend == "rocksdb"


def _rocksdb_used_here() -> bool:
    """Whether this process has opened RocksDB (whose background threads a fork would
    leave dead, hanging the child's first flush)."""
    module = sys.modules.get("headrace.runners.state.rocksdb.backend")
    return module is not None and module._OPENED_IN_PID == os.getpid()


@contextlib.contextmanager
def _without_main_import(active: bool) -> Iterator[None]:
    """Start a fork-server child without importing the driver's main module in it (as
    spawn would): the workers need none (user code travels cloudpickled) and a script
    without an ``if __name__ == "__main__"`` guard would run its pipeline again."""
    if not active:
        yield
        return
    original = multiprocess_spawn.get_preparation_data

    def preparation_data(name: str) -> Dict[str, Any]:
        data = original(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    multiprocess_spawn.get_preparation_data = preparation_data
    try:
        yield
    finally:
        multiprocess_spawn.get_preparation_data = original


class WorkerFailed(RuntimeError):
    """A worker process died without reporting an error of the user's code."""


class Coordinator:
    """Runs ``plan`` on ``plan.parallelism`` worker processes."""

    def __init__(self, plan: PhysicalPlan, streaming: bool, settings: ExchangeSettings,
                 display: ProgressDisplay, options: Any = None,
                 start: Optional[JobStart] = None,
                 checkpoints: Optional[CheckpointSettings] = None, job_id: str = "") -> None:
        self.plan = plan
        self.options = options
        self.start = start if start is not None else JobStart()
        self.checkpoint_settings = checkpoints
        self.job_id = job_id
        #: The checkpoint coordinator while the job runs with checkpoints (else None).
        self.checkpoints: Optional[CheckpointCoordinator] = None
        self._controls: List[Any] = []
        #: Stop-with-savepoint (``engine/stop.py``), checked every turn when set.
        self.stop_request: Any = None
        self.streaming = streaming
        self.settings = settings
        self.display = display
        self.processes: List[Any] = []
        self.progress: Dict[int, Dict[str, Any]] = {}
        self._last_backpressure: Dict[int, Tuple[float, float]] = {}

    def run(self) -> List[Any]:
        """Run the job to its end; returns every step's metric snapshots from every worker."""
        forking = not (_uses_rocksdb(self.options) and _rocksdb_used_here())
        context = multiprocess.get_context("fork" if forking else "forkserver")
        if not forking:
            # Workers come from a fresh interpreter: RocksDB's threads do not survive fork().
            context.set_forkserver_preload(["headrace.runners.multiprocess.worker"])
        parallelism = self.plan.parallelism
        job = cloudpickle.dumps((self.plan, self.streaming, self.options, self.start),
                               protocol=5)
        data_pipes = {(src, dst): context.Pipe(duplex=False)
                      for src in range(parallelism) for dst in range(parallelism) if src != dst}
        for _, writer in data_pipes.values():
            enlarge_pipe(writer.fileno())
        controls = [context.Pipe() for _ in range(parallelism)]
        try:
            for subtask in range(parallelism):
                inboxes = {src: data_pipes[(src, subtask)][0]
                           for src in range(parallelism) if src != subtask}
                outboxes = {dst: data_pipes[(subtask, dst)][1]
                            for dst in range(parallelism) if dst != subtask}
                own = {id(c) for c in (*inboxes.values(), *outboxes.values(), controls[subtask][1])}
                # A fork inherits every open pipe end; the worker closes the ones it does not
                # own, so that a peer's death shows as end-of-file or a broken pipe.
                inherited = [c for pair in (*data_pipes.values(), *controls) for c in pair
                             if id(c) not in own] if forking else []
                process = context.Process(
                    target=worker_main, name=f"headrace-worker-{subtask}", daemon=True,
                    args=(subtask, job, inboxes, outboxes, controls[subtask][1], self.settings,
                          inherited, os.getpid() if forking else None))
                with _without_main_import(not forking):
                    process.start()
                self.processes.append(process)
            for reader, writer in data_pipes.values():
                reader.close()
                writer.close()
            for _, worker_end in controls:
                worker_end.close()
            self._controls = [coordinator_end for coordinator_end, _ in controls]
            if self.start.storage is not None and self.checkpoint_settings is not None:
                self.checkpoints = CheckpointCoordinator(
                    self.start.storage, self.checkpoint_settings, parallelism, self._command,
                    self.job_id, {"parallelism": parallelism,
                                  "max_parallelism": self.plan.max_parallelism},
                    self.start.first_checkpoint_id)
            snapshots = self._watch(self._controls)
            if self.checkpoints is not None:
                snapshots.append(self.checkpoints.metrics.snapshot())
            return snapshots
        finally:
            if self.checkpoints is not None:
                self.checkpoints.close()
            self.stop()
            if not forking:
                multiprocess_forkserver._forkserver._stop()  # no process left behind
            for coordinator_end, _ in controls:
                coordinator_end.close()
            self.display.close()

    def _watch(self, controls: List[Any]) -> List[Any]:
        snapshots: Dict[int, List[Any]] = {}
        sentinels = {process.sentinel: subtask for subtask, process in enumerate(self.processes)}
        by_connection = {id(conn): subtask for subtask, conn in enumerate(controls)}
        checkpoints = self.checkpoints
        while len(snapshots) < len(self.processes):
            timeout = TICK if checkpoints is None else min(TICK, checkpoints.seconds_to_next())
            ready = wait([c for i, c in enumerate(controls) if i not in snapshots]
                         + [s for s, i in sentinels.items() if i not in snapshots], timeout)
            for item in ready:
                subtask = by_connection.get(id(item))
                if subtask is not None:
                    self._receive(subtask, controls[subtask], snapshots)
            for item in ready:
                subtask = sentinels.get(item)
                if subtask is not None and subtask not in snapshots:
                    # Its last words (output, then its result) arrived before its exit.
                    while subtask not in snapshots and controls[subtask].poll():
                        if not self._receive(subtask, controls[subtask], snapshots):
                            break
                    if subtask not in snapshots:
                        self._fail_dead_worker(subtask)
            if checkpoints is not None:
                checkpoints.tick()
            if self.stop_request is not None:
                self.stop_request.check(checkpoints)
            self._show_progress()
        return [snapshot for subtask in sorted(snapshots) for snapshot in snapshots[subtask]]

    def _receive(self, subtask: int, connection: Any, snapshots: Dict[int, List[Any]]) -> bool:
        """Handle one message from worker ``subtask``; False once its pipe is closed."""
        try:
            message = cloudpickle.loads(connection.recv_bytes())
        except (EOFError, OSError):
            return False  # the sentinel tells how it ended
        kind = message[0]
        if kind == "progress":
            self.progress[subtask] = message[1]
        elif kind == "warning":
            category, text, filename, lineno = message[1:]
            warnings.warn_explicit(text, category, filename, lineno)
        elif kind in ("ack", "decline", "sources_finished"):
            if self.checkpoints is not None:
                self.checkpoints.on_message(message)
        elif kind in forwarding.KINDS:
            forwarding.replay(message)
        elif kind == "done":
            snapshots[subtask] = message[1]
            self.progress[subtask] = message[2]
        elif kind == "error":
            exc, text = message[1], message[2]
            if exc is None or isinstance(exc, OSError):
                # A broken pipe usually means a peer died: name the dead worker, not the witness.
                self._blame_dead_peer(subtask)
            if exc is None:
                raise WorkerFailed(f"headrace worker {subtask} failed:\n{text}")
            raise exc  # with the worker's traceback (tblib), so the user's frames show
        return True

    def _command(self, subtask: int, message: bytes) -> None:
        """A checkpoint command to worker ``subtask`` (one that already finished needs none)."""
        try:
            self._controls[subtask].send_bytes(message)
        except OSError:
            pass  # it is gone: its sentinel tells how

    def _blame_dead_peer(self, witness: int) -> None:
        others = {p.sentinel: i for i, p in enumerate(self.processes) if i != witness}
        for sentinel in wait(list(others), PEER_DEATH_GRACE):
            if self.processes[others[sentinel]].exitcode:
                self._fail_dead_worker(others[sentinel])

    def _fail_dead_worker(self, subtask: int) -> None:
        raise WorkerFailed(self._death_message(subtask))

    def _death_message(self, subtask: int) -> str:
        process = self.processes[subtask]
        process.join(TICK)
        code = process.exitcode
        how = (f"killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exit code {code}")
        return (f"headrace worker {subtask} of {len(self.processes)} (pid {process.pid}) died "
                f"unexpectedly ({how}); the job failed (--restart_strategy decides whether it "
                "restarts from its latest checkpoint).")

    def stop(self) -> None:
        """End every worker still running: SIGTERM, then SIGKILL after a grace period."""
        alive = [p for p in self.processes if p.is_alive()]
        for process in alive:
            process.terminate()
        deadline = time.monotonic() + TERMINATE_GRACE
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in alive:
            if process.is_alive():
                process.kill()
                process.join(TERMINATE_GRACE)
        for process in self.processes:
            process.join(0)

    def stage_progress(self) -> List[StageProgress]:
        """The figures of every stage, summed (records) or combined (watermarks) over workers."""
        stages = []
        now = time.monotonic()
        backpressure = self._backpressure(now)
        for stage in self.plan.stages:
            last = stage.node_ids[-1]
            records, watermarks = 0, []
            for progress in self.progress.values():
                count, watermark = progress["nodes"][last]
                records += count
                watermarks.append(watermark)
            exchanging = any(edge.partitioning != FORWARD for edge in self.plan.consumers(last))
            watermark: Optional[int] = min(watermarks) if watermarks else None
            if watermark == MIN_MICROS:
                watermark = None
            stages.append(StageProgress(stage.name, records, watermark,
                                        backpressure if exchanging else 0.0))
        return stages

    def _backpressure(self, now: float) -> float:
        """The largest share of the last interval any worker spent with its sources paused."""
        worst = 0.0
        for subtask, progress in self.progress.items():
            total = progress["backpressured_time"]
            then, before = self._last_backpressure.get(subtask, (now - TICK, 0.0))
            if now > then:
                worst = max(worst, min(1.0, (total - before) / (now - then)))
            self._last_backpressure[subtask] = (now, total)
        return worst

    def _show_progress(self) -> None:
        if self.progress:
            self.display.update(self.stage_progress())

