"""Grouping keys of types only Beam knows how to encode.

Beam groups by the bytes of a key's coder. Keys whose type headrace encodes
itself (str, int, tuples, ...) need nothing; for other types, Beam's
registered deterministic coders (``beam.coders.registry.register_coder``) and
Beam's ``ShardedKey`` are made headrace key coders, so the same keys group on
headrace as on Beam. Non-deterministic coders are never used for keys.

Values of such types cross process boundaries (headrace's multiprocess
exchanges pickle elements) encoded by the user's registered Beam coder, as
Beam's runners move elements between workers: the type may not pickle at all.
"""
from __future__ import annotations

import copyreg
import pickle
import threading
from typing import Any, Dict, List, Tuple

from apache_beam.coders import registry as beam_registry
from apache_beam.utils.sharded_key import ShardedKey

from headrace.sdk.coders import keys
from headrace.sdk.coders.base import Coder
from headrace.sdk.coders.registry import registry


class BeamKeyCoder(Coder):
    """A deterministic Beam coder as a headrace coder (used for grouping keys)."""

    def __init__(self, beam_coder: Any) -> None:
        self.beam_coder = beam_coder

    def encode(self, value: Any) -> bytes:
        return self.beam_coder.encode(value)

    def decode(self, encoded: bytes) -> Any:
        return self.beam_coder.decode(encoded)

    def is_deterministic(self) -> bool:
        return True

    def _components(self) -> Tuple[Any, ...]:
        return (self.beam_coder,)


class ShardedKeyCoder(Coder):
    """Beam's ``ShardedKey`` by its key (headrace's key encoding) and shard id."""

    def encode(self, value: Any) -> bytes:
        return keys.encode_key((value.key, value._shard_id))

    def decode(self, encoded: bytes) -> Any:
        key, shard_id = keys.decode_key(encoded)
        return ShardedKey(key, shard_id)

    def is_deterministic(self) -> bool:
        return True


def _headrace_encodes(t: type) -> bool:
    return t in (str, int, tuple) or t in keys._ENCODERS


#: Types pickled by their user-registered Beam coder, and that coder. Referred to by
#: index in pickles: neither the type nor its coder need be picklable (a namedtuple
#: made at run time, a coder class local to a function). The multiprocess runner forks
#: its workers after registration, so every worker holds the same table.
_CODED: List[Tuple[type, Any]] = []
_CODED_INDEX: Dict[type, int] = {}


def _decode_registered(index: int, encoded: bytes) -> Any:
    return _CODED[index][1].decode(encoded)


#: Set while a registered coder encodes: a coder that falls back to pickling (Beam's
#: ``FastPrimitivesCoder`` with a pickling fallback) must get the usual reduction, not a
#: call back into itself.
_ENCODING = threading.local()


def _pickle_by_beam_coder(value: Any) -> Tuple[Any, Tuple[Any, ...]]:
    if getattr(_ENCODING, "active", False):
        return value.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    index = _CODED_INDEX[type(value)]
    _ENCODING.active = True
    try:
        encoded = _CODED[index][1].encode(value)
    finally:
        _ENCODING.active = False
    return _decode_registered, (index, encoded)


def _pickle_by_user_coder(t: type) -> None:
    """Pickle ``t``'s values by the coder the user registered with Beam for it (not one of
    Beam's own coders, whose pickling of a value is no better than pickle's). Beam's coders
    are those of its ``coders`` package: a coder defined in another module of Beam's (its
    test files, for one) is user code to the runner."""
    registered = beam_registry._coders.get(t)
    module = getattr(registered, "__module__", "") or ""
    if registered is None or module.startswith("apache_beam.coders."):
        return
    try:
        beam_coder = beam_registry.get_coder(t)
    except Exception:  # a coder Beam cannot build for the bare type: pickle as before
        return
    index = _CODED_INDEX.setdefault(t, len(_CODED))
    if index == len(_CODED):
        _CODED.append((t, beam_coder))
    else:
        _CODED[index] = (t, beam_coder)
    copyreg.pickle(t, _pickle_by_beam_coder)


def register_beam_key_coders() -> None:
    """Mirror Beam's deterministic coders of types headrace cannot encode as keys; pickle
    values of types with a user-registered Beam coder by that coder."""
    for t in list(beam_registry._coders):
        if not isinstance(t, type) or _headrace_encodes(t):
            continue
        _pickle_by_user_coder(t)
        current = registry._coders.get(t)
        if current is not None and not isinstance(current, BeamKeyCoder):
            continue  # a headrace registration wins
        try:
            beam_coder = beam_registry.get_coder(t)
        except Exception:  # a coder Beam cannot build for the bare type
            continue
        if not beam_coder.is_deterministic():
            try:  # as Beam's GroupByKey does: the coder's deterministic variant, if it has one
                beam_coder = beam_coder.as_deterministic_coder(t.__qualname__)
            except Exception:
                continue
            if not beam_coder.is_deterministic():
                continue
        coder = BeamKeyCoder(beam_coder)
        if current != coder:
            registry.register_coder(t, coder)
    if ShardedKey not in registry._coders:
        registry.register_coder(ShardedKey, ShardedKeyCoder())
