"""Beam's ``typehints`` names, accepted so Beam code runs; headrace does not check them.

>>> from headrace import typehints
>>> typehints.KV[str, int]
KV[str, int]
"""
from __future__ import annotations

from typing import Any as _Any
from typing import Callable, TypeVar

T = TypeVar("T")


class _Hint:
    """A subscriptable stand-in for a Beam type constraint."""

    def __init__(self, name: str, params: tuple = ()) -> None:
        self._name, self._params = name, params

    def __getitem__(self, params: _Any) -> "_Hint":
        params = params if isinstance(params, tuple) else (params,)
        return _Hint(self._name, params)

    def __repr__(self) -> str:
        if not self._params:
            return self._name
        names = ", ".join(getattr(p, "__name__", repr(p)) for p in self._params)
        return f"{self._name}[{names}]"


Any = _Hint("Any")
KV = _Hint("KV")
Tuple = _Hint("Tuple")
List = _Hint("List")
Dict = _Hint("Dict")
Set = _Hint("Set")
Iterable = _Hint("Iterable")
Iterator = _Hint("Iterator")
Optional = _Hint("Optional")
Union = _Hint("Union")


def with_input_types(*args: _Any, **kwargs: _Any) -> Callable[[T], T]:
    """Decorator accepted for Beam compatibility; returns its target unchanged."""
    return lambda target: target


def with_output_types(*args: _Any, **kwargs: _Any) -> Callable[[T], T]:
    """Decorator accepted for Beam compatibility; returns its target unchanged."""
    return lambda target: target
