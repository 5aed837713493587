"""Shipping user code: pickle once at construction, with errors that name the transform."""
from __future__ import annotations

import pickle
from typing import Any

import cloudpickle


def dumps_user_code(obj: Any, label: str, what: str = "function") -> bytes:
    """Pickle user code with cloudpickle, naming ``label`` when it cannot be pickled."""
    try:
        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"Unable to pickle the {what} of transform {label!r}: {type(exc).__name__}: {exc}. "
            "User code is shipped to workers by pickling; move unpicklable resources (locks, "
            "connections, open files) into DoFn.setup().") from exc


def loads_user_code(data: bytes) -> Any:
    """Unpickle user code shipped by :func:`dumps_user_code`."""
    return pickle.loads(data)
