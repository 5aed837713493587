"""The :class:`Coder` interface and the coders of single primitive types.

A coder turns values into bytes and back. As in Beam, coders compare equal
when they have the same type and the same component coders, and a coder
that is not deterministic can be asked for a deterministic variant when its
output is used to group keys.

>>> TupleCoder([StrUtf8Coder(), VarIntCoder()]).decode(
...     TupleCoder([StrUtf8Coder(), VarIntCoder()]).encode(("a", -3)))
('a', -3)
"""
from __future__ import annotations

import pickle
import struct
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import cloudpickle

from .wire import read_varint, varint

_DOUBLE = struct.Struct(">d")


class Coder:
    """Base class of coders; subclasses implement :meth:`encode` and :meth:`decode`.

    Subclasses with configuration override :meth:`_components` so that equal
    configurations compare and hash equal.

    >>> class UpperCoder(Coder):
    ...     def encode(self, value): return value.upper().encode()
    ...     def decode(self, encoded): return encoded.decode()
    >>> UpperCoder().encode("a"), UpperCoder() == UpperCoder()
    (b'A', True)
    """

    def encode(self, value: Any) -> bytes:
        """Encode ``value`` to bytes."""
        raise NotImplementedError(f"{type(self).__name__} does not implement encode()")

    def decode(self, encoded: bytes) -> Any:
        """Decode bytes produced by :meth:`encode`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement decode()")

    def is_deterministic(self) -> bool:
        """Whether equal values always encode to equal bytes, in every process."""
        return False

    def as_deterministic_coder(self, step_label: str,
                               error_message: Optional[str] = None) -> "Coder":
        """A deterministic coder for the same values, or ``ValueError`` naming the step.

        >>> VarIntCoder().as_deterministic_coder("GroupByKey")
        VarIntCoder
        """
        if self.is_deterministic():
            return self
        raise ValueError(
            error_message
            or f"{self!r} is not deterministic and cannot be made deterministic for "
               f"step {step_label!r}; register a deterministic coder for the key type "
               "with headrace.coders.registry.register_coder()"
        )

    def estimate_size(self, value: Any) -> int:
        """The encoded size of ``value`` in bytes (exact by default)."""
        return len(self.encode(value))

    @classmethod
    def from_type_hint(cls, typehint: Any, registry: Any) -> "Coder":
        """Build this coder for ``typehint``; the registry calls this for registered classes."""
        return cls()

    def _components(self) -> Tuple[Any, ...]:
        return ()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._components() == other._components()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._components()))

    def __repr__(self) -> str:
        parts = self._components()
        name = type(self).__name__
        return f"{name}[{', '.join(map(repr, parts))}]" if parts else name


def pickle_dumps(value: Any) -> bytes:
    """Pickle with protocol 5, retrying with cloudpickle for what pickle cannot
    reference by name (classes and functions defined in a function or ``__main__``).

    >>> pickle.loads(pickle_dumps(lambda: 1))()
    1
    """
    try:
        return pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, AttributeError, TypeError):
        return cloudpickle.dumps(value, protocol=5)


class PickleCoder(Coder):
    """Encodes any picklable value with pickle protocol 5 (cloudpickle when needed).

    Not deterministic: equal values can pickle differently.

    >>> PickleCoder().decode(PickleCoder().encode({1: "a"}))
    {1: 'a'}
    """

    def encode(self, value: Any) -> bytes:
        return pickle_dumps(value)

    def decode(self, encoded: bytes) -> Any:
        return pickle.loads(encoded)

    def as_deterministic_coder(self, step_label: str,
                               error_message: Optional[str] = None) -> Coder:
        # Imported here: the key coder module imports this one.
        from .keys import DeterministicKeyCoder

        return DeterministicKeyCoder(step_label)


class BytesCoder(Coder):
    """Encodes ``bytes`` as themselves.

    >>> BytesCoder().encode(b"ab")
    b'ab'
    """

    def encode(self, value: bytes) -> bytes:
        return bytes(value)

    def decode(self, encoded: bytes) -> bytes:
        return bytes(encoded)

    def is_deterministic(self) -> bool:
        return True


class StrUtf8Coder(Coder):
    """Encodes ``str`` as UTF-8.

    >>> StrUtf8Coder().encode("é")
    b'\\xc3\\xa9'
    """

    def encode(self, value: str) -> bytes:
        return value.encode("utf-8")

    def decode(self, encoded: bytes) -> str:
        return bytes(encoded).decode("utf-8")

    def is_deterministic(self) -> bool:
        return True


class VarIntCoder(Coder):
    """Encodes signed ints of any size as a zigzag varint (small magnitudes are short).

    >>> VarIntCoder().encode(-1), VarIntCoder().decode(VarIntCoder().encode(-1))
    (b'\\x01', -1)
    """

    def encode(self, value: int) -> bytes:
        if not isinstance(value, int):
            raise TypeError(f"VarIntCoder encodes ints, got {type(value).__name__}: {value!r}")
        return varint(value << 1 if value >= 0 else ((-value) << 1) - 1)

    def decode(self, encoded: bytes) -> int:
        zigzag, end = read_varint(encoded, 0)
        if end != len(encoded):
            raise ValueError(f"VarIntCoder: {len(encoded) - end} trailing bytes after the varint")
        return zigzag >> 1 if not zigzag & 1 else -((zigzag + 1) >> 1)

    def is_deterministic(self) -> bool:
        return True


class FloatCoder(Coder):
    """Encodes floats as 8-byte big-endian IEEE doubles.

    >>> FloatCoder().decode(FloatCoder().encode(0.5))
    0.5
    """

    def encode(self, value: float) -> bytes:
        return _DOUBLE.pack(value)

    def decode(self, encoded: bytes) -> float:
        return _DOUBLE.unpack(encoded)[0]

    def is_deterministic(self) -> bool:
        return True


class BooleanCoder(Coder):
    """Encodes bools as one byte.

    >>> BooleanCoder().encode(True)
    b'\\x01'
    """

    def encode(self, value: bool) -> bytes:
        return b"\x01" if value else b"\x00"

    def decode(self, encoded: bytes) -> bool:
        if encoded == b"\x01":
            return True
        if encoded == b"\x00":
            return False
        raise ValueError(f"BooleanCoder: expected b'\\x00' or b'\\x01', got {bytes(encoded)!r}")

    def is_deterministic(self) -> bool:
        return True


def _write_nested(coder: Coder, value: Any, out: List[bytes]) -> None:
    body = coder.encode(value)
    out.append(varint(len(body)))
    out.append(body)


def _read_nested(coder: Coder, buf: bytes, pos: int) -> Tuple[Any, int]:
    n, pos = read_varint(buf, pos)
    return coder.decode(buf[pos:pos + n]), pos + n


class TupleCoder(Coder):
    """Encodes fixed-length tuples, each component with its own coder.

    >>> c = TupleCoder([StrUtf8Coder(), VarIntCoder()])
    >>> c.decode(c.encode(("k", 2))), c.key_coder()
    (('k', 2), StrUtf8Coder)
    """

    def __init__(self, component_coders: Sequence[Coder]):
        self.component_coders = tuple(component_coders)

    def _components(self) -> Tuple[Any, ...]:
        return self.component_coders

    def encode(self, value: Sequence[Any]) -> bytes:
        if len(value) != len(self.component_coders):
            raise ValueError(
                f"{self!r} encodes tuples of {len(self.component_coders)} values, "
                f"got {len(value)}: {value!r}"[:300]
            )
        out: List[bytes] = []
        for coder, item in zip(self.component_coders, value):
            _write_nested(coder, item, out)
        return b"".join(out)

    def decode(self, encoded: bytes) -> Tuple[Any, ...]:
        items = []
        pos = 0
        for coder in self.component_coders:
            item, pos = _read_nested(coder, encoded, pos)
            items.append(item)
        return tuple(items)

    def is_deterministic(self) -> bool:
        return all(c.is_deterministic() for c in self.component_coders)

    def as_deterministic_coder(self, step_label: str,
                               error_message: Optional[str] = None) -> Coder:
        if self.is_deterministic():
            return self
        return TupleCoder([c.as_deterministic_coder(step_label, error_message)
                           for c in self.component_coders])

    def key_coder(self) -> Coder:
        """The first component's coder, for key-value tuples."""
        return self.component_coders[0]

    def value_coder(self) -> Coder:
        """The second component's coder, for key-value tuples."""
        return self.component_coders[1]


class IterableCoder(Coder):
    """Encodes an iterable as a count then its elements; decodes to a list.

    >>> IterableCoder(VarIntCoder()).decode(IterableCoder(VarIntCoder()).encode(range(3)))
    [0, 1, 2]
    """

    def __init__(self, elem_coder: Coder):
        self.elem_coder = elem_coder

    def _components(self) -> Tuple[Any, ...]:
        return (self.elem_coder,)

    def encode(self, value: Iterable[Any]) -> bytes:
        items = value if isinstance(value, (list, tuple)) else list(value)
        out = [varint(len(items))]
        for item in items:
            _write_nested(self.elem_coder, item, out)
        return b"".join(out)

    def decode(self, encoded: bytes) -> List[Any]:
        count, pos = read_varint(encoded, 0)
        items = []
        for _ in range(count):
            item, pos = _read_nested(self.elem_coder, encoded, pos)
            items.append(item)
        return items

    def is_deterministic(self) -> bool:
        return self.elem_coder.is_deterministic()

    def as_deterministic_coder(self, step_label: str,
                               error_message: Optional[str] = None) -> Coder:
        if self.is_deterministic():
            return self
        return type(self)(self.elem_coder.as_deterministic_coder(step_label, error_message))


class ListCoder(IterableCoder):
    """Encodes lists; the same format as :class:`IterableCoder`.

    >>> ListCoder(StrUtf8Coder()).decode(ListCoder(StrUtf8Coder()).encode(["a", "b"]))
    ['a', 'b']
    """
