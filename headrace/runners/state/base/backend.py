"""The keyed-state backend interface.

State is addressed by (state name, encoded key, namespace): the encoded key
is the key's deterministic encoding (``sdk.coders.encode_key``), the
namespace is a window (``GLOBAL_WINDOW`` outside windowing). Three shapes
cover every user-facing state type: a value (ReadModifyWrite, Combining), a
bag (Bag) and a map (Map, Set). Backends keep state per key group so that
snapshots can be split and redistributed when the parallelism changes.

Values are the backend's to keep: the memory backend keeps the objects
themselves, RocksDB pickled copies, so a caller that changes a value it read
must write it back (every caller does).
"""
from __future__ import annotations

import abc
import enum
from typing import Any, Hashable, Iterable, List, Tuple


class StateKind(enum.Enum):
    VALUE = "value"
    BAG = "bag"
    MAP = "map"


class KeyedStateBackend(abc.ABC):
    """Keyed state of one operator instance (one subtask), for the key groups it owns."""

    #: The key groups this backend owns, and how many key groups the job has.
    key_groups: range
    max_parallelism: int

    # -- values -----------------------------------------------------------------------------
    @abc.abstractmethod
    def get_value(self, name: str, key: bytes, namespace: Hashable, default: Any = None) -> Any:
        """The value, or ``default`` when none is stored."""

    @abc.abstractmethod
    def put_value(self, name: str, key: bytes, namespace: Hashable, value: Any) -> None:
        """Store ``value`` (replacing any previous one)."""

    # -- bags -------------------------------------------------------------------------------
    @abc.abstractmethod
    def add_to_bag(self, name: str, key: bytes, namespace: Hashable, value: Any) -> None:
        """Append ``value`` to the bag."""

    @abc.abstractmethod
    def read_bag(self, name: str, key: bytes, namespace: Hashable) -> List[Any]:
        """The bag's values in insertion order (a fresh list the caller may keep)."""

    # -- maps -------------------------------------------------------------------------------
    @abc.abstractmethod
    def map_get(self, name: str, key: bytes, namespace: Hashable, user_key: Hashable,
                default: Any = None) -> Any:
        """The entry for ``user_key``, or ``default``."""

    @abc.abstractmethod
    def map_put(self, name: str, key: bytes, namespace: Hashable, user_key: Hashable,
                value: Any) -> None:
        """Store an entry."""

    @abc.abstractmethod
    def map_remove(self, name: str, key: bytes, namespace: Hashable, user_key: Hashable) -> None:
        """Remove an entry if present."""

    @abc.abstractmethod
    def map_items(self, name: str, key: bytes, namespace: Hashable) -> List[Tuple[Any, Any]]:
        """All entries (a fresh list)."""

    # -- lifecycle --------------------------------------------------------------------------
    @abc.abstractmethod
    def clear(self, name: str, key: bytes, namespace: Hashable) -> None:
        """Remove one state cell, whatever its kind."""

    @abc.abstractmethod
    def clear_namespace(self, key: bytes, namespace: Hashable) -> None:
        """Remove every state cell of ``key`` in ``namespace`` (window expiry)."""

    @abc.abstractmethod
    def namespaces(self, key: bytes) -> List[Hashable]:
        """The namespaces in which ``key`` has state."""

    @abc.abstractmethod
    def keys(self) -> Iterable[bytes]:
        """Every encoded key with state."""

    def is_empty(self) -> bool:
        return not any(True for _ in self.keys())

    # -- snapshots --------------------------------------------------------------------------
    @abc.abstractmethod
    def snapshot(self) -> Any:
        """A ``KeyedStateSnapshot`` of the state now: cheap and synchronous; no later write
        changes it, and its files are written later (``materialize``), even on another thread.
        Restoring is the backend class's ``restore(snapshots, key_groups, max_parallelism)``.
        """

    def close(self) -> None:
        """Release what the backend holds (files, memory); it is not used afterwards."""
