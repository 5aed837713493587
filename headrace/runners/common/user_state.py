"""The state objects user code gets, stored through a ``KeyedStateBackend``.

Every object is bound to one encoded key and one namespace (the window) and
writes through to the backend at once, so that what ``process`` writes is
what the next ``process`` or ``on_timer`` reads in this single-threaded
operator, exactly as Beam's commit at the end of a bundle would leave it.

Layout in the backend (cell name ``user/<spec name>``):

* ReadModifyWrite: a value cell holding the coder-encoded value; with a TTL,
  ``(encoded, last_access_micros)``.
* Combining: a value cell holding the accumulator itself (user code never sees
  it); with a TTL, ``(accumulator, last_access_micros)``.
* Bag: a bag cell of encoded elements; with a TTL, ``(encoded, micros)`` each.
* Set: a map cell ``encode_key(element) -> encoded`` (``(encoded, micros)``).
* Map: a map cell ``key bytes -> (user_key, encoded_value)``
  (``(user_key, encoded_value, micros)`` with a TTL).

Values go through the spec's coder (a fast pickling coder by default), so
state holds copies: mutating a value that was read does not change the
state, as in Beam. With a coder of immutable scalars (``VarIntCoder``,
``FloatCoder``, ``StrUtf8Coder``, ``BytesCoder``, ``BooleanCoder``) the cell
holds the decoded value instead, since encoding and decoding one of the
coder's own type gives it back unchanged (other values are normalised by that
round trip, which also rejects what the coder cannot encode). TTL timestamps
are processing time (int micros).

Each spec gets its own state class, made once per operator, that carries the
spec's name, coder and TTL, so that a state object is only its key and
namespace: user code gets fresh ones for every element at little cost.

>>> from headrace.runners.state.memory import MemoryStateBackend
>>> from headrace.sdk.userstate import BagStateSpec
>>> spec = BagStateSpec("buffer")
>>> states = UserStateFactory(MemoryStateBackend(), [spec], now=lambda: 0)
>>> bag = states.state(spec, b"k", None)
>>> bag.add(1); bag.add(2); bag.read()
[1, 2]
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, Hashable, Iterable, List, Optional, Tuple

from headrace.sdk.coders import FastPrimitivesCoder, encode_key
from headrace.sdk.coders.base import (
    BooleanCoder,
    BytesCoder,
    Coder,
    FloatCoder,
    StrUtf8Coder,
    VarIntCoder,
)
from headrace.sdk.userstate import (
    BagRuntimeState,
    BagStateSpec,
    CombiningValueRuntimeState,
    CombiningValueStateSpec,
    MapRuntimeState,
    MapStateSpec,
    ReadModifyWriteRuntimeState,
    ReadModifyWriteStateSpec,
    RuntimeState,
    SetRuntimeState,
    SetStateSpec,
    StateSpec,
)

_MISSING = object()
_DEFAULT_CODER = FastPrimitivesCoder()

#: ``on_write(key, namespace, expires_at)``: the operator's hook to schedule TTL cleanup,
#: called when state with a TTL is written (or refreshed). The operator knows without it
#: which keys and namespaces it handed state objects for.
WriteHook = Callable[[bytes, Hashable, int], None]
#: Coders whose round trip is the identity on values of exactly this type.
_SCALAR_CODERS = {VarIntCoder: int, FloatCoder: float, StrUtf8Coder: str, BytesCoder: bytes,
                  BooleanCoder: bool}


def _codec(coder: Coder) -> Tuple[Callable[[Any], Any], Optional[Callable[[Any], Any]]]:
    """How values are stored and read back: ``(encode, decode)``; ``decode`` is None when
    cells hold the values themselves (see the module docstring)."""
    scalar = _SCALAR_CODERS.get(type(coder))
    encode, decode = coder.encode, coder.decode
    if scalar is None:
        return encode, decode

    def normalize(value: Any) -> Any:
        return value if type(value) is scalar else decode(encode(value))

    return normalize, None


def cell_name(spec: StateSpec) -> str:
    """The backend cell of a user state spec."""
    return f"user/{spec.name}"


class _Cell:
    """One spec's state for one key and namespace: the shared plumbing of the typed objects.

    The per-spec subclass (:func:`_bind`) sets the class attributes: ``factory``,
    ``spec``, ``name`` (the backend cell), ``coder``, ``ttl``, ``_encode``, ``_decode``.
    """

    __slots__ = ("key", "namespace")
    factory: "UserStateFactory"
    spec: StateSpec
    name: str
    coder: Coder
    ttl: Any
    _encode: Callable[[Any], Any]
    _decode: Optional[Callable[[Any], Any]]

    def __init__(self, key: bytes, namespace: Hashable) -> None:
        self.key = key
        self.namespace = namespace

    @property
    def backend(self) -> Any:
        return self.factory.backend

    def now(self) -> int:
        return self.factory.now()

    def written(self, now: Optional[int] = None) -> None:
        if self.ttl is not None:
            self.factory.on_write(self.key, self.namespace,
                                  self.ttl.expires_at(self.now() if now is None else now))

    def encode(self, value: Any) -> Any:
        return self._encode(value)

    def decode(self, stored: Any) -> Any:
        return stored if self._decode is None else self._decode(stored)


class ReadModifyWriteState(_Cell, ReadModifyWriteRuntimeState):
    """A single value; ``read()`` is None when nothing (unexpired) is stored."""

    __slots__ = ()

    def _raw(self, now: int) -> Any:
        raw = self.backend.get_value(self.name, self.key, self.namespace, _MISSING)
        if raw is _MISSING or self.ttl is None:
            return raw
        encoded, stamp = raw
        if self.ttl.expired(stamp, now):
            self.backend.clear(self.name, self.key, self.namespace)
            return _MISSING
        return raw

    def read(self) -> Any:
        if self.ttl is None:
            raw = self.factory.backend.get_value(self.name, self.key, self.namespace, _MISSING)
            if raw is _MISSING:
                return None
            return raw if self._decode is None else self._decode(raw)
        now = self.now()
        raw = self._raw(now)
        if raw is _MISSING:
            return None
        if self.ttl.refresh_on_read:
            self.backend.put_value(self.name, self.key, self.namespace, (raw[0], now))
            self.written(now)
        return self.decode(raw[0])

    def write(self, value: Any) -> None:
        encoded = self._encode(value)
        if self.ttl is None:
            self.factory.backend.put_value(self.name, self.key, self.namespace, encoded)
        else:
            now = self.now()
            self.backend.put_value(self.name, self.key, self.namespace, (encoded, now))
            self.written(now)

    def clear(self) -> None:
        self.backend.clear(self.name, self.key, self.namespace)

    def prune(self, now: int) -> Optional[int]:
        raw = self._raw(now)
        return None if raw is _MISSING else self.ttl.expires_at(raw[1])


class BagState(_Cell, BagRuntimeState):
    """Appended values, in the order they were added; with a TTL each expires alone."""

    __slots__ = ()

    def add(self, value: Any) -> None:
        encoded = self.encode(value)
        if self.ttl is None:
            self.backend.add_to_bag(self.name, self.key, self.namespace, encoded)
            self.written()
        else:
            now = self.now()
            self.backend.add_to_bag(self.name, self.key, self.namespace, (encoded, now))
            self.written(now)

    def _live(self, now: int, refresh: bool) -> List[Tuple[bytes, int]]:
        """The unexpired (encoded, stamp) entries, rewriting the bag if that changes it."""
        stored = self.backend.read_bag(self.name, self.key, self.namespace)
        live = [entry for entry in stored if not self.ttl.expired(entry[1], now)]
        if refresh and live:
            live = [(encoded, now) for encoded, _ in live]
        if refresh or len(live) != len(stored):
            # The backend appends only, so dropping or re-stamping means rewriting.
            self.backend.clear(self.name, self.key, self.namespace)
            for entry in live:
                self.backend.add_to_bag(self.name, self.key, self.namespace, entry)
        return live

    def read(self) -> List[Any]:
        if self.ttl is None:
            return [self.decode(e) for e in
                    self.backend.read_bag(self.name, self.key, self.namespace)]
        now = self.now()
        live = self._live(now, self.ttl.refresh_on_read)
        if live and self.ttl.refresh_on_read:
            self.written(now)
        return [self.decode(encoded) for encoded, _ in live]

    def clear(self) -> None:
        self.backend.clear(self.name, self.key, self.namespace)

    def prune(self, now: int) -> Optional[int]:
        live = self._live(now, False)
        return min((self.ttl.expires_at(stamp) for _, stamp in live), default=None)


class _EntryCell(_Cell):
    """Shared TTL handling of map-shaped cells, whose entries expire one by one."""

    __slots__ = ()

    def _stamp(self, entry: Any) -> int:
        return entry[-1]

    def _restamp(self, entry: Any, now: int) -> Any:
        return (*entry[:-1], now)

    def _entry(self, user_key: Hashable, now: int, refresh: bool) -> Any:
        entry = self.backend.map_get(self.name, self.key, self.namespace, user_key, _MISSING)
        if entry is _MISSING or self.ttl is None:
            return entry
        if self.ttl.expired(self._stamp(entry), now):
            self.backend.map_remove(self.name, self.key, self.namespace, user_key)
            return _MISSING
        if refresh:
            entry = self._restamp(entry, now)
            self.backend.map_put(self.name, self.key, self.namespace, user_key, entry)
            self.written(now)
        return entry

    def _entries(self, now: int, refresh: bool) -> List[Tuple[Hashable, Any]]:
        items = self.backend.map_items(self.name, self.key, self.namespace)
        if self.ttl is None:
            return items
        live = []
        for user_key, entry in items:
            if self.ttl.expired(self._stamp(entry), now):
                self.backend.map_remove(self.name, self.key, self.namespace, user_key)
                continue
            if refresh:
                entry = self._restamp(entry, now)
                self.backend.map_put(self.name, self.key, self.namespace, user_key, entry)
            live.append((user_key, entry))
        if refresh and live:
            self.written(now)
        return live

    def _put(self, user_key: Hashable, entry: tuple) -> None:
        if self.ttl is not None:
            now = self.now()
            entry = (*entry, now)
            self.backend.map_put(self.name, self.key, self.namespace, user_key, entry)
            self.written(now)
        else:
            self.backend.map_put(self.name, self.key, self.namespace, user_key, entry)
            self.written()

    def clear(self) -> None:
        self.backend.clear(self.name, self.key, self.namespace)

    def prune(self, now: int) -> Optional[int]:
        return min((self.ttl.expires_at(self._stamp(entry))
                    for _, entry in self._entries(now, False)), default=None)


class SetState(_EntryCell, SetRuntimeState):
    """Distinct values (by deterministic encoding); with a TTL each expires alone."""

    __slots__ = ()

    def add(self, value: Any) -> None:
        # Adding a present element is a write: it restarts that element's time to live.
        self._put(encode_key(value), (self.encode(value),))

    def read(self) -> set:
        refresh = self.ttl is not None and self.ttl.refresh_on_read
        return {self.decode(entry[0]) for _, entry in self._entries(self.now(), refresh)}


class CombiningValueState(_Cell, CombiningValueRuntimeState):
    """An accumulator folded by the spec's CombineFn; with a TTL it expires as a whole.

    The accumulator is stored as is, not through the coder: user code never sees it
    (``read`` returns ``extract_output`` of it, as Beam's direct runner does), and
    re-encoding it on every ``add`` would cost more than the combining itself.
    """

    __slots__ = ()
    combine_fn: Any  # the operator's copy of the spec's CombineFn

    def _accumulator(self, now: int, refresh: bool) -> Any:
        raw = self.backend.get_value(self.name, self.key, self.namespace, _MISSING)
        if raw is _MISSING or self.ttl is None:
            return raw
        accumulator, stamp = raw
        if self.ttl.expired(stamp, now):
            self.backend.clear(self.name, self.key, self.namespace)
            return _MISSING
        if refresh and self.ttl.refresh_on_read:
            self.backend.put_value(self.name, self.key, self.namespace, (accumulator, now))
            self.written(now)
        return accumulator

    def read(self) -> Any:
        accumulator = self._accumulator(0 if self.ttl is None else self.now(), True)
        if accumulator is _MISSING:
            accumulator = self.combine_fn.create_accumulator()
        return self.combine_fn.extract_output(accumulator)

    def add(self, value: Any) -> None:
        now = 0 if self.ttl is None else self.now()
        accumulator = self._accumulator(now, False)
        if accumulator is _MISSING:
            accumulator = self.combine_fn.create_accumulator()
        accumulator = self.combine_fn.add_input(accumulator, value)
        if self.ttl is None:
            self.backend.put_value(self.name, self.key, self.namespace, accumulator)
        else:
            self.backend.put_value(self.name, self.key, self.namespace, (accumulator, now))
            self.written(now)

    def clear(self) -> None:
        self.backend.clear(self.name, self.key, self.namespace)

    def prune(self, now: int) -> Optional[int]:
        raw = self.backend.get_value(self.name, self.key, self.namespace, _MISSING)
        if raw is _MISSING:
            return None
        if self.ttl.expired(raw[1], now):
            self.backend.clear(self.name, self.key, self.namespace)
            return None
        return self.ttl.expires_at(raw[1])


class MapState(_EntryCell, MapRuntimeState):
    """Flink's MapState; with a TTL every entry expires alone."""

    __slots__ = ()
    key_coder: Optional[Coder]

    def _user_key(self, user_key: Any) -> bytes:
        if self.key_coder is not None:
            return self.key_coder.encode(user_key)
        return encode_key(user_key)

    def _refresh(self) -> bool:
        return self.ttl is not None and self.ttl.refresh_on_read

    def get(self, key: Any, default: Any = None) -> Any:
        entry = self._entry(self._user_key(key), self.now(), self._refresh())
        return default if entry is _MISSING else self.decode(entry[1])

    def put(self, key: Any, value: Any) -> None:
        self._put(self._user_key(key), (key, self.encode(value)))

    def remove(self, key: Any) -> None:
        self.backend.map_remove(self.name, self.key, self.namespace, self._user_key(key))

    def contains(self, key: Any) -> bool:
        # A read, as in Flink: under ON_READ_AND_WRITE it restarts the entry's TTL.
        return self._entry(self._user_key(key), self.now(), self._refresh()) is not _MISSING

    def keys(self) -> List[Any]:  # type: ignore[override]
        return [entry[0] for _, entry in self._entries(self.now(), self._refresh())]

    def values(self) -> List[Any]:  # type: ignore[override]
        return [self.decode(entry[1]) for _, entry in self._entries(self.now(), self._refresh())]

    def items(self) -> List[Tuple[Any, Any]]:  # type: ignore[override]
        return [(entry[0], self.decode(entry[1]))
                for _, entry in self._entries(self.now(), self._refresh())]

    def is_empty(self) -> bool:
        # Not a read of any entry, so it restarts no TTL; expired entries do not count.
        return not self._entries(self.now(), False)


_STATE_CLASSES = {
    ReadModifyWriteStateSpec: ReadModifyWriteState,
    BagStateSpec: BagState,
    SetStateSpec: SetState,
    CombiningValueStateSpec: CombiningValueState,
    MapStateSpec: MapState,
}


def _state_class(spec: StateSpec) -> type:
    for spec_type in type(spec).__mro__:
        cls = _STATE_CLASSES.get(spec_type)
        if cls is not None:
            return cls
    raise ValueError(f"Invalid state spec: {spec!r}")


def _bind(factory: "UserStateFactory", spec: StateSpec) -> type:
    """The state class of ``spec`` in ``factory``: what every object of it shares."""
    cls = _state_class(spec)
    coder = spec.coder if spec.coder is not None else _DEFAULT_CODER
    encode, decode = _codec(coder)
    attributes: Dict[str, Any] = {
        "__slots__": (), "factory": factory, "spec": spec, "name": cell_name(spec),
        "coder": coder, "ttl": spec.ttl, "_encode": staticmethod(encode),
        "_decode": None if decode is None else staticmethod(decode)}
    if cls is CombiningValueState:
        attributes["combine_fn"] = factory.combine_fns[spec.name]
    elif cls is MapState:
        attributes["key_coder"] = spec.key_coder  # type: ignore[attr-defined]
    return type(cls.__name__, (cls,), attributes)


class UserStateFactory:
    """Makes the state objects of one operator instance, over its keyed-state backend.

    ``now()`` is processing time in int micros (for TTL); ``on_write`` tells the
    operator which key and namespace now hold state, and when a TTL may expire it.
    """

    def __init__(self, backend: Any, specs: Iterable[StateSpec], now: Callable[[], int],
                 on_write: Optional[WriteHook] = None) -> None:
        self.backend = backend
        self.now = now
        self.on_write: WriteHook = on_write or (lambda key, namespace, expires: None)
        # Specs are looked up by name, not identity: pickling a DoFn can copy a spec that a
        # method default and a class attribute share (a class pickled by reference keeps the
        # original, a subclass pickled by value gets a copy). Validation, on the DoFn before
        # pickling, has made names unique.
        self.specs: Dict[str, StateSpec] = {}
        for spec in specs:
            self.specs.setdefault(spec.name, spec)
        # One CombineFn copy per spec and operator: setup() may keep resources on it, and the
        # spec itself can be shared by every operator running the same DoFn class.
        self.combine_fns = {name: copy.deepcopy(spec.combine_fn)
                            for name, spec in self.specs.items()
                            if isinstance(spec, CombiningValueStateSpec)}
        self._classes = {name: _bind(self, spec) for name, spec in self.specs.items()}
        self.ttl_specs = [spec for spec in self.specs.values() if spec.ttl is not None]

    def setup(self) -> None:
        for combine_fn in self.combine_fns.values():
            combine_fn.setup()

    def teardown(self) -> None:
        for combine_fn in self.combine_fns.values():
            combine_fn.teardown()

    def state(self, spec: StateSpec, key: bytes, namespace: Hashable) -> RuntimeState:
        """The state object of ``spec`` for one encoded key and namespace."""
        cls = self._classes.get(spec.name)
        if cls is None or not isinstance(spec, type(self.specs[spec.name])):
            raise ValueError(f"{spec!r} is not a state of this DoFn")
        return cls(key, namespace)

    def state_class(self, spec: StateSpec) -> Callable[[bytes, Hashable], RuntimeState]:
        """What :meth:`state` calls for ``spec``: ``state_class(spec)(key, namespace)`` makes
        its state objects without looking the spec up each time."""
        cls = self._classes.get(spec.name)
        if cls is None or not isinstance(spec, type(self.specs[spec.name])):
            raise ValueError(f"{spec!r} is not a state of this DoFn")
        return cls

    def prune_expired(self, key: bytes, namespace: Hashable, now: int) -> Optional[int]:
        """Drop expired TTL state of one key and namespace; the next expiry, or None."""
        next_expiry: Optional[int] = None
        for spec in self.ttl_specs:
            expiry = self.state(spec, key, namespace).prune(now)  # type: ignore[attr-defined]
            if expiry is not None and (next_expiry is None or expiry < next_expiry):
                next_expiry = expiry
        return next_expiry


def state_layout(specs: Iterable[StateSpec]) -> Dict[str, str]:
    """``{backend cell name: shape}`` of the given specs (for docs and debugging)."""
    shapes = {ReadModifyWriteState: "value", CombiningValueState: "value", BagState: "bag",
              SetState: "map", MapState: "map"}
    return {cell_name(spec): shapes[_state_class(spec)] for spec in specs}
