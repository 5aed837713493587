"""Deterministic key encoding, which GroupByKey and CombinePerKey group by.

Two keys fall in the same group exactly when :func:`encode_key` gives the same
bytes, in every process and Python run: the encoding never uses ``hash()``
or pickle. As in Beam, whose grouping compares coder output, the encoding is
type-tagged: ``1``, ``1.0`` and ``True`` are three different keys, and so are
``0.0`` and ``-0.0``, although Python's ``==`` says otherwise.

Supported keys: None, bool, int (any size), float, str, bytes, tuples and
lists of keys, NamedTuples, Enum members, frozen dataclasses, frozensets,
sets and dicts (by their contents, in a canonical order, as Beam groups them),
``datetime.date``/``datetime``/``timedelta``, ``uuid.UUID``, headrace
``Timestamp``/``Duration``, and any type with a deterministic coder
registered in :data:`headrace.coders.registry`.

>>> encode_key(("user", 7)) == encode_key(("user", 7))
True
>>> decode_key(encode_key(("user", 7)))
('user', 7)
"""
from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from typing import Any, Callable, Dict, List, Optional

from headrace.sdk.timestamp import Duration, Timestamp

from . import wire
from .base import Coder
from .registry import registry

_REPR_LIMIT = 200

# int.to_bytes is slow; the small ints that dominate real keys are precomputed.
_SMALL_INT_BIAS = 1024
_SMALL_INTS = [wire.encode_int(i) for i in range(-_SMALL_INT_BIAS, _SMALL_INT_BIAS)]


class NonDeterministicKeyError(TypeError):
    """A key, or a value inside a key, has no deterministic encoding.

    Attributes: ``value`` is the offending value, ``key`` the whole key that
    contained it, ``step_label`` the grouping step when known.

    >>> try:
    ...     encode_key(("a", object()))
    ... except NonDeterministicKeyError as e:
    ...     print(type(e.value).__name__)
    object
    """

    def __init__(self, value: Any, reason: str, step_label: Optional[str] = None):
        super().__init__(value, reason)
        self.value = value
        self.key = value
        self.reason = reason
        self.step_label = step_label

    def __str__(self) -> str:
        where = f" in step {self.step_label!r}" if self.step_label else ""
        msg = f"Cannot use {_short_repr(self.key)} as a grouping key{where}: "
        if self.key is not self.value:
            msg += (f"it contains a value of type {type(self.value).__qualname__!r}, "
                    f"{_short_repr(self.value)}, which ")
        else:
            msg += f"its type {type(self.value).__qualname__!r} "
        return msg + self.reason


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__qualname__} object>"
    return text if len(text) <= _REPR_LIMIT else text[:_REPR_LIMIT - 3] + "..."


_FIX = ("Convert the key to supported values (str, int, bytes, tuples, ...) or register "
        "a deterministic coder with headrace.coders.registry.register_coder(YourType, "
        "YourCoder).")


def _reason_for(value: Any) -> str:
    t = type(value)
    if dataclasses.is_dataclass(value):
        return ("is a dataclass that is not frozen, so it can change while it is a key. "
                "Declare it with @dataclass(frozen=True). " + _FIX)
    if getattr(t, "__eq__", None) is object.__eq__:
        return ("compares by identity (it does not define __eq__), so it has no "
                "deterministic encoding. " + _FIX)
    return "has no deterministic encoding. " + _FIX


#: Key types whose ``==`` and hash agree with their encoding, so a dict keyed by the key
#: itself can cache its encoding (runners use it on hot paths).
ENCODING_CONSISTENT_KEY_TYPES = (str, int, bytes, type(None))


def encode_key(key: Any) -> bytes:
    """Encode ``key`` to bytes that are equal exactly when the keys are the same key.

    Raises :class:`NonDeterministicKeyError` for keys with no deterministic
    encoding (objects compared by identity, mutable dataclasses, ...). Dicts and
    sets are encoded by their contents in a canonical order, as Beam groups them.

    >>> encode_key("a")
    b'\\x05\\x01a'
    >>> encode_key(1) != encode_key(1.0) != encode_key(True)
    True
    """
    t = type(key)
    if t is str:
        b = key.encode()
        n = len(b)
        return (wire.STR_HEADERS[n] if n < 0x80 else wire.header(wire.STR, n)) + b
    if t is int:
        if -_SMALL_INT_BIAS <= key < _SMALL_INT_BIAS:
            return _SMALL_INTS[key + _SMALL_INT_BIAS]
        return wire.encode_int(key)
    if t is tuple:
        n = len(key)
        return _encode_items(wire.TUPLE_HEADERS[n] if n < 0x80 else wire.header(wire.TUPLE, n), key)
    encoder = _ENCODERS.get(t)
    if encoder is not None:
        return encoder(key)
    return _encode_other(key)


def _encode_items(header: bytes, items: Any) -> bytes:
    parts = [header]
    append = parts.append
    try:
        # str and int are inlined: tuples of them are the most common composite keys.
        for item in items:
            t = type(item)
            if t is str:
                b = item.encode()
                n = len(b)
                append(wire.STR_HEADERS[n] if n < 0x80 else wire.header(wire.STR, n))
                append(b)
            elif t is int:
                append(_SMALL_INTS[item + _SMALL_INT_BIAS]
                       if -_SMALL_INT_BIAS <= item < _SMALL_INT_BIAS else wire.encode_int(item))
            else:
                append(encode_key(item))
    except NonDeterministicKeyError as exc:
        # Re-raised level by level, so the outermost key is what gets reported.
        exc.key = items
        raise
    return b"".join(parts)


def _encode_list(key: list) -> bytes:
    n = len(key)
    return _encode_items(wire.LIST_HEADERS[n] if n < 0x80 else wire.header(wire.LIST, n), key)


def _sorted_encodings(key: Any, items: Any) -> List[bytes]:
    """Encode unordered contents in the order of their encodings, so equal contents match."""
    try:
        return sorted([encode_key(item) for item in items])
    except NonDeterministicKeyError as exc:
        exc.key = key
        raise


def _encode_frozenset(key: frozenset) -> bytes:
    return wire.header(wire.FROZENSET, len(key)) + b"".join(_sorted_encodings(key, key))


def _encode_set(key: set) -> bytes:
    return wire.header(wire.SET, len(key)) + b"".join(_sorted_encodings(key, key))


def _encode_dict(key: dict) -> bytes:
    # Beam groups dict keys by their items regardless of insertion order; so do we.
    pairs = _sorted_encodings(key, key.items())
    return wire.header(wire.DICT, len(pairs)) + b"".join(
        pair[len(wire.header(wire.TUPLE, 2)):] for pair in pairs)


def _encode_datetime(key: datetime.datetime) -> bytes:
    days, aware, micros = wire.datetime_parts(key)
    tag = wire.UTC_DATETIME if aware else wire.NAIVE_DATETIME
    return bytes((tag,)) + wire.encode_int(days) + wire.encode_int(micros)


def _encode_timedelta(key: datetime.timedelta) -> bytes:
    return (bytes((wire.TIMEDELTA,)) + wire.encode_int(key.days)
            + wire.encode_int(key.seconds) + wire.encode_int(key.microseconds))


_ENCODERS: Dict[type, Callable[[Any], bytes]] = {
    bytes: wire.encode_bytes,
    type(None): lambda _: wire.NONE_BYTES,
    bool: lambda key: wire.TRUE_BYTES if key else wire.FALSE_BYTES,
    float: wire.encode_float,
    list: _encode_list,
    frozenset: _encode_frozenset,
    set: _encode_set,
    dict: _encode_dict,
    datetime.date: lambda key: (
        bytes((wire.DATE,)) + wire.encode_int(key.toordinal() - wire.EPOCH_ORDINAL)),
    datetime.datetime: _encode_datetime,
    datetime.timedelta: _encode_timedelta,
    uuid.UUID: lambda key: bytes((wire.UUID,)) + key.bytes,
    Timestamp: lambda key: bytes((wire.TIMESTAMP,)) + wire.encode_int(key.micros),
    Duration: lambda key: bytes((wire.DURATION,)) + wire.encode_int(key.micros),
}


def _encode_other(key: Any) -> bytes:
    """Slow path: registered coders, then structured types, else an error."""
    t = type(key)
    try:
        coder = registry.deterministic_coder_for(t)
    except ValueError as exc:
        raise NonDeterministicKeyError(
            key, f"has no deterministic encoding: {exc}. Register a deterministic coder "
                 "for it, or convert the key to supported values.") from None
    if coder is not None:
        body = coder.encode(key)
        return wire.typed_header(wire.REGISTERED, t) + wire.varint(len(body)) + body
    if isinstance(key, tuple) and hasattr(t, "_fields"):
        return _encode_items(wire.typed_header(wire.NAMED_TUPLE, t) + wire.varint(len(key)), key)
    if isinstance(key, enum.Enum):
        # By name, not value: a name is always a str and identifies the member.
        return wire.typed_header(wire.ENUM, t) + wire.encode_str(key.name)
    if dataclasses.is_dataclass(key) and t.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        fields = [f.name for f in dataclasses.fields(key) if f.init]
        parts = [wire.typed_header(wire.DATACLASS, t), wire.varint(len(fields))]
        try:
            for name in fields:
                parts.append(wire.encode_str(name))
                parts.append(encode_key(getattr(key, name)))
        except NonDeterministicKeyError as exc:
            exc.key = key
            raise
        return b"".join(parts)
    raise NonDeterministicKeyError(key, _reason_for(key))


def decode_key(data: bytes) -> Any:
    """Rebuild a key from :func:`encode_key` output.

    NamedTuples, Enums, dataclasses and registered types are looked up by
    their importable name, so they must be defined at module level. Aware
    datetimes come back in UTC (an equal instant).

    >>> decode_key(encode_key(["a", (1, None)]))
    ['a', (1, None)]
    """
    return wire.decode_value(data)


class DeterministicKeyCoder(Coder):
    """The coder of grouping keys: :func:`encode_key` / :func:`decode_key`.

    ``step_label`` only improves error messages: failures name the step.

    >>> coder = DeterministicKeyCoder("CountPerUser")
    >>> coder.decode(coder.encode(("u1", 3)))
    ('u1', 3)
    """

    def __init__(self, step_label: Optional[str] = None):
        self.step_label = step_label

    def encode(self, value: Any) -> bytes:
        try:
            return encode_key(value)
        except NonDeterministicKeyError as exc:
            if exc.step_label is None:
                exc.step_label = self.step_label
            raise

    def decode(self, encoded: bytes) -> Any:
        return decode_key(encoded)

    def is_deterministic(self) -> bool:
        return True
