"""Named points in the checkpoint protocol where crash tests kill a process (test-only).

``HEADRACE_TEST_PAUSE_AT`` lists point names (comma-separated). A process reaching one
of them for checkpoint N (once per N and point, and only when N is a multiple of
``HEADRACE_TEST_PAUSE_EVERY``, default 1, so that most checkpoints still complete) creates
``<HEADRACE_TEST_PAUSE_DIR>/<point>.<pid>.<N>`` and sleeps ``HEADRACE_TEST_PAUSE_SECONDS``
(default 1), so that a test watching the directory can SIGKILL it, or another process,
exactly there. Unset (always, outside tests), :func:`crash_point` is one dictionary lookup.

>>> import os, tempfile
>>> directory = tempfile.mkdtemp()
>>> os.environ.update(HEADRACE_TEST_PAUSE_AT="after-upload", HEADRACE_TEST_PAUSE_DIR=directory,
...                   HEADRACE_TEST_PAUSE_SECONDS="0")
>>> crash_point("before-upload", 1), os.listdir(directory)
(None, [])
>>> crash_point("after-upload", 7); crash_point("after-upload", 7)
>>> [name.split(".")[::2] for name in os.listdir(directory)]
[['after-upload', '7']]
>>> for name in ("HEADRACE_TEST_PAUSE_AT", "HEADRACE_TEST_PAUSE_DIR",
...              "HEADRACE_TEST_PAUSE_SECONDS"):
...     del os.environ[name]
"""
from __future__ import annotations

import os
import time
from typing import Set, Tuple

ENV_POINTS = "HEADRACE_TEST_PAUSE_AT"
ENV_DIR = "HEADRACE_TEST_PAUSE_DIR"
ENV_SECONDS = "HEADRACE_TEST_PAUSE_SECONDS"
ENV_EVERY = "HEADRACE_TEST_PAUSE_EVERY"
_paused: Set[Tuple[str, int]] = set()


def crash_point(name: str, checkpoint_id: int) -> None:
    """Pause at point ``name`` of checkpoint ``checkpoint_id`` if the environment asks for
    it (see the module docstring)."""
    points = os.environ.get(ENV_POINTS)
    if not points or name not in points.split(","):
        return
    if checkpoint_id % int(os.environ.get(ENV_EVERY, "1")) or (name, checkpoint_id) in _paused:
        return
    _paused.add((name, checkpoint_id))
    directory = os.environ.get(ENV_DIR)
    if directory:
        path = os.path.join(directory, f"{name}.{os.getpid()}.{checkpoint_id}")
        with open(path, "w"):
            pass
    time.sleep(float(os.environ.get(ENV_SECONDS, "1")))
