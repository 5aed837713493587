"""Keyed state in dicts: key -> namespace -> state name -> value, list or dict."""
from __future__ import annotations

from typing import Any, Dict, Hashable, Iterable, List, Tuple

from headrace.runners.state.base.backend import KeyedStateBackend

_NO_CELLS: Dict[str, Any] = {}  # read-only: never handed to a caller that writes


class MemoryStateBackend(KeyedStateBackend):
    """State held in the operator's process memory.

    >>> state = MemoryStateBackend()
    >>> state.add_to_bag("seen", b"k", None, 1); state.add_to_bag("seen", b"k", None, 2)
    >>> state.read_bag("seen", b"k", None)
    [1, 2]
    """

    def __init__(self) -> None:
        self._data: Dict[bytes, Dict[Hashable, Dict[str, Any]]] = {}

    def _cells(self, key: bytes, namespace: Hashable) -> Dict[str, Any]:
        by_namespace = self._data.get(key)
        if by_namespace is None:
            by_namespace = self._data[key] = {}
        cells = by_namespace.get(namespace)
        if cells is None:
            cells = by_namespace[namespace] = {}
        return cells

    def _peek(self, key: bytes, namespace: Hashable) -> Dict[str, Any]:
        """The cells of (key, namespace) for reading; an empty shared dict when there are none."""
        by_namespace = self._data.get(key)
        if by_namespace is None:
            return _NO_CELLS
        return by_namespace.get(namespace, _NO_CELLS)

    def get_value(self, name: str, key: bytes, namespace: Hashable, default: Any = None) -> Any:
        return self._peek(key, namespace).get(name, default)

    def put_value(self, name: str, key: bytes, namespace: Hashable, value: Any) -> None:
        self._cells(key, namespace)[name] = value

    def add_to_bag(self, name: str, key: bytes, namespace: Hashable, value: Any) -> None:
        cells = self._cells(key, namespace)
        bag = cells.get(name)
        if bag is None:
            cells[name] = [value]
        else:
            bag.append(value)

    def read_bag(self, name: str, key: bytes, namespace: Hashable) -> List[Any]:
        return list(self._peek(key, namespace).get(name, ()))

    def map_get(self, name: str, key: bytes, namespace: Hashable, user_key: Hashable,
                default: Any = None) -> Any:
        return self._peek(key, namespace).get(name, _NO_CELLS).get(user_key, default)

    def map_put(self, name: str, key: bytes, namespace: Hashable, user_key: Hashable,
                value: Any) -> None:
        self._cells(key, namespace).setdefault(name, {})[user_key] = value

    def map_remove(self, name: str, key: bytes, namespace: Hashable, user_key: Hashable) -> None:
        entries = self._peek(key, namespace).get(name)
        if entries is not None:
            entries.pop(user_key, None)
            if not entries:
                self.clear(name, key, namespace)

    def map_items(self, name: str, key: bytes, namespace: Hashable) -> List[Tuple[Any, Any]]:
        return list(self._peek(key, namespace).get(name, _NO_CELLS).items())

    def clear(self, name: str, key: bytes, namespace: Hashable) -> None:
        by_namespace = self._data.get(key)
        if by_namespace is None or namespace not in by_namespace:
            return
        cells = by_namespace[namespace]
        cells.pop(name, None)
        if not cells:
            self.clear_namespace(key, namespace)

    def clear_namespace(self, key: bytes, namespace: Hashable) -> None:
        by_namespace = self._data.get(key)
        if by_namespace is not None:
            by_namespace.pop(namespace, None)
            if not by_namespace:
                del self._data[key]

    def namespaces(self, key: bytes) -> List[Hashable]:
        return list(self._data.get(key, {}))

    def keys(self) -> Iterable[bytes]:
        return list(self._data)
