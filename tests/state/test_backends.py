"""One behavioural suite for every keyed-state backend (memory and RocksDB on disk)."""
from __future__ import annotations

import random

import pytest

from headrace.runners.state.base.key_groups import key_group_for
from headrace.sdk.window import GLOBAL_WINDOW, IntervalWindow

from .helpers import BACKENDS, contents, new_backend

pytestmark = pytest.mark.no_pipeline

W1, W2 = IntervalWindow(0, 10), IntervalWindow(10, 20)


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    state = new_backend(request.param, str(tmp_path))
    yield state
    state.close()


def test_values(backend):
    assert backend.get_value("v", b"k", W1) is None
    assert backend.get_value("v", b"k", W1, "default") == "default"
    backend.put_value("v", b"k", W1, [1, 2])
    backend.put_value("v", b"k", W2, b"raw")
    backend.put_value("v", b"k2", W1, None)
    assert backend.get_value("v", b"k", W1) == [1, 2]
    assert backend.get_value("v", b"k", W2) == b"raw"
    assert backend.get_value("v", b"k2", W1, "default") is None  # a stored None is a value
    backend.put_value("v", b"k", W1, {"a": 1})
    assert backend.get_value("v", b"k", W1) == {"a": 1}


def test_bags_keep_order_and_return_fresh_lists(backend):
    for i in range(300):
        backend.add_to_bag("b", b"k", GLOBAL_WINDOW, (i, b"x"))
    backend.add_to_bag("b", b"k", W1, "other window")
    values = backend.read_bag("b", b"k", GLOBAL_WINDOW)
    assert values == [(i, b"x") for i in range(300)]
    values.append("mine")
    assert len(backend.read_bag("b", b"k", GLOBAL_WINDOW)) == 300
    assert backend.read_bag("b", b"k", W1) == ["other window"]
    assert backend.read_bag("b", b"missing", W1) == []
    backend.clear("b", b"k", GLOBAL_WINDOW)
    assert backend.read_bag("b", b"k", GLOBAL_WINDOW) == []
    backend.add_to_bag("b", b"k", GLOBAL_WINDOW, "again")
    assert backend.read_bag("b", b"k", GLOBAL_WINDOW) == ["again"]


def test_maps(backend):
    backend.map_put("m", b"k", None, b"u1", (1, "one"))
    backend.map_put("m", b"k", None, ("tuple", 2), "two")
    backend.map_put("m", b"k", None, b"u1", "replaced")
    assert backend.map_get("m", b"k", None, b"u1") == "replaced"
    assert backend.map_get("m", b"k", None, ("tuple", 2)) == "two"
    assert backend.map_get("m", b"k", None, b"nope", "d") == "d"
    assert sorted(backend.map_items("m", b"k", None), key=repr) == sorted(
        [(b"u1", "replaced"), (("tuple", 2), "two")], key=repr)
    backend.map_remove("m", b"k", None, b"u1")
    backend.map_remove("m", b"k", None, b"never there")
    assert backend.map_items("m", b"k", None) == [(("tuple", 2), "two")]
    backend.map_remove("m", b"k", None, ("tuple", 2))
    # The last entry gone, nothing of the key is left.
    assert backend.namespaces(b"k") == [] and backend.is_empty()


def test_clear_namespace_namespaces_and_keys(backend):
    assert backend.is_empty() and list(backend.keys()) == []
    backend.put_value("v", b"k", W1, 1)
    backend.add_to_bag("b", b"k", W1, 1)
    backend.map_put("m", b"k", W2, b"u", 1)
    backend.put_value("v", b"j", GLOBAL_WINDOW, 2)
    assert not backend.is_empty()
    assert sorted(backend.keys()) == [b"j", b"k"]
    assert set(backend.namespaces(b"k")) == {W1, W2}
    assert backend.namespaces(b"j") == [GLOBAL_WINDOW]
    assert backend.namespaces(b"nobody") == []
    backend.clear_namespace(b"k", W1)
    assert backend.namespaces(b"k") == [W2]
    assert backend.get_value("v", b"k", W1) is None and backend.read_bag("b", b"k", W1) == []
    backend.clear("m", b"k", W2)
    assert sorted(backend.keys()) == [b"j"]
    backend.clear("v", b"j", GLOBAL_WINDOW)
    backend.clear("never written", b"j", GLOBAL_WINDOW)
    assert backend.is_empty()


def test_components_cannot_run_into_each_other(backend):
    # Same concatenated bytes, different splits: length prefixes keep them apart.
    backend.put_value("a", b"bc", None, 1)
    backend.put_value("ab", b"c", None, 2)
    backend.put_value("a", b"b", "c", 3)
    backend.add_to_bag("x", b"k", None, "bag of k")
    backend.add_to_bag("x", b"k\x00", None, "bag of k0")
    assert backend.get_value("a", b"bc", None) == 1
    assert backend.get_value("ab", b"c", None) == 2
    assert backend.get_value("a", b"b", "c") == 3
    assert backend.read_bag("x", b"k", None) == ["bag of k"]
    assert backend.namespaces(b"b") == ["c"]
    backend.clear_namespace(b"k", None)
    assert backend.read_bag("x", b"k\x00", None) == ["bag of k0"]


def test_namespaces_of_every_kind(backend):
    class Custom(tuple):
        """Defined in a function: only cloudpickle takes it."""

    for namespace in (None, GLOBAL_WINDOW, W1, ("session", 3), Custom((1,))):
        backend.put_value("v", b"k", namespace, repr(namespace))
        assert backend.get_value("v", b"k", namespace) == repr(namespace)
    assert len(backend.namespaces(b"k")) == 5


def test_a_key_outside_the_key_groups_is_an_error(tmp_path, request):
    for kind in BACKENDS:
        state = new_backend(kind, str(tmp_path), range(0, 1))
        key = next(k for k in (b"%d" % i for i in range(100)) if key_group_for(k, 128) != 0)
        with pytest.raises(ValueError, match="does not own"):
            state.put_value("v", key, None, 1)
        state.close()


def _random_ops(state, seed):
    rng = random.Random(seed)
    keys = [b"key-%d" % i for i in range(40)]
    windows = [None, W1, W2]
    for _ in range(3000):
        op = rng.random()
        key, window = rng.choice(keys), rng.choice(windows)
        if op < 0.25:
            state.put_value("value", key, window, (rng.randrange(100), "v"))
        elif op < 0.5:
            state.add_to_bag("bag", key, window, rng.randrange(100))
        elif op < 0.7:
            state.map_put("map", key, window, b"%d" % rng.randrange(5), rng.randrange(100))
        elif op < 0.8:
            state.map_remove("map", key, window, b"%d" % rng.randrange(5))
        elif op < 0.9:
            state.clear(rng.choice(["value", "bag", "map"]), key, window)
        else:
            state.clear_namespace(key, window)


def test_random_operations_leave_the_same_state_in_every_backend(tmp_path):
    states = [new_backend(kind, str(tmp_path)) for kind in BACKENDS]
    for state in states:
        _random_ops(state, 7)
    memory, rocksdb = states
    assert sorted(memory.keys()) == sorted(rocksdb.keys())
    for key in memory.keys():
        assert sorted(map(repr, memory.namespaces(key))) == \
            sorted(map(repr, rocksdb.namespaces(key)))
    snapshots = [state.snapshot() for state in states]
    assert contents(snapshots[0]) == contents(snapshots[1]) != []
    for snapshot, state in zip(snapshots, states):
        snapshot.release()
        state.close()


def test_closing_rocksdb_removes_its_directory(tmp_path):
    state = new_backend("rocksdb", str(tmp_path))
    state.put_value("v", b"k", None, 1)
    state.snapshot()
    directory = state.directory
    assert directory.startswith(str(tmp_path)) and (tmp_path / directory).is_dir()
    state.close()
    state.close()  # idempotent
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="closed"):
        state.get_value("v", b"k", None)
