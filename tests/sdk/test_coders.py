"""Tests of headrace.sdk.coders: round trips, key determinism, errors, registry."""
import collections
import dataclasses
import datetime
import enum
import os
import pickle
import struct
import subprocess
import sys
import timeit
import typing
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import headrace.coders
from headrace.sdk import coders as sdk_coders
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
from headrace.sdk.timestamp import Duration, Timestamp

pytestmark = pytest.mark.no_pipeline

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

Point = collections.namedtuple("Point", "x y")


class Color(enum.Enum):
    RED = 1
    GREEN = "green"


@dataclasses.dataclass(frozen=True)
class Item:
    name: str
    qty: int


@dataclasses.dataclass
class MutableItem:
    name: str


class Opaque:
    pass


def same(a, b):
    """Equality that also requires equal types all the way down (1 is not True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, frozenset):
        return sorted(map(repr, a)) == sorted(map(repr, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


# --- simple coders ---------------------------------------------------------------------------

@pytest.mark.parametrize("coder, value", [
    (PickleCoder(), {"a": [1, {2}]}),
    (BytesCoder(), b"\x00\xff"),
    (StrUtf8Coder(), "héllo ✓"),
    (VarIntCoder(), 0),
    (VarIntCoder(), -1),
    (VarIntCoder(), 2**200),
    (VarIntCoder(), -(2**63)),
    (FloatCoder(), -0.0),
    (FloatCoder(), float("inf")),
    (BooleanCoder(), True),
    (BooleanCoder(), False),
    (TupleCoder([StrUtf8Coder(), VarIntCoder()]), ("k", -5)),
    (TupleCoder([BytesCoder(), TupleCoder([FloatCoder(), BooleanCoder()])]), (b"", (1.5, False))),
    (IterableCoder(StrUtf8Coder()), ["a", "", "c"]),
    (ListCoder(VarIntCoder()), list(range(-3, 300))),
    (FastPrimitivesCoder(), (None, True, 1, 1.0, "s", b"b", [], {})),
    (DeterministicKeyCoder(), ("a", (1, 2.5), frozenset({"x"}))),
])
def test_round_trip(coder, value):
    assert same(coder.decode(coder.encode(value)), value)
    assert coder.estimate_size(value) == len(coder.encode(value))


def test_varint_zigzag_keeps_small_magnitudes_short():
    assert [len(VarIntCoder().encode(v)) for v in (0, -1, 1, -64, 63, 64)] == [1, 1, 1, 1, 1, 2]


def test_iterable_coder_accepts_any_iterable():
    assert IterableCoder(VarIntCoder()).decode(IterableCoder(VarIntCoder()).encode(range(3))) == [
        0, 1, 2]


@pytest.mark.parametrize("coder, expected", [
    (PickleCoder(), False),
    (FastPrimitivesCoder(), False),
    (VarIntCoder(), True),
    (TupleCoder([StrUtf8Coder(), VarIntCoder()]), True),
    (TupleCoder([StrUtf8Coder(), PickleCoder()]), False),
    (ListCoder(FloatCoder()), True),
    (DeterministicKeyCoder(), True),
])
def test_is_deterministic(coder, expected):
    assert coder.is_deterministic() is expected


def test_as_deterministic_coder():
    assert VarIntCoder().as_deterministic_coder("s") == VarIntCoder()
    assert FastPrimitivesCoder().as_deterministic_coder("s") == DeterministicKeyCoder()
    assert PickleCoder().as_deterministic_coder("s") == DeterministicKeyCoder()
    assert TupleCoder([StrUtf8Coder(), PickleCoder()]).as_deterministic_coder("s") == TupleCoder(
        [StrUtf8Coder(), DeterministicKeyCoder()])
    assert ListCoder(PickleCoder()).as_deterministic_coder("s") == ListCoder(
        DeterministicKeyCoder())


class ShuffledCoder(Coder):
    def encode(self, value):
        return pickle.dumps(value)

    def decode(self, encoded):
        return pickle.loads(encoded)


def test_as_deterministic_coder_errors_name_the_step():
    with pytest.raises(ValueError, match=r"ShuffledCoder is not deterministic .* 'CountWords'"):
        ShuffledCoder().as_deterministic_coder("CountWords")
    with pytest.raises(ValueError, match="custom message"):
        TupleCoder([ShuffledCoder()]).as_deterministic_coder("s", "custom message")


def test_coder_equality_hash_and_repr():
    pair = [VarIntCoder(), StrUtf8Coder()]
    assert TupleCoder(pair) == TupleCoder(list(pair))
    assert TupleCoder([VarIntCoder()]) != TupleCoder([StrUtf8Coder()])
    assert ListCoder(VarIntCoder()) != IterableCoder(VarIntCoder())
    assert len({VarIntCoder(), VarIntCoder(), ListCoder(VarIntCoder())}) == 2
    assert repr(TupleCoder([VarIntCoder(), ListCoder(BytesCoder())])) == (
        "TupleCoder[VarIntCoder, ListCoder[BytesCoder]]")
    assert pickle.loads(pickle.dumps(TupleCoder([VarIntCoder()]))) == TupleCoder([VarIntCoder()])


def test_simple_coder_errors():
    with pytest.raises(TypeError, match="VarIntCoder encodes ints, got str"):
        VarIntCoder().encode("1")
    with pytest.raises(ValueError, match="trailing bytes"):
        VarIntCoder().decode(b"\x01\x01")
    with pytest.raises(ValueError, match=r"BooleanCoder: expected .* got b'\\x02'"):
        BooleanCoder().decode(b"\x02")
    with pytest.raises(ValueError, match="encodes tuples of 2 values, got 3"):
        TupleCoder([VarIntCoder(), VarIntCoder()]).encode((1, 2, 3))
    with pytest.raises(NotImplementedError, match="Coder does not implement encode"):
        Coder().encode(1)


# --- FastPrimitivesCoder ---------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    None, True, False, 0, 1, -1, 2**64, -(2**100), 1.0, -0.0, float("inf"), "", "ü", b"", b"\x00",
    (), (1,), [], [1, [2, (3,)]], {}, {"b": 1, "a": (True, None)}, {1: 1, 1.5: 2, (1, "x"): [3]},
])
def test_fast_primitives_round_trip_keeps_types(value):
    coder = FastPrimitivesCoder()
    assert same(coder.decode(coder.encode(value)), value)


@pytest.mark.parametrize("value", [
    {1, 2}, Point(1, 2), Color.RED, Item("a", 1), datetime.date(2020, 1, 2), Opaque,
    complex(1, 2), [Point(1, 2), {3}],
])
def test_fast_primitives_pickles_other_types(value):
    coder = FastPrimitivesCoder()
    decoded = coder.decode(coder.encode(value))
    assert decoded == value and type(decoded) is type(value)


def test_fast_primitives_subclass_stays_subclass():
    class Name(str):
        pass

    coder = FastPrimitivesCoder()
    assert type(coder.decode(coder.encode([Name("a")]))[0]) is Name


def test_fast_primitives_nan():
    import math

    assert math.isnan(FastPrimitivesCoder().decode(FastPrimitivesCoder().encode(float("nan"))))


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary(),
    lambda children: (st.lists(children, max_size=4) | st.lists(children, max_size=4).map(tuple)
                      | st.dictionaries(st.text(max_size=3) | st.integers(), children, max_size=3)),
    max_leaves=20)


@settings(max_examples=300, deadline=None, database=None)
@given(json_like)
def test_fast_primitives_round_trip_property(value):
    coder = FastPrimitivesCoder()
    assert same(coder.decode(coder.encode(value)), value)


# --- key encoding ----------------------------------------------------------------------------

scalar_keys = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
               | st.binary())
key_values = st.recursive(
    scalar_keys | st.frozensets(scalar_keys, max_size=4) | st.uuids()
    | st.dates() | st.datetimes() | st.timedeltas(),
    lambda children: st.lists(children, max_size=4) | st.lists(children, max_size=4).map(tuple),
    max_leaves=20)


@settings(max_examples=500, deadline=None, database=None)
@given(key_values)
def test_key_round_trip_property(key):
    """Decoding gives back the same typed value, so distinct keys never share bytes."""
    assert same(decode_key(encode_key(key)), key)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.text(max_size=5) | st.integers(), max_size=8))
def test_frozenset_encoding_ignores_insertion_order(items):
    assert encode_key(frozenset(items)) == encode_key(frozenset(reversed(items)))


def test_dict_and_set_keys_group_by_contents():
    assert encode_key({"b": 1, "a": 2}) == encode_key({"a": 2, "b": 1})
    assert encode_key({3, 1, 2}) == encode_key({1, 2, 3}) != encode_key(frozenset({1, 2, 3}))
    assert encode_key({"a": 1}) != encode_key({"a": 2})
    assert decode_key(encode_key({"b": 1, "a": (2, 3)})) == {"a": (2, 3), "b": 1}


@pytest.mark.parametrize("a, b", [
    (1, 1.0), (1, True), (0, False), (0.0, -0.0), ("a", b"a"), ((1,), [1]), ((), []),
    (("ab", "c"), ("a", "bc")), ((1, 2), (1, (2,))), (None, ()), ("", b""), (2**64, 2**64 + 1),
    (Point(1, 2), (1, 2)), (Color.RED, 1), (Item("a", 1), ("a", 1)),
    (Timestamp(1), Duration(1)), (Timestamp(1), 1),
])
def test_different_keys_encode_differently(a, b):
    assert encode_key(a) != encode_key(b)


def test_same_keys_encode_equally():
    assert encode_key(("a", 1)) == encode_key(tuple(["a", 1]))
    assert encode_key(frozenset({"x", "y", 3})) == encode_key(frozenset({3, "y", "x"}))
    tz = datetime.timezone(datetime.timedelta(hours=5))
    assert encode_key(datetime.datetime(2024, 1, 1, 5, tzinfo=tz)) == encode_key(
        datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    assert encode_key(Timestamp(1.5)) == encode_key(Timestamp(micros=1_500_000))


@pytest.mark.parametrize("a, b", [
    (1, 1.0), (1, True), (0.0, -0.0), ("a", b"a"), ((1,), [1]), (("ab", "c"), ("a", "bc")),
    (float("nan"), float("nan")), (("a", 1), ("a", 1)), ([1, "x"], [1, "x"]), (2**70, 2**70),
    ({"b": 1, "a": 2}, {"a": 2, "b": 1}), (Point(1, 2), (1, 2)), (Color.RED, Color.RED),
])
def test_grouping_matches_beam_deterministic_coder(a, b):
    """Beam groups by deterministic coder output; the same keys group together here."""
    beam_coders = pytest.importorskip("apache_beam.coders.coders")
    beam = beam_coders.FastPrimitivesCoder().as_deterministic_coder("step")
    beam_same = beam.encode(a) == beam.encode(b)
    assert (encode_key(a) == encode_key(b)) == beam_same


@pytest.mark.parametrize("key", [
    Point("a", (1, 2)), Color.GREEN, Item("x", 3), datetime.date(1969, 12, 31),
    datetime.datetime(2024, 2, 29, 23, 59, 59, 999999), datetime.timedelta(days=-3, seconds=5),
    uuid.UUID(int=12345), Timestamp(-1.25), Duration(3),
])
def test_structured_keys_round_trip(key):
    decoded = decode_key(encode_key(key))
    assert decoded == key and type(decoded) is type(key)


def test_aware_datetime_decodes_to_the_same_instant_in_utc():
    tz = datetime.timezone(datetime.timedelta(hours=-3))
    dt = datetime.datetime(2024, 1, 1, 22, 30, tzinfo=tz)
    decoded = decode_key(encode_key(dt))
    assert decoded == dt and decoded.tzinfo == datetime.timezone.utc


_SUBPROCESS_SCRIPT = r"""
import collections, dataclasses, datetime, enum, uuid
from headrace.sdk.coders import encode_key
from headrace.sdk.timestamp import Timestamp

Point = collections.namedtuple("Point", "x y")

class Color(enum.Enum):
    RED = 1

@dataclasses.dataclass(frozen=True)
class Item:
    name: str
    qty: int

KEYS = [
    "word", "", "日本", 0, -1, 2**80, 1.5, -0.0, True, None, b"\x00b",
    ("user", 7), ["a", ("b", [1.0])], frozenset("abcdefghij"), frozenset(range(50)),
    frozenset({("a", 1), ("b", 2)}), Point(1, "y"), Color.RED, Item("x", 2),
    datetime.datetime(2024, 5, 6, 7, 8, 9), datetime.date(2000, 1, 1), uuid.UUID(int=7),
    Timestamp(12.5),
]
print("\n".join(encode_key(k).hex() for k in KEYS))
"""


def _encode_in_subprocess(hash_seed):
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", _SUBPROCESS_SCRIPT], env=env, cwd=REPO,
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_key_encoding_is_identical_across_processes_and_hash_seeds():
    first = _encode_in_subprocess(0)
    assert first == _encode_in_subprocess(1) == _encode_in_subprocess(98765)
    builtin_keys = ["word", "", "日本", 0, -1, 2**80, 1.5, -0.0, True, None, b"\x00b",
                    ("user", 7), ["a", ("b", [1.0])], frozenset("abcdefghij"),
                    frozenset(range(50)), frozenset({("a", 1), ("b", 2)})]
    assert first[:len(builtin_keys)] == [encode_key(k).hex() for k in builtin_keys]


# --- key errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("key, type_name, hint", [
    (Opaque(), "Opaque", "compares by identity"),
    (MutableItem("a"), "MutableItem", r"@dataclass\(frozen=True\)"),
    (complex(1, 2), "complex", "register_coder"),
    (bytearray(b"x"), "bytearray", "register_coder"),
])
def test_non_deterministic_key_errors(key, type_name, hint):
    with pytest.raises(NonDeterministicKeyError, match=hint) as info:
        encode_key(key)
    message = str(info.value)
    assert f"its type {type_name!r}" in message
    assert message.startswith(f"Cannot use {key!r:.40}"[:30])
    assert isinstance(info.value, TypeError)
    assert info.value.value is key


def test_nested_error_names_the_whole_key_and_the_offending_value():
    with pytest.raises(NonDeterministicKeyError) as info:
        encode_key(("user", [1, {"k": Opaque()}]))
    message = str(info.value)
    assert message.startswith("Cannot use ('user', [1, {'k': <")
    assert "contains a value of type 'Opaque'" in message
    assert info.value.key == ("user", [1, {"k": info.value.value}])


def test_nested_error_inside_frozenset_and_dataclass():
    with pytest.raises(NonDeterministicKeyError, match="contains a value of type 'Opaque'"):
        encode_key(frozenset({Opaque()}))

    @dataclasses.dataclass(frozen=True)
    class Wrapper:
        inner: object

    with pytest.raises(NonDeterministicKeyError, match=r"Cannot use .*Wrapper\(inner=<"):
        encode_key(Wrapper(Opaque()))


def test_error_repr_is_truncated():
    key = ("x" * 1000, Opaque())
    with pytest.raises(NonDeterministicKeyError) as info:
        encode_key(key)
    shown = str(info.value).split(" as a grouping key")[0]
    assert shown.endswith("...") and len(shown) <= len("Cannot use ") + 200


def test_error_names_the_step():
    with pytest.raises(NonDeterministicKeyError, match="in step 'GroupByUser'"):
        DeterministicKeyCoder("GroupByUser").encode({"a": Opaque()})
    with pytest.raises(NonDeterministicKeyError, match="in step 'CountPerKey'"):
        FastPrimitivesCoder().as_deterministic_coder("CountPerKey").encode(({Opaque()},))


def test_error_survives_a_broken_repr():
    class BadRepr:
        def __repr__(self):
            raise RuntimeError("boom")

    with pytest.raises(NonDeterministicKeyError, match="<.*BadRepr object>"):
        encode_key(BadRepr())


@pytest.mark.parametrize("data, message", [
    (b"", "truncated"),
    (b"\x05\x05ab", "truncated"),
    (b"\x04\x00", "truncated"),
    (b"\x05\x01ab", "1 unexpected trailing bytes"),
    (b"\x42", "unknown type tag 0x42"),
])
def test_decode_errors(data, message):
    with pytest.raises(ValueError, match=message):
        decode_key(data)


def test_decode_of_a_type_that_cannot_be_imported_is_refused():
    class Local(typing.NamedTuple):
        a: int

    with pytest.raises(TypeError, match=r"<locals>.Local': it is defined inside a function"):
        decode_key(encode_key(Local(1)))
    Unreachable = collections.namedtuple("Unreachable", "a")
    with pytest.raises(TypeError, match="Unreachable'.* has no attribute 'Unreachable'"):
        decode_key(encode_key(Unreachable(1)))


def test_short_key_encoding_is_fast():
    best = min(timeit.repeat(lambda: encode_key("user-1234"), number=20000, repeat=5)) / 20000
    # The target is well under 1 µs; the bound is loose so that a busy machine does not flake.
    assert best < 3e-6


# --- registry --------------------------------------------------------------------------------

class Money:
    def __init__(self, cents):
        self.cents = cents

    def __eq__(self, other):
        return isinstance(other, Money) and other.cents == self.cents

    def __hash__(self):
        return hash(self.cents)


class MoneyCoder(Coder):
    def encode(self, value):
        return VarIntCoder().encode(value.cents)

    def decode(self, encoded):
        return Money(VarIntCoder().decode(encoded))

    def is_deterministic(self):
        return True


class Unordered:
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


def test_registered_deterministic_coder_makes_a_type_usable_as_a_key():
    with pytest.raises(NonDeterministicKeyError):
        encode_key(Money(5))
    registry.register_coder(Money, MoneyCoder)
    assert encode_key(("eur", Money(5))) == encode_key(("eur", Money(5)))
    assert encode_key(Money(5)) != encode_key(Money(6))
    assert decode_key(encode_key(("eur", Money(5)))) == ("eur", Money(5))


def test_registered_non_deterministic_coder_is_refused_for_keys():
    registry.register_coder(Unordered, ShuffledCoder())
    with pytest.raises(NonDeterministicKeyError, match="ShuffledCoder registered for 'Unordered' "
                                                       "is not deterministic"):
        encode_key(Unordered())


def test_registry_get_coder():
    reg = CoderRegistry()
    assert reg.get_coder(int) == VarIntCoder()
    assert reg.get_coder(str) == StrUtf8Coder()
    assert reg.get_coder(bool) == BooleanCoder()
    assert reg.get_coder(tuple[str, int]) == TupleCoder([StrUtf8Coder(), VarIntCoder()])
    assert reg.get_coder(typing.Tuple[bytes, float]) == TupleCoder([BytesCoder(), FloatCoder()])
    assert reg.get_coder(typing.List[int]) == ListCoder(VarIntCoder())
    assert reg.get_coder(typing.Iterable[str]) == IterableCoder(StrUtf8Coder())
    for hint in (typing.Any, None, object, Opaque, tuple[int, ...], dict[str, int],
                 typing.Optional[int]):
        assert reg.get_coder(hint) == FastPrimitivesCoder()


def test_registry_register_class_or_instance():
    reg = CoderRegistry()
    reg.register_coder(Money, MoneyCoder)
    assert reg.get_coder(Money) == MoneyCoder()
    reg.register_coder(Opaque, PickleCoder())
    assert reg.get_coder(Opaque) == PickleCoder()
    assert reg.get_custom_type_coder_tuples() == [(Money, MoneyCoder), (Opaque, PickleCoder())]
    other = CoderRegistry()
    other.load_custom_type_coder_tuples(reg.get_custom_type_coder_tuples([Money]))
    assert other.get_coder(Money) == MoneyCoder() and other.get_coder(Opaque) == (
        FastPrimitivesCoder())


def test_registry_errors():
    reg = CoderRegistry()
    with pytest.raises(TypeError, match="must be a subclass or an instance of headrace.coders"):
        reg.register_coder(Money, int)
    with pytest.raises(TypeError, match="must be hashable"):
        reg.register_coder([Money], MoneyCoder)


def test_beam_style_namespace():
    assert headrace.coders.registry is registry is sdk_coders.registry
    assert headrace.coders.Coder is Coder
    assert headrace.coders.FastPrimitivesCoder is FastPrimitivesCoder
