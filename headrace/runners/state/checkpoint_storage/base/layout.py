"""Where things live under a checkpoint storage root (the same layout locally and on S3).

::

    chk-<N>/_metadata            written last, atomically: its presence makes N complete
    chk-<N>/<op>-<i>-<u>.pack    the small private files of subtask i of operator op
    chk-<N>/<op>-<i>-<u>-<name>  a large private file (or any file of a self-contained N)
    shared/<N>-<u>-<name>        an immutable file first uploaded by checkpoint N

``<u>`` is random, so a retried or concurrent upload never overwrites another's
file. The checkpoint id in a shared file's name lets garbage collection tell
files of checkpoints still in flight (id above the latest complete one) from
orphans.

>>> metadata_key(7)
'chk-7/_metadata'
>>> checkpoint_id_of("chk-7/_metadata"), shared_creator_of("shared/5-0a1b-000009.sst")
(7, 5)
>>> safe_name("Count/ParDo(x)")
'Count_ParDo_x_'
"""
from __future__ import annotations

import re
import uuid
from typing import Optional

CHECKPOINT_PREFIX = "chk-"
SHARED_PREFIX = "shared/"
METADATA_NAME = "_metadata"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_CHECKPOINT_KEY = re.compile(r"^chk-(\d+)/")
_SHARED_KEY = re.compile(r"^shared/(\d+)-")


def safe_name(name: str, limit: int = 60) -> str:
    """A name usable in a file name and an S3 key (readability only: uniqueness comes
    from the random part of the key)."""
    return _UNSAFE.sub("_", name)[-limit:] or "_"


def checkpoint_prefix(checkpoint_id: int) -> str:
    return f"{CHECKPOINT_PREFIX}{checkpoint_id}/"


def metadata_key(checkpoint_id: int) -> str:
    return f"{checkpoint_prefix(checkpoint_id)}{METADATA_NAME}"


def shared_key(checkpoint_id: int, name: str) -> str:
    return f"{SHARED_PREFIX}{checkpoint_id}-{uuid.uuid4().hex[:12]}-{safe_name(name)}"


def private_key(checkpoint_id: int, operator_id: str, subtask_index: int, name: str) -> str:
    return (f"{checkpoint_prefix(checkpoint_id)}{safe_name(operator_id)}-{subtask_index}-"
            f"{uuid.uuid4().hex[:8]}-{safe_name(name)}")


def pack_key(checkpoint_id: int, operator_id: str, subtask_index: int) -> str:
    return (f"{checkpoint_prefix(checkpoint_id)}{safe_name(operator_id)}-{subtask_index}-"
            f"{uuid.uuid4().hex[:8]}.pack")


def checkpoint_id_of(key: str) -> Optional[int]:
    """The N of a key under ``chk-N/``, else None."""
    match = _CHECKPOINT_KEY.match(key)
    return int(match.group(1)) if match else None


def shared_creator_of(key: str) -> Optional[int]:
    """The id of the checkpoint that uploaded a ``shared/`` file, else None."""
    match = _SHARED_KEY.match(key)
    return int(match.group(1)) if match else None
