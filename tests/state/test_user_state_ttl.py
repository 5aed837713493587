"""User state with a TTL over both backends: expiry is the user-state layer's, on read.

The layer stores ``(encoded, stamp)`` entries and rewrites or removes them
through the backend interface only, so RocksDB must give back what it was given
(tuples as tuples, bags in order, maps without removed entries).
"""
from __future__ import annotations

import pytest

from headrace.runners.common.user_state import UserStateFactory
from headrace.sdk.timestamp import Duration
from headrace.transforms.userstate import (
    BagStateSpec,
    CombiningValueStateSpec,
    MapStateSpec,
    ReadModifyWriteStateSpec,
    SetStateSpec,
    StateTtl,
)

from .helpers import BACKENDS, new_backend

pytestmark = pytest.mark.no_pipeline

SECOND = 1_000_000
TTL = StateTtl(Duration(60))
TTL_ON_READ = StateTtl(Duration(60), update=StateTtl.ON_READ_AND_WRITE)


@pytest.mark.parametrize("kind", BACKENDS)
def test_ttl_expires_and_refreshes_the_same_over_every_backend(kind, tmp_path):
    clock = [0]
    backend = new_backend(kind, str(tmp_path))
    specs = [ReadModifyWriteStateSpec("last", ttl=TTL), BagStateSpec("seen", ttl=TTL_ON_READ),
             MapStateSpec("map", ttl=TTL), SetStateSpec("set", ttl=TTL),
             CombiningValueStateSpec("total", sum, ttl=TTL)]
    factory = UserStateFactory(backend, specs, now=lambda: clock[0])
    last, seen, entries, members, total = (factory.state(spec, b"k", None) for spec in specs)
    last.write({"v": 1})
    seen.add("a")
    entries.put("x", 1)
    members.add("m")
    total.add(5)
    clock[0] = 30 * SECOND
    seen.add("b")
    entries.put("y", 2)
    assert seen.read() == ["a", "b"]  # a read: both restamped at 30 s
    clock[0] = 61 * SECOND  # 'last', 'x', 'm' and the total expired; the bag lives until 90 s
    assert last.read() is None and total.read() == 0
    assert entries.items() == [("y", 2)] and members.read() == set()
    assert seen.read() == ["a", "b"]
    clock[0] = 150 * SECOND
    assert seen.read() == [] and entries.items() == []
    assert factory.prune_expired(b"k", None, clock[0]) is None
    assert backend.is_empty()
    backend.close()
