"""When the checkpoint coordinator triggers, commits and aborts (a manual clock, real storage)."""
from __future__ import annotations

import pickle
from typing import Any, List

import pytest

from headrace.runners.multiprocess.checkpoint_coordinator import (
    CheckpointCoordinator,
    CheckpointSettings,
)
from headrace.runners.state.checkpoint_storage import TaskStateHandle, open_checkpoint_storage

pytestmark = pytest.mark.no_pipeline


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _coordinator(tmp_path: Any, **settings: float) -> tuple:
    sent: List[tuple] = []
    clock = Clock()
    storage = open_checkpoint_storage(tmp_path / "c")
    coordinator = CheckpointCoordinator(
        storage, CheckpointSettings(**settings), 2,
        lambda subtask, message: sent.append((subtask, pickle.loads(message))), clock=clock)
    return coordinator, sent, clock, storage


def _ack(coordinator: Any, checkpoint_id: int, subtask: int) -> None:
    coordinator.on_message(("ack", checkpoint_id, subtask,
                            [TaskStateHandle("op", subtask)], {"sync_seconds": 0.001}))


def test_interval_min_pause_and_one_in_flight(tmp_path):
    coordinator, sent, clock, storage = _coordinator(tmp_path, interval=1.0, min_pause=0.5)
    coordinator.tick()
    assert sent == []  # the first one comes an interval after the start
    clock.now += 1.0
    coordinator.tick()
    assert sent == [(0, ("trigger", 1)), (1, ("trigger", 1))]
    clock.now += 5.0
    coordinator.tick()
    assert len(sent) == 2  # one in flight at most
    _ack(coordinator, 1, 0)
    _ack(coordinator, 1, 1)
    assert storage.checkpoint_ids() == [1]
    assert sent[2:] == [(0, ("complete", 1)), (1, ("complete", 1))]
    clock.now += 0.4
    coordinator.tick()
    assert len(sent) == 4  # the interval has passed, but not the minimal pause
    assert coordinator.seconds_to_next() == pytest.approx(0.1)
    clock.now += 0.1
    coordinator.tick()
    assert sent[4:] == [(0, ("trigger", 2)), (1, ("trigger", 2))]
    storage.close()


def test_timeout_and_decline_abort_and_late_acks_are_ignored(tmp_path):
    coordinator, sent, clock, storage = _coordinator(tmp_path, interval=1.0, timeout=3.0)
    clock.now += 1.0
    coordinator.tick()
    _ack(coordinator, 1, 0)
    clock.now += 3.5
    coordinator.tick()  # timed out, then the next is due at once
    assert [m for _, m in sent[2:]] == [("abort", 1), ("abort", 1), ("trigger", 2),
                                       ("trigger", 2)]
    _ack(coordinator, 1, 1)  # late: ignored
    coordinator.on_message(("decline", 2, 1, "disk full"))
    assert [m for _, m in sent[6:]] == [("abort", 2), ("abort", 2)]
    assert coordinator.aborted == [1, 2] and storage.checkpoint_ids() == []
    storage.close()


def test_final_checkpoint_then_finish(tmp_path):
    coordinator, sent, clock, storage = _coordinator(tmp_path, interval=60.0)
    coordinator.on_message(("sources_finished", 0))
    coordinator.tick()
    assert sent == []
    coordinator.on_message(("sources_finished", 1))
    coordinator.tick()  # not waiting for the interval
    assert [m for _, m in sent] == [("trigger", 1), ("trigger", 1)]
    _ack(coordinator, 1, 0)
    _ack(coordinator, 1, 1)
    assert [m for _, m in sent[2:]] == [("complete", 1), ("complete", 1), ("finish", 1),
                                       ("finish", 1)]
    assert coordinator.finished and coordinator.completed[-1].final
    storage.close()
