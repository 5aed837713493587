"""Stop-with-savepoint: end a running job so that it can be resumed, at any parallelism.

With ``--savepoint_dir`` (and checkpoints on), the driver process takes ``SIGUSR1`` (what
``headrace stop PID`` sends) as a request to stop: the first checkpoint that completes
after the request is copied into ``--savepoint_dir`` as a self-contained savepoint
(``<savepoint_dir>/chk-N``), the workers are stopped, and the run ends in state
``STOPPED``. Resume with ``--from_checkpoint <savepoint_dir>/chk-N``. Output a
two-phase-commit sink had pending at the savepoint is committed by the restored job if
the notification did not reach it before the stop.

>>> request = StopWithSavepoint("/tmp/savepoints")
>>> request.requested, request.check(None) is None
(False, True)
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any, Optional

from headrace.runners.state.checkpoint_storage import open_checkpoint_storage

LOG = logging.getLogger("headrace.stop")
STOP_SIGNAL = signal.SIGUSR1
#: How long the workers get to act on the savepoint's notification before they are stopped.
NOTIFY_GRACE = 0.5


class JobStopped(Exception):
    """The job stopped on request after writing savepoint ``location`` (not a failure:
    never restarted)."""

    def __init__(self, location: str) -> None:
        super().__init__(f"stopped with savepoint {location}")
        self.location = location


class StopWithSavepoint:
    """Watches for the stop request and, once a checkpoint taken after it completed,
    writes the savepoint and ends the run (:meth:`check`, called by the coordinator)."""

    def __init__(self, savepoint_dir: str, log: Any = LOG) -> None:
        self.savepoint_dir = savepoint_dir
        self.log = log
        self.requested = False
        self._first_id: Optional[int] = None
        self._previous: Any = None

    def request(self, *_: Any) -> None:
        """Ask for the stop (the signal handler; safe to call from anywhere)."""
        self.requested = True

    def install(self) -> bool:
        """Take :data:`STOP_SIGNAL` as the stop request; False when that cannot be done
        (not the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self._previous = signal.signal(STOP_SIGNAL, self.request)
        return True

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(STOP_SIGNAL, self._previous)
            self._previous = None

    def check(self, checkpoints: Any) -> None:
        """Called every coordinator turn with its checkpoint coordinator: raises
        :class:`JobStopped` once the savepoint is written."""
        if not self.requested or checkpoints is None:
            return
        if self._first_id is None:
            flight = checkpoints.in_flight
            self._first_id = flight.checkpoint_id if flight is not None else checkpoints.next_id
            self.log.info("stop requested: waiting for checkpoint %d to complete",
                          self._first_id)
        done = [s.checkpoint_id for s in checkpoints.completed if s.checkpoint_id >= self._first_id]
        if not done:
            return
        time.sleep(NOTIFY_GRACE)
        with open_checkpoint_storage(self.savepoint_dir) as target:
            checkpoints.storage.export_self_contained(done[0], target)
            location = f"{target.url.rstrip('/')}/chk-{done[0]}"
        self.log.warning("savepoint written to %s; the job stops (resume with "
                         "--from_checkpoint %s)", location, location)
        raise JobStopped(location)


def stop_with_savepoint(options: Any) -> Optional[StopWithSavepoint]:
    """The stop request handler ``--savepoint_dir`` asks for, installed (None without it).

    >>> from headrace.sdk.options import PipelineOptions
    >>> stop_with_savepoint(PipelineOptions([])) is None
    True
    >>> try:
    ...     stop_with_savepoint(PipelineOptions(["--savepoint_dir=/tmp/x"]))
    ... except ValueError as e:
    ...     print(e)
    --savepoint_dir needs --checkpoint_interval: a savepoint is a copy of a checkpoint
    """
    from headrace.sdk.options import CheckpointingOptions, OptionsError, RecoveryOptions

    savepoint_dir = options.view_as(RecoveryOptions).savepoint_dir
    if not savepoint_dir:
        return None
    if not options.view_as(CheckpointingOptions).checkpoint_interval:
        raise OptionsError("--savepoint_dir needs --checkpoint_interval: a savepoint is a copy "
                           "of a checkpoint")
    handler = StopWithSavepoint(savepoint_dir)
    if not handler.install():
        LOG.warning("--savepoint_dir: the pipeline does not run in the main thread, so "
                    "%s cannot stop it", STOP_SIGNAL.name)
    return handler
