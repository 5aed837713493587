"""Beam-compatible ``coders`` namespace: ``beam.coders.Coder``, ``beam.coders.registry``, ...

>>> import headrace.coders as coders
>>> coders.registry.get_coder(bytes)
BytesCoder
"""
from headrace.sdk.coders import (
                                 BooleanCoder,
                                 BytesCoder,
                                 Coder,
                                 CoderRegistry,
                                 DeterministicKeyCoder,
                                 FastPrimitivesCoder,
                                 FloatCoder,
                                 IterableCoder,
                                 ListCoder,
                                 NonDeterministicKeyError,
                                 PickleCoder,
                                 StrUtf8Coder,
                                 TupleCoder,
                                 VarIntCoder,
                                 decode_key,
                                 encode_key,
                                 registry,
)

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
