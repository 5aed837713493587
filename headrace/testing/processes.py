"""Live processes as Linux's /proc shows them, for tests that kill workers and check that
none is left behind.

>>> import os
>>> os.getpid() in live_children(os.getppid()) or os.getppid() == 0
True
"""
from __future__ import annotations

import os
from typing import List


def live_children(parent: int) -> List[int]:
    """Process ids whose parent is ``parent`` and that have not exited (zombies excluded),
    sorted; an empty list where /proc is missing."""
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                # The command name may contain spaces and parentheses: fields follow the last ")".
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            found.append(int(name))
    return sorted(found)
