"""The calls of a stateful DoFn: ``process`` and the ``@on_timer`` callbacks, bound once.

A stateful ParDo calls user code for every element with parameters that depend
on the element's key and window (state objects, timers, the key). Rather than
resolving each parameter by name on every call, :func:`bind_process` and
:func:`bind_timer_callback` turn the DoFn's parameter plan into one function per
parameter, made once per operator: a call is then a list of those functions
applied to what the element or timer brings.

``UserTimer`` is the timer object such a call hands out.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, List, Optional

from headrace.runners.common import dofn_invoker, timer_invoker
from headrace.runners.state.base import EVENT_TIME, PROCESSING_TIME, Timer
from headrace.sdk.timestamp import MAX_MICROS, Timestamp, to_micros
from headrace.sdk.userstate import BaseTimer, TimerSpec
from headrace.sdk.windowed_value import PANE_INFO_UNKNOWN

if TYPE_CHECKING:
    from headrace.runners.operators.stateful_pardo import StatefulParDoOperator

#: ``Timer.output_timestamp`` of a processing-time timer set without one: its outputs are
#: stamped with the firing time (as Beam's Python SDK does) and it holds no watermark.
AT_FIRING_TIME = MAX_MICROS

#: ``make(value, timestamp, window, encoded, key, pane, sides)`` for ``process`` parameters;
#: ``make(fire_at, window, encoded, key, output_timestamp, tag)`` for timer callbacks.
ArgumentMaker = Callable[..., Any]


class UserTimer(BaseTimer):
    """The timer object a stateful DoFn is handed, bound to one key and window.

    ``set``/``clear`` act at once on the operator's timer service; setting a
    tag again replaces its pending timer, as in Beam. Timestamps are
    seconds, ``Timestamp`` s or datetimes; processing-time ones are absolute.

    >>> class Ops:  # stands in for the operator
    ...     def set_timer(self, timer, explicit_output): print(timer.fire_at, timer.tag)
    >>> UserTimer(Ops(), TimerSpec("t", "WATERMARK"), b"k", None, 0).set(2.5, "tag")
    2500000 tag
    """

    __slots__ = ("operator", "spec", "key", "window", "input_timestamp")

    def __init__(self, operator: "StatefulParDoOperator", spec: TimerSpec, key: bytes,
                 window: Any, input_timestamp: int) -> None:
        self.operator = operator
        self.spec = spec
        self.key = key
        self.window = window
        #: The timestamp of the element (or firing timer) being processed.
        self.input_timestamp = input_timestamp

    def set(self, timestamp: Any, dynamic_timer_tag: str = "",
            output_timestamp: Any = None) -> None:
        if type(dynamic_timer_tag) is not str and not isinstance(dynamic_timer_tag, str):
            raise TypeError(f"dynamic_timer_tag must be a str, got {dynamic_timer_tag!r:.100}")
        fire_at = (timestamp.micros if type(timestamp) is Timestamp
                   else to_micros(timestamp, "timer timestamp"))
        event_time = self.spec.is_event_time
        if output_timestamp is None:
            output = fire_at if event_time else AT_FIRING_TIME
        else:
            output = to_micros(output_timestamp, "timer output timestamp")
            # Beam's rules (Java SDK): an output timestamp may not precede the input being
            # processed, whose timestamp already bounds the output watermark, nor follow
            # an event-time timer's firing time.
            if output < self.input_timestamp:
                raise ValueError(
                    f"{self.spec!r}: output timestamp {output} (micros) is before the timestamp "
                    f"of the current input, {self.input_timestamp}; outputs may not move back "
                    "in time")
            if event_time and output > fire_at:
                raise ValueError(
                    f"{self.spec!r}: output timestamp {output} (micros) is after the firing "
                    f"time {fire_at} of this event-time timer")
        domain = EVENT_TIME if event_time else PROCESSING_TIME
        self.operator.set_timer(Timer(self.key, self.window, self.spec.name, dynamic_timer_tag,
                                      domain, fire_at, output), explicit_output=output_timestamp
                                is not None)

    def clear(self, dynamic_timer_tag: str = "") -> None:
        self.operator.delete_timer(self.key, self.window, self.spec.name, dynamic_timer_tag)

    def __repr__(self) -> str:
        return f"UserTimer({self.spec.name!r}, window={self.window!r})"


def _timestamp(micros: int) -> Timestamp:
    timestamp = Timestamp.__new__(Timestamp)
    timestamp.micros = micros
    return timestamp


def _failing(error: Exception) -> ArgumentMaker:
    """A parameter that cannot be filled: the error comes when the call is made, as before
    binding (a DoFn whose method is never called does not fail)."""
    def make(*_: Any) -> Any:
        raise error
    return make


def _context_maker(operator: "StatefulParDoOperator", marker: Any, timer: bool) -> ArgumentMaker:
    """The maker of a ``StateParam``, ``TimerParam``, ``KeyParam``, ... parameter."""
    name = marker.name
    if name == "StateParam":
        try:
            make_state = operator.states.state_class(marker.spec)
        except ValueError as exc:
            return _failing(exc)
        if timer:
            return lambda fire_at, window, encoded, *_: make_state(encoded, window)
        return lambda value, timestamp, window, encoded, *_: make_state(encoded, window)
    if name == "TimerParam":
        if marker.spec.name not in operator.timer_specs:
            return _failing(ValueError(f"{marker.spec!r} is not a timer of this DoFn"))
        spec = marker.spec
        if timer:
            return lambda fire_at, window, encoded, key, output_timestamp, tag: UserTimer(
                operator, spec, encoded, window, output_timestamp)
        return lambda value, timestamp, window, encoded, *_: UserTimer(
            operator, spec, encoded, window, timestamp)
    if name == "KeyParam":
        if timer:
            return lambda fire_at, window, encoded, key, *_: key
        return lambda value, timestamp, window, encoded, key, *_: key
    if name == "PaneInfoParam":
        if timer:
            return lambda *_: PANE_INFO_UNKNOWN
        return lambda value, timestamp, window, encoded, key, pane, sides: (
            PANE_INFO_UNKNOWN if pane is None else pane)
    if name == "DynamicTimerTagParam":
        if timer:
            return lambda fire_at, window, encoded, key, output_timestamp, tag: tag
        return lambda *_: ""
    return _failing(TypeError(f"{marker!r} is not available here"))


def _process_maker(operator: "StatefulParDoOperator", kind: int, extra: Any) -> ArgumentMaker:
    if kind == dofn_invoker.ELEMENT:
        return lambda value, *_: value
    if kind == dofn_invoker.TIMESTAMP:
        return lambda value, timestamp, *_: _timestamp(timestamp)
    if kind == dofn_invoker.WINDOW:
        return lambda value, timestamp, window, *_: window
    if kind == dofn_invoker.ARG:
        return lambda *_: extra
    if kind == dofn_invoker.SIDE:
        return lambda value, timestamp, window, encoded, key, pane, sides: sides[extra]
    return _context_maker(operator, extra, timer=False)


def bind_process(operator: "StatefulParDoOperator") -> Callable[..., Any]:
    """``call(value, timestamp, window, encoded, key, pane, sides)``: calls ``process``.

    ``timestamp`` is int micros, ``encoded`` the encoded key, ``pane`` the element's
    pane info (or None), ``sides`` the side input values for ``window``.
    """
    invoker = operator.invoker
    method = invoker.method
    positional, keyword = invoker.plan()
    makers = [_process_maker(operator, kind, extra) for kind, extra in positional[1:]]
    named = [(name, _process_maker(operator, kind, extra))
             for name, (kind, extra) in keyword.items()]
    if not named:
        def call(value: Any, timestamp: int, window: Any, encoded: bytes, key: Any,
                 pane: Any, sides: List[Any]) -> Any:
            return method(value, *[make(value, timestamp, window, encoded, key, pane, sides)
                                   for make in makers])
        return call

    def call_with_keywords(value: Any, timestamp: int, window: Any, encoded: bytes, key: Any,
                           pane: Any, sides: List[Any]) -> Any:
        args = [make(value, timestamp, window, encoded, key, pane, sides) for make in makers]
        kwargs = {name: make(value, timestamp, window, encoded, key, pane, sides)
                  for name, make in named}
        return method(value, *args, **kwargs)
    return call_with_keywords


def bind_timer_callback(operator: "StatefulParDoOperator",
                        invoker: timer_invoker.TimerCallbackInvoker) -> Callable[..., Any]:
    """``call(fire_at, window, encoded, key, output_timestamp, tag)``: calls the callback.

    ``TimestampParam`` is the firing time; a ``TimerParam`` timer takes the output
    timestamp as the time of the input being processed.
    """
    method = invoker.method
    named: List[tuple] = []
    for name, kind, marker in invoker.plan:
        if kind == timer_invoker.TIMESTAMP:
            named.append((name, lambda fire_at, *_: _timestamp(fire_at)))
        elif kind == timer_invoker.WINDOW:
            named.append((name, lambda fire_at, window, *_: window))
        else:
            named.append((name, _context_maker(operator, marker, timer=True)))

    def call(fire_at: int, window: Any, encoded: bytes, key: Any, output_timestamp: int,
             tag: Optional[str]) -> Any:
        return method(**{name: make(fire_at, window, encoded, key, output_timestamp, tag)
                         for name, make in named})
    return call
