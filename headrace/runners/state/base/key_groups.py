"""Key groups, as in Flink: the unit in which keyed state is stored and redistributed.

A key's group comes from a stable hash of its deterministic encoding, never
from Python's salted ``hash``, so every process agrees on it.

>>> key_group_for(b"\\x05\\x01a", 128)
118
>>> key_group_range(1, 3, 128)
range(43, 86)
"""
from __future__ import annotations

import zlib

DEFAULT_MAX_PARALLELISM = 128


def key_group_for(encoded_key: bytes, max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> int:
    """The key group (``0 <= g < max_parallelism``) of an encoded key."""
    return zlib.crc32(encoded_key) % max_parallelism


def key_group_range(subtask: int, parallelism: int,
                    max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> range:
    """The contiguous key groups owned by ``subtask`` of ``parallelism`` (Flink's split)."""
    start = -(-subtask * max_parallelism // parallelism)
    end = -(-(subtask + 1) * max_parallelism // parallelism)
    return range(start, end)


def subtask_for_key_group(key_group: int, parallelism: int,
                          max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> int:
    """The subtask owning ``key_group`` (inverse of :func:`key_group_range`)."""
    return key_group * parallelism // max_parallelism
