"""MapState and state time-to-live (Flink's semantics; Beam has neither): hand-computed.

TTL runs on processing time. Under TestStream the clock starts at 0 and
moves only with ``advance_processing_time``, so every expiry below is exact:
an entry written at ``t`` with a 60 s TTL is visible until ``t + 60``
(exclusive), and under ``ON_READ_AND_WRITE`` a read restarts its 60 s.
"""
import pytest

import headrace as beam
from headrace.sdk.timestamp import Duration
from headrace.testing.test_stream import TestStream
from headrace.testing.util import assert_that, equal_to
from headrace.transforms.userstate import (
    BagStateSpec,
    CombiningValueStateSpec,
    MapStateSpec,
    ReadModifyWriteStateSpec,
    SetStateSpec,
    StateTtl,
)

from .userstate_support import OperatorHarness, wire_stateful_pardo

TTL_60 = StateTtl(Duration(60))
TTL_60_ON_READ = StateTtl(Duration(60), update=StateTtl.ON_READ_AND_WRITE)


@pytest.fixture(autouse=True)
def _wired(monkeypatch):
    wire_stateful_pardo(monkeypatch)


def run_commands(fn, script, expected):
    """``script``: a list of (processing-time seconds to advance by, [commands]); each command
    is one element ``("k", command)`` arriving in its own bundle."""
    stream = TestStream()
    for advance, commands in script:
        if advance:
            stream = stream.advance_processing_time(advance)
        for command in commands:
            stream = stream.add_elements([("k", command)])
    with beam.Pipeline() as p:
        out = p | stream | beam.ParDo(fn)
        assert_that(out, equal_to(expected))


# -- MapState ------------------------------------------------------------------------------------

class MapOps(beam.DoFn):
    ENTRIES = MapStateSpec("entries")

    def process(self, kv, entries=beam.DoFn.StateParam(ENTRIES)):
        op, *args = kv[1]
        if op == "put":
            entries.put(*args)
        elif op == "remove":
            entries.remove(*args)
        elif op == "clear":
            entries.clear()
        yield (op, *args, sorted(entries.items()), entries.get("x"), entries.get("zz", "dflt"),
               entries.contains("x"), sorted(entries.keys()), sorted(entries.values(), key=repr),
               entries.is_empty())


def test_map_state_operations():
    commands = [("put", "x", 1), ("put", "y", [2]), ("put", "x", 3), ("remove", "y"),
                ("remove", "missing"), ("clear",), ("put", "y", 5)]
    expected = [
        ("put", "x", 1, [("x", 1)], 1, "dflt", True, ["x"], [1], False),
        ("put", "y", [2], [("x", 1), ("y", [2])], 1, "dflt", True, ["x", "y"], [1, [2]], False),
        ("put", "x", 3, [("x", 3), ("y", [2])], 3, "dflt", True, ["x", "y"], [3, [2]], False),
        ("remove", "y", [("x", 3)], 3, "dflt", True, ["x"], [3], False),
        ("remove", "missing", [("x", 3)], 3, "dflt", True, ["x"], [3], False),
        ("clear", [], None, "dflt", False, [], [], True),
        ("put", "y", 5, [("y", 5)], None, "dflt", False, ["y"], [5], False),
    ]
    run_commands(MapOps(), [(0, commands)], expected)


def test_map_state_keys_by_encoding():
    class Fn(beam.DoFn):
        ENTRIES = MapStateSpec("entries")

        def process(self, kv, entries=beam.DoFn.StateParam(ENTRIES)):
            entries.put(kv[1], repr(kv[1]))
            # 1, 1.0 and True are three keys (as grouping keys are); (1, [2]) works as a key.
            yield sorted(entries.values())

    run_commands(Fn(), [(0, [1, 1.0, True, (1, [2]), 1])],
                 [["1"], ["1", "1.0"], ["1", "1.0", "True"], ["(1, [2])", "1", "1.0", "True"],
                  ["(1, [2])", "1", "1.0", "True"]])


def test_map_state_values_are_copies():
    class Mutate(beam.DoFn):
        ENTRIES = MapStateSpec("entries")

        def process(self, kv, entries=beam.DoFn.StateParam(ENTRIES)):
            if kv[1] == "put":
                value = [1]
                entries.put("a", value)
                value.append(2)  # not a write: the state keeps [1]
            got = entries.get("a")
            got.append(3)
            yield entries.get("a")

    run_commands(Mutate(), [(0, ["put", "get"])], [[1], [1]])


def test_map_state_with_a_key_coder():
    class Fn(beam.DoFn):
        ENTRIES = MapStateSpec("entries", key_coder=beam.coders.StrUtf8Coder(),
                               value_coder=beam.coders.VarIntCoder())

        def process(self, kv, entries=beam.DoFn.StateParam(ENTRIES)):
            entries.put(kv[1], len(kv[1]))
            yield sorted(entries.items())

    run_commands(Fn(), [(0, ["ab", "c", "ab"])],
                 [[("ab", 2)], [("ab", 2), ("c", 1)], [("ab", 2), ("c", 1)]])


# -- TTL: values -------------------------------------------------------------------------------

def value_fn(ttl):
    class Fn(beam.DoFn):
        LAST = ReadModifyWriteStateSpec("last", ttl=ttl)

        def process(self, kv, last=beam.DoFn.StateParam(LAST)):
            if kv[1] != "read":
                last.write(kv[1])
            yield kv[1], last.read()

    return Fn()


def test_value_ttl_expires_on_processing_time():
    run_commands(value_fn(TTL_60),
                 [(0, ["a"]), (59, ["read"]), (1, ["read", "b"]), (59.999999, ["read"]),
                  (0.000001, ["read"])],
                 [("a", "a"), ("read", "a"), ("read", None), ("b", "b"), ("read", "b"),
                  ("read", None)])


def test_value_ttl_update_on_write_only_vs_on_read():
    script = [(0, ["a"]), (50, ["read"]), (50, ["read"])]
    # On create and write: the read at 50 does not extend; at 100 the value is gone.
    run_commands(value_fn(TTL_60), script, [("a", "a"), ("read", "a"), ("read", None)])
    # On read and write: the read at 50 restarts the 60 s, so at 100 it is still there.
    run_commands(value_fn(TTL_60_ON_READ), script, [("a", "a"), ("read", "a"), ("read", "a")])


def test_combining_ttl_expires_as_a_whole():
    class Fn(beam.DoFn):
        TOTAL = CombiningValueStateSpec("total", sum, ttl=TTL_60)

        def process(self, kv, total=beam.DoFn.StateParam(TOTAL)):
            if kv[1] != "read":
                total.add(kv[1])
            yield kv[1], total.read()

    run_commands(Fn(), [(0, [1]), (50, [2]), (50, ["read"]), (10, ["read"]), (1, [5])],
                 [(1, 1), (2, 3), ("read", 3), ("read", 0), (5, 5)])


# -- TTL: per element and per entry ----------------------------------------------------------------

def test_bag_ttl_expires_per_element():
    class Fn(beam.DoFn):
        SEEN = BagStateSpec("seen", ttl=TTL_60)

        def process(self, kv, seen=beam.DoFn.StateParam(SEEN)):
            if kv[1] != "read":
                seen.add(kv[1])
            yield kv[1], seen.read()

    run_commands(Fn(), [(0, ["a"]), (30, ["b"]), (30, ["read"]), (29, ["read"]), (1, ["read"])],
                 [("a", ["a"]), ("b", ["a", "b"]), ("read", ["b"]), ("read", ["b"]),
                  ("read", [])])


def test_bag_ttl_on_read_restarts_every_element():
    class Fn(beam.DoFn):
        SEEN = BagStateSpec("seen", ttl=TTL_60_ON_READ)

        def process(self, kv, seen=beam.DoFn.StateParam(SEEN)):
            if kv[1] != "read":
                seen.add(kv[1])
            yield kv[1], seen.read()

    # a at 0; b at 30 (the read of that element restarts a, b at 30); read at 89: both;
    # the read at 89 restarts both again, so at 148 both are there; at 149+60 neither.
    run_commands(Fn(), [(0, ["a"]), (30, ["b"]), (59, ["read"]), (59, ["read"]),
                        (60, ["read"])],
                 [("a", ["a"]), ("b", ["a", "b"]), ("read", ["a", "b"]), ("read", ["a", "b"]),
                  ("read", [])])


def test_set_ttl_per_element_and_re_adding_restarts():
    class Fn(beam.DoFn):
        USERS = SetStateSpec("users", ttl=TTL_60)

        def process(self, kv, users=beam.DoFn.StateParam(USERS)):
            if kv[1] != "read":
                users.add(kv[1])
            yield kv[1], sorted(users.read())

    run_commands(Fn(), [(0, [1]), (30, [2]), (10, [1]), (25, ["read"]), (26, ["read"]),
                        (10, ["read"])],
                 [(1, [1]), (2, [1, 2]), (1, [1, 2]), ("read", [1, 2]), ("read", [1]),
                  ("read", [])])


def test_map_ttl_per_entry_on_write():
    class Fn(beam.DoFn):
        ENTRIES = MapStateSpec("entries", ttl=TTL_60)

        def process(self, kv, entries=beam.DoFn.StateParam(ENTRIES)):
            op, key = kv[1]
            if op == "put":
                entries.put(key, key.upper())
            got = entries.get("x")  # a read: does not restart under ON_CREATE_AND_WRITE
            yield op, key, got, sorted(entries.items()), entries.is_empty()

    run_commands(Fn(), [(0, [("put", "x")]), (30, [("put", "y")]), (29, [("get", "-")]),
                        (1, [("get", "-")]), (30, [("get", "-")])],
                 [("put", "x", "X", [("x", "X")], False),
                  ("put", "y", "X", [("x", "X"), ("y", "Y")], False),
                  ("get", "-", "X", [("x", "X"), ("y", "Y")], False),
                  ("get", "-", None, [("y", "Y")], False),
                  ("get", "-", None, [], True)])


def test_map_ttl_on_read_restarts_only_the_entries_read():
    class Fn(beam.DoFn):
        ENTRIES = MapStateSpec("entries", ttl=TTL_60_ON_READ)

        def process(self, kv, entries=beam.DoFn.StateParam(ENTRIES)):
            op = kv[1]
            if op == "put":
                entries.put("x", 1)
                entries.put("y", 2)
            elif op == "get-x":
                yield op, entries.get("x")
                return
            elif op == "contains-y":
                yield op, entries.contains("y")
                return
            yield op, entries.is_empty()

    # x, y at 0; x read at 50 (restarts x to 110); at 100 y is gone, x is there;
    # contains(y) at 100 is False. is_empty does not restart anything: x expires at 110.
    run_commands(Fn(), [(0, ["put"]), (50, ["get-x"]), (50, ["contains-y", "empty"]),
                        (10, ["empty"])],
                 [("put", False), ("get-x", 1), ("contains-y", False), ("empty", False),
                  ("empty", True)])


# -- the cleanup pass ---------------------------------------------------------------------------

class Remember(beam.DoFn):
    SEEN = BagStateSpec("seen", ttl=TTL_60)
    LAST = ReadModifyWriteStateSpec("last", ttl=StateTtl(Duration(10)))
    ENTRIES = MapStateSpec("entries", ttl=TTL_60)

    def process(self, kv, seen=beam.DoFn.StateParam(SEEN), last=beam.DoFn.StateParam(LAST),
                entries=beam.DoFn.StateParam(ENTRIES)):
        seen.add(kv[1])
        last.write(kv[1])
        entries.put(kv[1], 1)
        yield kv


def test_cleanup_pass_removes_expired_state_without_access():
    h = OperatorHarness(Remember())
    backend = h.op.backend
    h.add((("a", 1), 0))  # at 0: a's value expires at 10, its bag and map entry at 60
    assert h.op.next_processing_time() == 10_000_000
    h.advance_clock(30)  # the pass at 30 drops a's value, nothing else of a's
    key_a = beam.coders.encode_key("a")
    assert backend.get_value("user/last", key_a, beam.window.GlobalWindow()) is None
    assert len(backend.read_bag("user/seen", key_a, beam.window.GlobalWindow())) == 1
    h.add((("b", 2), 0))  # at 30: b's value expires at 40, the rest at 90
    assert h.op.next_processing_time() == 40_000_000
    h.advance_clock(0.5)  # nothing due
    assert len(list(backend.keys())) == 2
    h.advance_clock(30)  # t = 60.5: b's value and all of a's state are due
    assert list(backend.keys()) == [beam.coders.encode_key("b")]
    assert h.op.next_processing_time() == 90_000_000
    h.advance_clock(29.5)  # t = 90
    assert backend.is_empty()
    assert h.op.next_processing_time() is None
    assert h.out.values() == [("a", 1), ("b", 2)]
    h.close()


def test_cleanup_pass_keeps_refreshed_state():
    h = OperatorHarness(Remember())
    h.add((("a", 1), 0))
    h.advance_clock(50)
    h.add((("a", 2), 0))  # rewrites everything at 50
    h.advance_clock(15)  # t = 65: the first bag element and the 1 map entry are gone
    key = beam.coders.encode_key("a")
    assert [entry[1] for entry in backend_bag(h, key)] == [50_000_000]
    assert len(h.op.backend.map_items("user/entries", key, beam.window.GlobalWindow())) == 1
    assert h.op.backend.get_value("user/last", key, beam.window.GlobalWindow()) is None
    h.advance_clock(45)  # t = 110
    assert h.op.backend.is_empty()
    h.close()


def backend_bag(h, key):
    return h.op.backend.read_bag("user/seen", key, beam.window.GlobalWindow())


def test_ttl_config_validation():
    with pytest.raises(ValueError, match="positive"):
        StateTtl(0)
    with pytest.raises(ValueError, match="ON_CREATE_AND_WRITE"):
        StateTtl(5, update=8)
    with pytest.raises(ValueError, match="NEVER_RETURN_EXPIRED"):
        StateTtl(5, visibility="ReturnExpiredIfNotCleanedUp")
    with pytest.raises(TypeError, match="StateTtl"):
        BagStateSpec("b", ttl=60)
    union = StateTtl(5, update=StateTtl.ON_CREATE_AND_WRITE | StateTtl.ON_READ_AND_WRITE)
    assert union.update is StateTtl.ON_READ_AND_WRITE and union.refresh_on_read
    assert not StateTtl(5).refresh_on_read
