"""Pickling state for snapshots and RocksDB: pickle protocol 5, cloudpickle as the fallback.

Plain pickle stores classes by reference and is fast; cloudpickle also takes
what plain pickle refuses (classes defined in a function or in ``__main__``,
lambdas), as headrace ships user code. Both are read with ``pickle.loads``.

>>> import pickle
>>> pickle.loads(dumps(lambda x: x + 1))(1)
2
"""
from __future__ import annotations

import pickle
from typing import Any

import cloudpickle


def dumps(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, AttributeError, TypeError):
        return cloudpickle.dumps(value, protocol=5)
