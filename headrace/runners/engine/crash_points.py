"""Named points in the checkpoint protocol where crash tests kill a process (test-only).

``HEADRACE_TEST_PAUSE_AT`` lists point names (comma-separated). A process reaching one
of them creates ``<HEADRACE_TEST_PAUSE_DIR>/<point>.<pid>.<n>`` and sleeps
``HEADRACE_TEST_PAUSE_SECONDS`` (default 1), so that a test watching the directory
can SIGKILL it, or another process, exactly there. Unset (always, outside tests),
:func:`crash_point` is one dictionary lookup.

>>> import os, tempfile
>>> directory = tempfile.mkdtemp()
>>> os.environ.update(HEADRACE_TEST_PAUSE_AT="after-upload", HEADRACE_TEST_PAUSE_DIR=directory,
...                   HEADRACE_TEST_PAUSE_SECONDS="0")
>>> crash_point("before-upload"), os.listdir(directory)
(None, [])
>>> crash_point("after-upload"); [name.split(".")[0] for name in os.listdir(directory)]
['after-upload']
>>> for name in ("HEADRACE_TEST_PAUSE_AT", "HEADRACE_TEST_PAUSE_DIR",
...              "HEADRACE_TEST_PAUSE_SECONDS"):
...     del os.environ[name]
"""
from __future__ import annotations

import itertools
import os
import time

ENV_POINTS = "HEADRACE_TEST_PAUSE_AT"
ENV_DIR = "HEADRACE_TEST_PAUSE_DIR"
ENV_SECONDS = "HEADRACE_TEST_PAUSE_SECONDS"
_counter = itertools.count()


def crash_point(name: str) -> None:
    """Pause at point ``name`` if the environment asks for it (see the module docstring)."""
    points = os.environ.get(ENV_POINTS)
    if not points or name not in points.split(","):
        return
    directory = os.environ.get(ENV_DIR)
    if directory:
        path = os.path.join(directory, f"{name}.{os.getpid()}.{next(_counter)}")
        with open(path, "w"):
            pass
    time.sleep(float(os.environ.get(ENV_SECONDS, "1")))
