"""The keyed-state interfaces shared by every backend."""
from headrace.runners.state.base.backend import KeyedStateBackend, StateKind
from headrace.runners.state.base.key_groups import key_group_for, key_group_range
from headrace.runners.state.base.timers import EVENT_TIME, PROCESSING_TIME, Timer, TimerService

__all__ = ["EVENT_TIME", "KeyedStateBackend", "PROCESSING_TIME", "StateKind", "Timer",
           "TimerService", "key_group_for", "key_group_range"]
