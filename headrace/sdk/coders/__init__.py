"""Coders: how values become bytes, and how grouping keys are encoded deterministically.

>>> from headrace.sdk.coders import encode_key, registry
>>> encode_key(("a", 1)) == encode_key(("a", 1)), registry.get_coder(str)
(True, StrUtf8Coder)
"""
from .base import (
                   BooleanCoder,
                   BytesCoder,
                   Coder,
                   FloatCoder,
                   IterableCoder,
                   ListCoder,
                   PickleCoder,
                   StrUtf8Coder,
                   TupleCoder,
                   VarIntCoder,
)
from .fast import FastPrimitivesCoder
from .keys import DeterministicKeyCoder, NonDeterministicKeyError, decode_key, encode_key
from .registry import CoderRegistry, registry

__all__ = [
    "BooleanCoder",
    "BytesCoder",
    "Coder",
    "CoderRegistry",
    "DeterministicKeyCoder",
    "FastPrimitivesCoder",
    "FloatCoder",
    "IterableCoder",
    "ListCoder",
    "NonDeterministicKeyError",
    "PickleCoder",
    "StrUtf8Coder",
    "TupleCoder",
    "VarIntCoder",
    "decode_key",
    "encode_key",
    "registry",
]
