"""The tagged binary format shared by :class:`FastPrimitivesCoder` and key encoding.

Every value starts with one tag byte naming its type, so ``1``, ``1.0`` and
``True`` never share an encoding, and every encoding is self-delimiting, so
the parts of a tuple can simply be concatenated. Key encoding
(:mod:`headrace.sdk.coders.keys`) writes a deterministic subset of the tags;
the fast coder adds ``DICT`` and ``PICKLE``. :func:`decode_value` reads both.

>>> decode_value(bytes([STR, 2]) + b"hi")
'hi'
"""
from __future__ import annotations

import datetime
import importlib
import pickle
import struct
import uuid
from typing import Any, Callable, Dict, List, Tuple

from headrace.sdk.timestamp import Duration, Timestamp

NONE = 0x00
FALSE = 0x01
TRUE = 0x02
INT = 0x03
FLOAT = 0x04
STR = 0x05
BYTES = 0x06
TUPLE = 0x07
LIST = 0x08
DICT = 0x09
FROZENSET = 0x0A
NAMED_TUPLE = 0x0B
ENUM = 0x0C
DATACLASS = 0x0D
DATE = 0x0E
NAIVE_DATETIME = 0x0F
UTC_DATETIME = 0x10
TIMEDELTA = 0x11
UUID = 0x12
REGISTERED = 0x13
TIMESTAMP = 0x14
DURATION = 0x15
SET = 0x16
PICKLE = 0xFF

NONE_BYTES = bytes((NONE,))
FALSE_BYTES = bytes((FALSE,))
TRUE_BYTES = bytes((TRUE,))

_PACK_DOUBLE = struct.Struct(">d").pack
_UNPACK_DOUBLE = struct.Struct(">d").unpack_from
EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()

# Precomputed headers keep the common short str/bytes/int cases to one concat.
STR_HEADERS = [bytes((STR, n)) for n in range(128)]
BYTES_HEADERS = [bytes((BYTES, n)) for n in range(128)]
INT_HEADERS = [bytes((INT, n)) for n in range(128)]
TUPLE_HEADERS = [bytes((TUPLE, n)) for n in range(128)]
LIST_HEADERS = [bytes((LIST, n)) for n in range(128)]


def varint(n: int) -> bytes:
    """Encode a non-negative int as a little-endian base-128 varint.

    >>> varint(300)
    b'\\xac\\x02'
    """
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf: bytes, pos: int) -> Tuple[int, int]:
    """Read a varint at ``pos``; return ``(value, next_pos)``.

    >>> read_varint(b"\\xac\\x02", 0)
    (300, 2)
    """
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def header(tag: int, n: int) -> bytes:
    """A tag byte followed by the varint ``n`` (a length or an element count).

    >>> header(STR, 3)
    b'\\x05\\x03'
    """
    return bytes((tag, n)) if n < 0x80 else bytes((tag,)) + varint(n)


def encode_int(v: int) -> bytes:
    """Encode an int of any size as INT, length, big-endian two's complement.

    The length is a function of the value alone, so the encoding is canonical.

    >>> encode_int(-1)
    b'\\x03\\x01\\xff'
    """
    n = (v.bit_length() + 8) >> 3
    body = v.to_bytes(n, "big", signed=True)
    return (INT_HEADERS[n] if n < 0x80 else header(INT, n)) + body


def encode_float(v: float) -> bytes:
    """Encode a float as FLOAT then an 8-byte big-endian IEEE double.

    >>> encode_float(1.0)
    b'\\x04?\\xf0\\x00\\x00\\x00\\x00\\x00\\x00'
    """
    return b"\x04" + _PACK_DOUBLE(v)


def encode_str(v: str) -> bytes:
    """Encode a str as STR, byte length, UTF-8.

    >>> encode_str("hi")
    b'\\x05\\x02hi'
    """
    b = v.encode()
    n = len(b)
    return (STR_HEADERS[n] if n < 0x80 else header(STR, n)) + b


def encode_bytes(v: bytes) -> bytes:
    """Encode bytes as BYTES, length, data.

    >>> encode_bytes(b"ab")
    b'\\x06\\x02ab'
    """
    n = len(v)
    return (BYTES_HEADERS[n] if n < 0x80 else header(BYTES, n)) + v


def type_name(t: type) -> str:
    """The importable ``module:qualname`` that identifies ``t`` across processes.

    >>> type_name(datetime.date)
    'datetime:date'
    """
    return f"{t.__module__}:{t.__qualname__}"


_type_headers: Dict[Tuple[int, type], bytes] = {}


def typed_header(tag: int, t: type) -> bytes:
    """``tag`` followed by the length-prefixed :func:`type_name` of ``t``.

    >>> typed_header(DATE, datetime.date)[2:]
    b'datetime:date'
    """
    header_bytes = _type_headers.get((tag, t))
    if header_bytes is None:
        name = type_name(t).encode()
        header_bytes = _type_headers[(tag, t)] = bytes((tag,)) + varint(len(name)) + name
    return header_bytes


_resolved_types: Dict[str, type] = {}


def resolve_type(name: str) -> type:
    """Import the type named by :func:`type_name`.

    >>> resolve_type("datetime:date") is datetime.date
    True
    """
    t = _resolved_types.get(name)
    if t is not None:
        return t
    module_name, _, qualname = name.partition(":")
    if "<locals>" in qualname:
        raise TypeError(
            f"Cannot decode a value of type {name!r}: it is defined inside a "
            "function, so it cannot be imported by name; define it at module level"
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise TypeError(f"Cannot decode a value of type {name!r}: {exc}") from exc
    _resolved_types[name] = obj
    return obj


def _read_type(buf: bytes, pos: int) -> Tuple[type, int]:
    n, pos = read_varint(buf, pos)
    return resolve_type(buf[pos:pos + n].decode()), pos + n


def _read_items(buf: bytes, pos: int) -> Tuple[List[Any], int]:
    count, pos = read_varint(buf, pos)
    items = []
    for _ in range(count):
        item, pos = decode_at(buf, pos)
        items.append(item)
    return items, pos


def _read_ints(buf: bytes, pos: int, count: int) -> Tuple[List[int], int]:
    out = []
    for _ in range(count):
        v, pos = decode_at(buf, pos)
        out.append(v)
    return out, pos


def _decode_registered(buf: bytes, pos: int) -> Tuple[Any, int]:
    # Imported here because the registry imports the coders built on this module.
    from .registry import registry

    t, pos = _read_type(buf, pos)
    n, pos = read_varint(buf, pos)
    coder = registry.deterministic_coder_for(t)
    if coder is None:
        raise TypeError(
            f"Cannot decode a key of type {type_name(t)!r}: no deterministic coder "
            "is registered for it in this process"
        )
    return coder.decode(buf[pos:pos + n]), pos + n


def decode_at(buf: bytes, pos: int) -> Tuple[Any, int]:
    """Decode the value starting at ``pos``; return ``(value, next_pos)``.

    >>> decode_at(b"\\x00\\x02", 1)
    (True, 2)
    """
    tag = buf[pos]
    pos += 1
    if tag == STR or tag == BYTES:
        n, pos = read_varint(buf, pos)
        end = pos + n
        return (buf[pos:end].decode() if tag == STR else buf[pos:end]), end
    if tag == INT:
        n, pos = read_varint(buf, pos)
        return int.from_bytes(buf[pos:pos + n], "big", signed=True), pos + n
    if tag == NONE:
        return None, pos
    if tag == FALSE or tag == TRUE:
        return tag == TRUE, pos
    if tag == FLOAT:
        return _UNPACK_DOUBLE(buf, pos)[0], pos + 8
    if tag == TUPLE or tag == LIST:
        items, pos = _read_items(buf, pos)
        return (tuple(items) if tag == TUPLE else items), pos
    if tag == DICT:
        count, pos = read_varint(buf, pos)
        d = {}
        for _ in range(count):
            k, pos = decode_at(buf, pos)
            d[k], pos = decode_at(buf, pos)
        return d, pos
    if tag == FROZENSET or tag == SET:
        items, pos = _read_items(buf, pos)
        return (frozenset(items) if tag == FROZENSET else set(items)), pos
    if tag == PICKLE:
        n, pos = read_varint(buf, pos)
        return pickle.loads(buf[pos:pos + n]), pos + n
    decoder = _STRUCTURED_DECODERS.get(tag)
    if decoder is None:
        raise ValueError(f"Cannot decode: unknown type tag 0x{tag:02x} at byte {pos - 1}")
    return decoder(buf, pos)


def _decode_named_tuple(buf: bytes, pos: int) -> Tuple[Any, int]:
    t, pos = _read_type(buf, pos)
    items, pos = _read_items(buf, pos)
    return t(*items), pos


def _decode_enum(buf: bytes, pos: int) -> Tuple[Any, int]:
    t, pos = _read_type(buf, pos)
    member, pos = decode_at(buf, pos)
    return t[member], pos


def _decode_dataclass(buf: bytes, pos: int) -> Tuple[Any, int]:
    t, pos = _read_type(buf, pos)
    count, pos = read_varint(buf, pos)
    fields = {}
    for _ in range(count):
        name, pos = decode_at(buf, pos)
        fields[name], pos = decode_at(buf, pos)
    return t(**fields), pos


def _decode_date(buf: bytes, pos: int) -> Tuple[Any, int]:
    days, pos = decode_at(buf, pos)
    return datetime.date.fromordinal(days + EPOCH_ORDINAL), pos


def _decode_datetime(buf: bytes, pos: int, tz: Any) -> Tuple[Any, int]:
    (days, micros), pos = _read_ints(buf, pos, 2)
    base = datetime.datetime.combine(datetime.date.fromordinal(days + EPOCH_ORDINAL),
                                     datetime.time(), tz)
    return base + datetime.timedelta(microseconds=micros), pos


def _decode_timedelta(buf: bytes, pos: int) -> Tuple[Any, int]:
    (days, seconds, micros), pos = _read_ints(buf, pos, 3)
    return datetime.timedelta(days, seconds, micros), pos


def _decode_micros(buf: bytes, pos: int, cls: type) -> Tuple[Any, int]:
    micros, pos = decode_at(buf, pos)
    return cls(micros=micros), pos


_STRUCTURED_DECODERS: Dict[int, Callable[[bytes, int], Tuple[Any, int]]] = {
    NAMED_TUPLE: _decode_named_tuple,
    ENUM: _decode_enum,
    DATACLASS: _decode_dataclass,
    DATE: _decode_date,
    NAIVE_DATETIME: lambda buf, pos: _decode_datetime(buf, pos, None),
    UTC_DATETIME: lambda buf, pos: _decode_datetime(buf, pos, datetime.timezone.utc),
    TIMEDELTA: _decode_timedelta,
    UUID: lambda buf, pos: (uuid.UUID(bytes=bytes(buf[pos:pos + 16])), pos + 16),
    REGISTERED: _decode_registered,
    TIMESTAMP: lambda buf, pos: _decode_micros(buf, pos, Timestamp),
    DURATION: lambda buf, pos: _decode_micros(buf, pos, Duration),
}


def decode_value(data: bytes) -> Any:
    """Decode one complete value; trailing bytes are an error.

    >>> decode_value(encode_int(-5))
    -5
    """
    try:
        value, pos = decode_at(data, 0)
    except (IndexError, struct.error):
        pos = len(data) + 1
    if pos > len(data):
        raise ValueError(f"Cannot decode {len(data)} bytes: the data is truncated")
    if pos != len(data):
        raise ValueError(
            f"Cannot decode: {len(data) - pos} unexpected trailing bytes after the value"
        )
    return value


def datetime_parts(dt: datetime.datetime) -> Tuple[int, bool, int]:
    """``(days since epoch, is_aware, microseconds into the day)``, aware values in UTC.

    Aware datetimes are equal when they name the same instant, so they are
    normalized to UTC before encoding.

    >>> datetime_parts(datetime.datetime(1970, 1, 2, 0, 0, 1))
    (1, False, 1000000)
    """
    aware = dt.utcoffset() is not None
    if aware:
        dt = (dt - dt.utcoffset()).replace(tzinfo=None)
    micros = ((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1_000_000 + dt.microsecond
    return dt.toordinal() - EPOCH_ORDINAL, aware, micros
