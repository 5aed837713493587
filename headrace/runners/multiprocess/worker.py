"""A worker process: one subtask of every stage, until its inputs end or it fails."""
from __future__ import annotations

import ctypes
import os
import pickle
import signal
import threading
import traceback
import warnings
from typing import Any, Dict, List, Optional

import cloudpickle
from tblib import pickling_support

from headrace.runners.common.gc_tuning import throughput_gc
from headrace.runners.engine.checkpointing import SubtaskCheckpointer
from headrace.runners.engine.runtime import ExchangeSettings, SubtaskRuntime
from headrace.runners.engine.task import SubtaskGraph
from headrace.runners.engine.transport import Inbox, Outbox
from headrace.runners.multiprocess.forwarding import flush_output, forward_output
from headrace.runners.operators.base import close_all
from headrace.runners.operators.clock import ManualClock, WallClock
from headrace.sdk.metrics import SYSTEM_NAMESPACE, MetricName

#: Counter of the records each step emitted (the progress display's figure, kept in metrics).
RECORDS_OUT = MetricName(SYSTEM_NAMESPACE, "records_out")
_PR_SET_PDEATHSIG = 1
#: The coordinator's checkpoint commands: ``(kind, checkpoint id)``, pickled.
COMMANDS = ("trigger", "complete", "abort", "finish")
#: User code may print or log from its own threads while the main thread reports progress.
_SEND_LOCK = threading.Lock()


def _die_with_parent(parent_pid: Optional[int]) -> None:
    """Have the kernel kill this worker if its parent dies, so none is left behind.

    The parent is the coordinator (``parent_pid``), or a fork server (None), which ends
    with the coordinator."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: nothing ends a worker whose driver died
        pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the coordinator died before the request took effect


def send(connection: Any, message: Any) -> None:
    data = cloudpickle.dumps(message, protocol=5)
    with _SEND_LOCK:
        connection.send_bytes(data)


def worker_main(subtask: int, job: bytes, inbox_connections: Dict[int, Any],
                outbox_connections: Dict[int, Any], control: Any,
                settings: ExchangeSettings, inherited: List[Any],
                parent_pid: Optional[int]) -> None:
    """Entry point of worker ``subtask``: run its graph, report progress, then metrics.

    ``inherited`` are the other workers' pipe ends that the fork copied; they are closed
    first, so that only the owners hold them.
    """
    _die_with_parent(parent_pid)
    for connection in inherited:
        connection.close()
    # Ctrl-C reaches the whole process group: the coordinator alone decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _forward_warnings(control)
    forward_output(lambda message: send(control, message))
    try:
        plan, streaming, options, start = cloudpickle.loads(job)
        clock = ManualClock() if plan.has_test_stream() else WallClock()
        storage = start.storage
        graph = SubtaskGraph(plan, subtask, clock, streaming, None, options,
                             start.restored.get(subtask) if start.restored else None,
                             checkpointing=storage is not None)
        checkpointer = None
        if storage is not None:
            checkpointer = graph.checkpointer = SubtaskCheckpointer(
                plan.nodes, graph.operators, subtask, storage, lambda m: send(control, m))
            checkpointer.previous = dict(start.previous.get(subtask, {}))
        inboxes = {source: Inbox(c.fileno()) for source, c in inbox_connections.items()}
        outboxes = {dest: Outbox(c.fileno()) for dest, c in outbox_connections.items()}

        def on_control() -> None:
            while control.poll():
                message = control.recv_bytes()  # EOFError: the coordinator is gone
                command = _command(message) if checkpointer is not None else None
                if command is None:
                    raise SystemExit(f"worker {subtask} stopped by the coordinator: "
                                     f"{message!r}")
                kind, checkpoint_id = command
                if kind == "trigger":
                    graph.trigger_checkpoint(checkpoint_id)
                elif kind == "complete":
                    checkpointer.complete(checkpoint_id)
                elif kind == "abort":
                    checkpointer.abort(checkpoint_id)
                elif kind == "finish":
                    graph.release_end()

        sources_reported = False

        def every_turn() -> None:
            nonlocal sources_reported
            on_control()
            checkpointer.poll()
            if not sources_reported and graph.sources_finished():
                sources_reported = True
                send(control, ("sources_finished", subtask))

        runtime = SubtaskRuntime(graph, inboxes, outboxes, settings,
                                 lambda progress: send(control, ("progress", progress)),
                                 control.fileno(), on_control,
                                 every_turn=every_turn if checkpointer is not None else None)
        started = graph.start()
        try:
            with throughput_gc():
                runtime.run()
        finally:
            try:
                close_all(started)
            finally:
                if checkpointer is not None:
                    checkpointer.close()
        snapshots = []
        for operator in graph.operators.values():
            operator.metrics.counter(RECORDS_OUT).inc(operator.records_out)
            snapshots.append(operator.metrics.snapshot())
        flush_output()
        send(control, ("done", snapshots, runtime.progress()))
    except BaseException as exc:  # report everything, even SystemExit, then end quietly
        flush_output()
        send(control, ("error", _picklable(exc), traceback.format_exc()))
    finally:
        control.close()


def _command(message: bytes) -> Any:
    """A checkpoint command of the coordinator (``(kind, checkpoint id)``), or None."""
    try:
        command = pickle.loads(message)
    except Exception:
        return None
    if isinstance(command, tuple) and len(command) == 2 and command[0] in COMMANDS:
        return command
    return None


def _forward_warnings(control: Any) -> None:
    """Show warnings (e.g. from user code) where the user looks: in the coordinator."""
    def show(message: Any, category: Any, filename: str, lineno: int, *_: Any) -> None:
        send(control, ("warning", category, str(message), filename, lineno))

    warnings.showwarning = show


def _picklable(exc: BaseException) -> Any:
    """The exception with its traceback when it survives pickling (its type reaches the user)."""
    try:
        pickling_support.install(exc)
        pickle.loads(cloudpickle.dumps(exc))
        return exc
    except Exception:
        return None

