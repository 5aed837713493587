"""What Beam's runners do around a grouping, made explicit around headrace's.

Two things a Beam user sees at a ``GroupByKey`` (or a lifted ``CombinePerKey``)
that headrace's own grouping does differently:

* **Keys.** Beam groups by the bytes of the key coder it chose for the step:
  the coder of the input's key type, made deterministic
  (``as_deterministic_coder``) unless the pipeline sets
  ``allow_non_deterministic_key_coders``. Headrace groups by its own
  deterministic encoding and refuses keys it cannot encode (objects compared by
  identity, say). For such a key, :class:`KeyByBeamCoder` keys the element by
  Beam's encoding of it instead (a :class:`BeamCodedKey`), and
  :class:`BeamGroupedOutput` gives the grouped element its original key back.
  Keys headrace can encode are grouped by headrace's encoding as before.
  When Beam's coder cannot encode the key either, headrace's error is raised.
  Stateful ``DoFn`` s are keyed the same way: the adapter gives the DoFn its
  element and ``KeyParam`` with the original key.
* **Timestamps.** Beam's portable runners (FnApiRunner, Prism, Flink, Spark,
  Dataflow) move elements between fused stages with Beam's windowed-value
  coder, which keeps timestamps in milliseconds (rounded down). A grouping is
  such a boundary, so its outputs carry millisecond timestamps
  (``OUTPUT_AT_EOW`` of ``[1, 4)`` is ``3.999``, not ``3.999999``):
  :class:`BeamGroupedOutput` rounds them down the same way.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from apache_beam.coders import typecoders as beam_typecoders
from apache_beam.options.pipeline_options import TypeOptions
from apache_beam.typehints import typehints as beam_typehints

from headrace.sdk.coders import NonDeterministicKeyError, encode_key
from headrace.sdk.coders.base import Coder
from headrace.sdk.coders.registry import registry
from headrace.sdk.dofn import DoFn
from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS
from headrace.sdk.windowed_value import PANE_INFO_UNKNOWN, WindowedValue

#: Key types headrace always encodes itself; keys statically typed as these are never wrapped.
_HEADRACE_KEY_TYPES = (str, int, bytes, float, bool, type(None))
_MISSING = object()


class BeamCodedKey:
    """A grouping key that headrace cannot encode, carried with Beam's encoding of it.

    Equal (and hashed) by the encoding, as Beam groups; ``value`` is the original key
    (absent after a trip through headrace's key coder, then decoded with Beam's coder).
    """

    __slots__ = ("encoded", "value")

    def __init__(self, encoded: bytes, value: Any = _MISSING) -> None:
        self.encoded = encoded
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is BeamCodedKey and other.encoded == self.encoded

    def __hash__(self) -> int:
        return hash(self.encoded)

    def __repr__(self) -> str:
        return f"BeamCodedKey({self.encoded!r})"


class BeamCodedKeyCoder(Coder):
    """Headrace's (deterministic) key coder for :class:`BeamCodedKey`: the Beam bytes."""

    def encode(self, value: Any) -> bytes:
        return value.encoded

    def decode(self, encoded: bytes) -> Any:
        return BeamCodedKey(encoded)

    def is_deterministic(self) -> bool:
        return True


registry.register_coder(BeamCodedKey, BeamCodedKeyCoder())


def beam_key_coder(beam_pcoll: Any, options: Any, label: str) -> Optional[Any]:
    """The key coder Beam uses for a grouping of ``beam_pcoll``, or ``None`` when no keys
    need it (statically typed as a type headrace encodes) or Beam has no usable one."""
    element_type = beam_pcoll.element_type
    key_type: Any = beam_typehints.Any
    if isinstance(element_type, beam_typehints.TupleConstraint) \
            and len(element_type.tuple_types) == 2:
        key_type = element_type.tuple_types[0]
    if key_type in _HEADRACE_KEY_TYPES:
        return None
    try:  # Beam's registry as it is now (a test may have swapped it in)
        coder = beam_typecoders.registry.get_coder(key_type)
        allow = options is not None and options.view_as(
            TypeOptions).allow_non_deterministic_key_coders
        if not allow and not coder.is_deterministic():
            coder = coder.as_deterministic_coder(label)
    except Exception:  # noqa: BLE001 (Beam has no key coder: headrace's refusal stands)
        return None
    return coder


class KeyByBeamCoder(DoFn):
    """Keys an element by Beam's encoding of its key when headrace cannot encode the key."""

    def __init__(self, beam_coder: Any) -> None:
        self.beam_coder = beam_coder

    def process(self, element: Any) -> Iterable[Any]:
        if type(element) is not tuple or len(element) != 2 \
                or type(element[0]) in _HEADRACE_KEY_TYPES:
            return (element,)  # the grouping reports a malformed element itself
        key, value = element
        try:
            encode_key(key)
            return (element,)
        except NonDeterministicKeyError as exc:
            try:
                encoded = self.beam_coder.encode(key)
            except Exception:  # noqa: BLE001 (Beam cannot encode it either)
                raise exc from None
            return ((BeamCodedKey(encoded, key), value),)

    def default_label(self) -> str:
        return "KeyByBeamCoder"


def original_key(key: Any, beam_coder: Any) -> Any:
    """The key a :class:`KeyByBeamCoder` replaced (``key`` itself when it did not)."""
    if type(key) is not BeamCodedKey:
        return key
    return beam_coder.decode(key.encoded) if key.value is _MISSING else key.value


def original_element(element: Any, beam_coder: Any) -> Any:
    """``element`` with the key a :class:`KeyByBeamCoder` replaced given back."""
    if type(element) is tuple and len(element) == 2 and type(element[0]) is BeamCodedKey:
        return original_key(element[0], beam_coder), element[1]
    return element


class BeamGroupedOutput(DoFn):
    """A grouping's output as Beam's portable runners give it: the original key back, and
    the timestamp rounded down to milliseconds."""

    def __init__(self, beam_coder: Optional[Any]) -> None:
        self.beam_coder = beam_coder

    def process(self, element: Any, timestamp: Any = DoFn.TimestampParam,
                window: Any = DoFn.WindowParam,
                pane: Any = DoFn.PaneInfoParam) -> Iterable[Any]:
        if self.beam_coder is not None:
            element = original_element(element, self.beam_coder)
        micros = timestamp.micros
        excess = micros % 1000
        if excess and MIN_MICROS < micros < MAX_MICROS:
            pane = None if pane is PANE_INFO_UNKNOWN else pane
            return (WindowedValue.of(element, micros - excess, (window,), pane),)
        return (element,)

    def default_label(self) -> str:
        return "BeamGroupedOutput"
