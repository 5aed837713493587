"""Beam's ``transforms.userstate`` module path: state and timer specs for stateful DoFns."""
from headrace.sdk.state_ttl import StateTtl, TtlUpdate
from headrace.sdk.timeutil import TimeDomain
from headrace.sdk.userstate import (
    AccumulatingRuntimeState,
    BagRuntimeState,
    BagStateSpec,
    BaseTimer,
    CombiningValueRuntimeState,
    CombiningValueStateSpec,
    MapRuntimeState,
    MapStateSpec,
    ReadModifyWriteRuntimeState,
    ReadModifyWriteStateSpec,
    RuntimeState,
    SetRuntimeState,
    SetStateSpec,
    StateSpec,
    TimerSpec,
    get_dofn_specs,
    is_stateful_dofn,
    on_timer,
    validate_stateful_dofn,
)

__all__ = [
    "AccumulatingRuntimeState", "BagRuntimeState", "BagStateSpec", "BaseTimer",
    "CombiningValueRuntimeState", "CombiningValueStateSpec", "MapRuntimeState", "MapStateSpec",
    "ReadModifyWriteRuntimeState", "ReadModifyWriteStateSpec", "RuntimeState",
    "SetRuntimeState", "SetStateSpec", "StateSpec", "StateTtl", "TimeDomain", "TimerSpec",
    "TtlUpdate", "get_dofn_specs", "is_stateful_dofn", "on_timer", "validate_stateful_dofn",
]
