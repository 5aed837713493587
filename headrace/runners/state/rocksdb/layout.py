"""How keyed state is laid out in RocksDB's sorted key space.

A RocksDB key is::

    key group (2 bytes, big-endian) | len+state name | len+encoded key | len+namespace
    | kind (b"V" value, b"B" bag element, b"M" map entry) | suffix

with 4-byte big-endian lengths, so no component can run into the next and
every prefix stops at a component boundary. Sorting puts one key group's
state in one contiguous range (a key-group range is one scan), and within it
one cell's bag elements or map entries next to each other. The suffix is a
bag element's 8-byte sequence number (appends need no read, and keep their
order) or a map entry's encoded user key.

Values are pickled (``base.pickling``), except ``bytes`` (what user state
stores after its coder), which are stored as they are behind a one-byte tag.

>>> from headrace.sdk.window import IntervalWindow
>>> prefix = cell_prefix(5, name_part("count"), b"k", encode_namespace(IntervalWindow(0, 10)))
>>> parse_key(prefix + VALUE)[:4]
(5, 'count', b'k', IntervalWindow(0, 10))
>>> decode_value(encode_value((1, b"x")))
(1, b'x')
"""
from __future__ import annotations

import pickle
import struct
from typing import Any, Hashable, Iterator, Tuple

from headrace.runners.state.base.pickling import dumps as _pickle
from headrace.sdk.window import GlobalWindow, IntervalWindow

VALUE, BAG, MAP = b"V", b"B", b"M"
_LENGTH = struct.Struct(">I")
_SEQUENCE = struct.Struct(">Q")
_INTERVAL = struct.Struct(">qq")
_RAW, _PICKLED = 0, 1


def length_prefixed(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


def name_part(name: str) -> bytes:
    """The encoded state-name component (callers cache it per name)."""
    return length_prefixed(name.encode("utf-8"))


def group_prefix(key_group: int) -> bytes:
    return key_group.to_bytes(2, "big")


def cell_prefix(key_group: int, name_bytes: bytes, key: bytes, namespace_bytes: bytes) -> bytes:
    """Everything before the kind byte: the prefix of one cell's entries."""
    return b"".join((key_group.to_bytes(2, "big"), name_bytes, _LENGTH.pack(len(key)), key,
                     _LENGTH.pack(len(namespace_bytes)), namespace_bytes))


def successor(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix``."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\xff" * (len(prefix) + 1)
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))


def sequence_suffix(sequence: int) -> bytes:
    return _SEQUENCE.pack(sequence)


# -- namespaces (windows) ------------------------------------------------------------------------
def encode_namespace(namespace: Hashable) -> bytes:
    """Deterministic bytes of a namespace: equal windows must give equal bytes."""
    if namespace is None:
        return b"N"
    kind = type(namespace)
    if kind is GlobalWindow:
        return b"G"
    if kind is IntervalWindow:
        return b"I" + _INTERVAL.pack(namespace.start_micros, namespace.end_micros)
    return b"P" + _pickle(namespace)


def decode_namespace(data: bytes) -> Hashable:
    tag = data[:1]
    if tag == b"N":
        return None
    if tag == b"G":
        return GlobalWindow()
    if tag == b"I":
        start, end = _INTERVAL.unpack_from(data, 1)
        return IntervalWindow.from_micros(start, end)
    return pickle.loads(data[1:])


# -- values and map keys -------------------------------------------------------------------------
def encode_value(value: Any) -> bytes:
    if type(value) is bytes:
        return b"\x00" + value
    return b"\x01" + _pickle(value)


def decode_value(data: bytes) -> Any:
    if data[0] == _RAW:
        return data[1:]
    return pickle.loads(data[1:])


#: Map user keys: the same encoding, so a given user key always has the same bytes (pickle is
#: deterministic for the bytes, strings, numbers and tuples of them that state uses as keys).
encode_user_key = encode_value
decode_user_key = decode_value


# -- parsing -------------------------------------------------------------------------------------
def split_key(raw: bytes) -> Tuple[int, bytes, bytes, bytes, bytes, bytes, int]:
    """``(group, name bytes, key, namespace bytes, kind, suffix, namespace end offset)``."""
    group = int.from_bytes(raw[:2], "big")
    (name_length,) = _LENGTH.unpack_from(raw, 2)
    name_end = 6 + name_length
    (key_length,) = _LENGTH.unpack_from(raw, name_end)
    key_end = name_end + 4 + key_length
    (namespace_length,) = _LENGTH.unpack_from(raw, key_end)
    namespace_end = key_end + 4 + namespace_length
    return (group, raw[6:name_end], raw[name_end + 4:key_end], raw[key_end + 4:namespace_end],
            raw[namespace_end:namespace_end + 1], raw[namespace_end + 1:], namespace_end)


def parse_key(raw: bytes) -> Tuple[int, str, bytes, Hashable, bytes, bytes]:
    """``(group, state name, key, namespace, kind, suffix)`` of a RocksDB key."""
    group, name, key, namespace, kind, suffix, _ = split_key(raw)
    return group, name.decode("utf-8"), key, decode_namespace(namespace), kind, suffix


def scan(db: Any, lower: bytes, upper: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """``(key, value)`` of ``db`` for ``lower <= key < upper``, in key order.

    Seeks and stops itself: rocksdict 0.3.29 ignores iterate lower bounds.
    """
    it = db.iter()
    it.seek(lower)
    while it.valid():
        raw = it.key()
        if raw >= upper:
            return
        yield raw, it.value()
        it.next()
