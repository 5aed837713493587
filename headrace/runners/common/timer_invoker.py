"""Calling a stateful DoFn's ``@on_timer`` callbacks with the context they ask for.

A callback takes no element: every parameter is a ``DoFn.*Param`` default,
passed by keyword, as Beam calls them. ``TimestampParam`` is the firing
time and ``WindowParam`` the timer's window; the rest (key, state, timers,
dynamic timer tag, pane) come from the operator's ``context(marker)``.

>>> from headrace.sdk.dofn import DoFn
>>> from headrace.sdk.userstate import TimerSpec, on_timer
>>> class Fn(DoFn):
...     T = TimerSpec("t", "WATERMARK")
...     def process(self, kv, t=DoFn.TimerParam(T)):
...         t.set(5)
...     @on_timer(T)
...     def fired(self, ts=DoFn.TimestampParam, key=DoFn.KeyParam):
...         yield key, ts
>>> invokers = make_timer_invokers(Fn(), "Fn")
>>> list(invokers["ts-t"].invoke(5_000_000, None, lambda marker: "k"))
[('k', Timestamp(5))]
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Tuple

from headrace.sdk.dofn import DoFn, _DoFnParam
from headrace.sdk.timestamp import Timestamp
from headrace.sdk.userstate import TimerSpec, get_dofn_specs

_TIMESTAMP, _WINDOW, _CONTEXT = range(3)
#: The kinds of parameter in :attr:`TimerCallbackInvoker.plan`.
TIMESTAMP, WINDOW, CONTEXT = range(3)
_CONTEXT_MARKERS = frozenset({"KeyParam", "StateParam", "TimerParam", "DynamicTimerTagParam",
                              "PaneInfoParam"})


class TimerCallbackInvoker:
    """Plans the keyword arguments of one ``@on_timer`` method once; fills them per firing."""

    def __init__(self, method: Callable[..., Any], spec: TimerSpec, label: str) -> None:
        self.method = method
        self.spec = spec
        self.label = label
        #: ``(parameter name, kind, marker)`` for each parameter, the marker for CONTEXT ones.
        self.plan: List[Tuple[str, int, Any]] = []
        try:
            signature = inspect.signature(method)
        except (TypeError, ValueError):
            return
        for param in signature.parameters.values():
            marker = param.default
            if not isinstance(marker, _DoFnParam):
                continue  # validation already refused parameters without a default
            if marker.name == "TimestampParam":
                self.plan.append((param.name, _TIMESTAMP, None))
            elif marker.name == "WindowParam":
                self.plan.append((param.name, _WINDOW, None))
            elif marker.name in _CONTEXT_MARKERS:
                self.plan.append((param.name, _CONTEXT, marker))
            else:
                raise TypeError(f"{label}: the @on_timer callback {method.__name__} asks for "
                                f"{marker!r}, which timer callbacks do not get")

    def invoke(self, fire_at_micros: int, window: Any,
               context: Callable[[Any], Any]) -> Any:
        """Call the callback for a timer firing at ``fire_at_micros`` in ``window``."""
        kwargs = {}
        for name, kind, marker in self.plan:
            if kind == _TIMESTAMP:
                kwargs[name] = Timestamp(micros=fire_at_micros)
            elif kind == _WINDOW:
                kwargs[name] = window
            else:
                kwargs[name] = context(marker)
        return self.method(**kwargs)


def make_timer_invokers(fn: DoFn, label: str) -> Dict[str, TimerCallbackInvoker]:
    """``{timer spec name: invoker}`` for every timer ``fn`` uses (validated beforehand)."""
    invokers = {}
    for spec in get_dofn_specs(fn)[1]:
        callback = spec._attached_callback
        if callback is None:
            raise ValueError(f"{label!r}: DoFn {type(fn).__name__} has a TimerSpec without an "
                             f"associated on_timer callback: {spec!r}.")
        invokers[spec.name] = TimerCallbackInvoker(getattr(fn, callback.__name__), spec, label)
    return invokers
