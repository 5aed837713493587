"""Checking a stateful DoFn's state and timer declarations before it runs.

The errors name the transform (when known), the DoFn class and the method,
and say how to fix the declaration. Beam's own checks (duplicate names, a
timer without an ``on_timer`` callback, an overwritten callback) keep Beam's
wording.

Declaring a spec: Beam counts every spec a method parameter asks for as
declared, which allows specs created outside the class (Beam's own
GroupIntoBatches does so). When a DoFn does declare specs as class
attributes, a parameter asking for any other spec is almost always a
copy-paste slip (another DoFn's spec), so it is reported.

>>> from headrace.sdk.dofn import DoFn
>>> from headrace.sdk.userstate import BagStateSpec
>>> class Bad(DoFn):
...     BUFFER = BagStateSpec("buffer")
...     def process(self, kv, a=DoFn.StateParam(BUFFER), b=DoFn.StateParam(BUFFER)):
...         pass
>>> validate(Bad(), "Buffer")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: 'Buffer': DoFn Bad has duplicate process method parameters: ...
"""
from __future__ import annotations

import inspect
from typing import Any, Dict, List, Optional, Tuple

from headrace.sdk.dofn import DoFn, _DoFnParam, _SpecParam
from headrace.sdk.userstate import (
    TIMER_CALLBACK_ATTR,
    StateSpec,
    TimerSpec,
    declared_specs,
    get_dofn_specs,
    spec_params,
)

#: Context only a stateful DoFn's ``process``/``on_timer`` can have.
_KEYED_CONTEXT = {"KeyParam", "StateParam", "TimerParam", "DynamicTimerTagParam"}
#: Methods the runner calls without an element, where no keyed context exists.
_LIFECYCLE = ("setup", "start_bundle", "finish_bundle", "teardown")


def _param_id(marker: _DoFnParam) -> str:
    if isinstance(marker, _SpecParam):
        return f"{marker.name}({getattr(marker.spec, 'name', marker.spec)})"
    return marker.name


def timer_callbacks(dofn: DoFn) -> List[Tuple[str, TimerSpec]]:
    """``(method name, spec)`` for every ``@on_timer`` method of ``dofn``'s class."""
    found = []
    seen = set()
    for klass in type(dofn).__mro__:
        for name, raw in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
            for spec in getattr(raw, TIMER_CALLBACK_ATTR, ()):
                found.append((name, spec))
    return found


def validate(dofn: DoFn, label: Optional[str] = None) -> None:
    """Raise ``ValueError`` describing the first problem with ``dofn``'s state and timers."""
    where = f"{label!r}: " if label else ""
    cls = type(dofn).__name__

    def fail(message: str) -> None:
        raise ValueError(where + message)

    params = spec_params(dofn)
    callbacks = timer_callbacks(dofn)
    callback_methods = {name for name, _ in callbacks}
    by_method: Dict[str, List[str]] = {}
    for method, pname, marker in params:
        if isinstance(marker, _SpecParam):
            if marker.name == "StateParam" and not isinstance(marker.spec, StateSpec):
                fail(f"{cls}.{method}: parameter {pname!r} is DoFn.StateParam({marker.spec!r}), "
                     "but DoFn.StateParam expects a StateSpec (BagStateSpec, "
                     "ReadModifyWriteStateSpec, ...)")
            if marker.name == "TimerParam" and not isinstance(marker.spec, TimerSpec):
                fail(f"{cls}.{method}: parameter {pname!r} is DoFn.TimerParam({marker.spec!r}), "
                     "but DoFn.TimerParam expects a TimerSpec")
        by_method.setdefault(method, []).append(_param_id(marker))
        if method in _LIFECYCLE and marker.name in _KEYED_CONTEXT | {"PaneInfoParam"}:
            fail(f"{cls}.{method} asks for {marker!r}, which exists only in process and "
                 "@on_timer callbacks (they run for one key and window)")
        if method == "process" and marker.name == "DynamicTimerTagParam":
            fail(f"{cls}.process asks for DoFn.DynamicTimerTagParam, which only @on_timer "
                 "callbacks get (the tag of the timer that fired)")
        if method in callback_methods and marker.name in ("ElementParam", "SideInputParam"):
            fail(f"{cls}.{method} is an @on_timer callback and asks for {marker!r}, but a "
                 "timer callback gets no element and no side inputs")
    for method, ids in by_method.items():
        if len(ids) != len(set(ids)):
            fail(f"DoFn {cls} has duplicate {method} method parameters: {ids}.")

    state_specs, timer_specs = get_dofn_specs(dofn)
    for kind, specs in (("StateSpecs", state_specs), ("TimerSpecs", timer_specs)):
        names = sorted(spec.name for spec in specs)
        if len(names) != len(set(names)):
            dup = sorted({n for n in names if names.count(n) > 1})
            fail(f"DoFn {cls} has multiple {kind} with the same name: {dup} (every state "
                 "and timer of a DoFn needs its own name)")

    _check_declared(dofn, cls, params, fail)

    declared_ids = {id(spec) for spec in declared_specs(dofn).values()}
    for method, spec in callbacks:
        if spec not in timer_specs and id(spec) not in declared_ids:
            fail(f"{cls}.{method} is an @on_timer callback for {spec!r}, but {cls} declares no "
                 "such timer: declare the TimerSpec as a class attribute of "
                 f"{cls} and set it through DoFn.TimerParam(...)")
        _check_callback_signature(dofn, cls, method, fail)

    for spec in sorted(timer_specs, key=lambda s: s.name):
        callback = spec._attached_callback
        if callback is None:
            fail(f"DoFn {cls} has a TimerSpec without an associated on_timer callback: {spec!r}.")
        method_name = getattr(callback, "__name__", "")
        bound = getattr(dofn, method_name, None)
        if getattr(bound, "__func__", bound) is not callback:
            fail(f"The on_timer callback for {spec!r} is not the specified .{method_name} method "
                 f"for DoFn {cls} (perhaps it was overwritten?).")


def _check_declared(dofn: DoFn, cls: str, params: List[Tuple[str, str, _DoFnParam]],
                    fail: Any) -> None:
    """Specs asked for must be the DoFn's own when it declares specs as attributes."""
    declared = declared_specs(dofn)
    if not declared:
        return  # Beam's style of specs made outside the class: using a spec declares it
    declared_ids = {id(spec) for spec in declared.values()}
    has_timers = any(isinstance(spec, TimerSpec) for spec in declared.values())
    for method, pname, marker in params:
        if not isinstance(marker, _SpecParam) or id(marker.spec) in declared_ids:
            continue
        if marker.name == "TimerParam" and not has_timers:
            fail(f"{cls}.{method}: parameter {pname!r} asks for timer {marker.spec!r}, but "
                 f"{cls} declares no timers; declare a TimerSpec class attribute with an "
                 "@on_timer callback")
        kind = "state" if marker.name == "StateParam" else "timer"
        names = ", ".join(sorted(declared))
        fail(f"{cls}.{method}: parameter {pname!r} asks for {kind} {marker.spec!r}, which "
             f"{cls} does not declare (it declares {names}); use one of those specs or "
             "declare this one as a class attribute")


def _check_callback_signature(dofn: DoFn, cls: str, method: str, fail: Any) -> None:
    """Timer callbacks are called with keyword context only, as Beam calls them."""
    try:
        signature = inspect.signature(getattr(dofn, method))
    except (TypeError, ValueError):
        return
    for param in signature.parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if param.default is inspect.Parameter.empty:
            fail(f"{cls}.{method} is an @on_timer callback, but its parameter {param.name!r} "
                 "has no default: a timer callback gets no element, only context such as "
                 "DoFn.TimestampParam, DoFn.KeyParam or DoFn.StateParam(spec)")
