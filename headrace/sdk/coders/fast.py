"""The default coder for values of unknown type.

>>> c = FastPrimitivesCoder()
>>> c.decode(c.encode({"a": (1, 1.0, True, None, b"x", [2**70])}))
{'a': (1, 1.0, True, None, b'x', [1180591620717411303424])}
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from . import wire
from .base import Coder, pickle_dumps


def _encode(value: Any) -> bytes:
    t = type(value)
    if t is str:
        return wire.encode_str(value)
    if t is int:
        return wire.encode_int(value)
    encoder = _ENCODERS.get(t)
    if encoder is not None:
        return encoder(value)
    body = pickle_dumps(value)
    return bytes((wire.PICKLE,)) + wire.varint(len(body)) + body


def _encode_dict(value: dict) -> bytes:
    parts = [wire.header(wire.DICT, len(value))]
    for k, v in value.items():
        parts.append(_encode(k))
        parts.append(_encode(v))
    return b"".join(parts)


_ENCODERS: Dict[type, Callable[[Any], bytes]] = {
    bytes: wire.encode_bytes,
    float: wire.encode_float,
    type(None): lambda _: wire.NONE_BYTES,
    bool: lambda v: wire.TRUE_BYTES if v else wire.FALSE_BYTES,
    tuple: lambda v: wire.header(wire.TUPLE, len(v)) + b"".join([_encode(e) for e in v]),
    list: lambda v: wire.header(wire.LIST, len(v)) + b"".join([_encode(e) for e in v]),
    dict: _encode_dict,
}


class FastPrimitivesCoder(Coder):
    """Encodes None, bool, int, float, str, bytes, tuple, list and dict compactly.

    Every value starts with a type tag, so it round-trips exactly (``True``
    stays a bool, ``1.0`` a float, ints may be of any size); other values,
    including subclasses of those types, are pickled (see ``pickle_dumps``).
    Not deterministic: dict order and pickle output can differ between equal
    values. :meth:`as_deterministic_coder` returns the key coder.

    >>> c = FastPrimitivesCoder()
    >>> [type(v).__name__ for v in c.decode(c.encode((True, 1, 1.0)))]
    ['bool', 'int', 'float']
    """

    def encode(self, value: Any) -> bytes:
        return _encode(value)

    def decode(self, encoded: bytes) -> Any:
        return wire.decode_value(encoded)

    def as_deterministic_coder(self, step_label: str,
                               error_message: Optional[str] = None) -> Coder:
        # Imported here: the key coder module imports the registry, which imports this one.
        from .keys import DeterministicKeyCoder

        return DeterministicKeyCoder(step_label)
