"""Calling ``DoFn.process`` with the parameters and side inputs it asks for.

The call is planned once per DoFn instance (which positional slots take the
element, runtime parameters, ParDo arguments or side-input views) so that the
per-element path only fills in values.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from headrace.sdk.dofn import DoFn, _DoFnParam
from headrace.sdk.pardo import SideInputSlot
from headrace.sdk.timestamp import Timestamp

_ELEMENT, _TIMESTAMP, _WINDOW, _ARG, _SIDE, _CONTEXT = range(6)
#: The kinds of parameter in :meth:`DoFnInvoker.plan`, for runners that bind calls themselves.
ELEMENT, TIMESTAMP, WINDOW, ARG, SIDE, CONTEXT = range(6)
_PARAM_KINDS = {"ElementParam": _ELEMENT, "TimestampParam": _TIMESTAMP, "WindowParam": _WINDOW}
#: Parameters the operator resolves through the ``context`` callable given to ``invoke``.
CONTEXT_PARAMS = frozenset({"PaneInfoParam", "KeyParam", "StateParam", "TimerParam",
                            "DynamicTimerTagParam"})


def _param_kind(default: Any, label: str, name: str) -> Optional[int]:
    if not isinstance(default, _DoFnParam):
        return None
    if default.name in CONTEXT_PARAMS:
        return _CONTEXT
    kind = _PARAM_KINDS.get(default.name)
    if kind is None:
        raise NotImplementedError(f"{label}: DoFn parameter {name}={default!r} is not supported "
                                  "by this runner yet")
    return kind


def _slot(value: Any) -> Tuple[int, Any]:
    if isinstance(value, SideInputSlot):
        return (_SIDE, value.index)
    return (_ARG, value)


class DoFnInvoker:
    """Plans and performs calls of one method (``process``) of a DoFn instance."""

    def __init__(self, method: Callable[..., Any], args: tuple, kwargs: dict, label: str,
                 signature: Optional[inspect.Signature] = None) -> None:
        self.method = method
        self.label = label
        if signature is None:
            try:
                signature = inspect.signature(method)
            except (TypeError, ValueError):
                signature = None
        self._positional: List[Tuple[int, Any]] = [(_ELEMENT, None)]
        self._keyword: Dict[str, Tuple[int, Any]] = {}
        remaining = list(args)
        if signature is not None:
            self._plan(signature, remaining, kwargs)
        else:
            self._positional += [_slot(a) for a in remaining]
            self._keyword.update({k: _slot(v) for k, v in kwargs.items()})
        kinds = {kind for kind, _ in self._positional} | {k for k, _ in self._keyword.values()}
        self.uses_window = _WINDOW in kinds or _SIDE in kinds
        self.uses_timestamp = _TIMESTAMP in kinds
        #: The context markers (PaneInfoParam, StateParam(spec), ...) this method asks for.
        self.context_params = [extra for kind, extra in
                               (*self._positional, *self._keyword.values()) if kind == _CONTEXT]
        self.simple = kinds <= {_ELEMENT, _ARG}
        self.static_args = tuple(v for _, v in self._positional[1:])
        self.static_kwargs = {k: v for k, (_, v) in self._keyword.items()}
        #: ``call(value, timestamp_micros, window)`` when no side input or context
        #: parameter is asked for (the operator's column path), else None.
        self.call = (self._make_call() if kinds <= {_ELEMENT, _ARG, _TIMESTAMP, _WINDOW}
                     else None)

    def _make_call(self) -> Callable[[Any, int, Any], Any]:
        method = self.method
        if self.simple:
            args, kwargs = self.static_args, self.static_kwargs
            return lambda value, timestamp_micros, window: method(value, *args, **kwargs)
        positional, keyword = list(self._positional), list(self._keyword.items())

        def call(value: Any, timestamp_micros: int, window: Any) -> Any:
            # One pass over the plan, no closure per element (this is per element).
            args = [value if kind == _ELEMENT else window if kind == _WINDOW else
                    extra if kind == _ARG else Timestamp(micros=timestamp_micros)
                    for kind, extra in positional]
            kwargs = {name: value if kind == _ELEMENT else window if kind == _WINDOW else
                      extra if kind == _ARG else Timestamp(micros=timestamp_micros)
                      for name, (kind, extra) in keyword}
            return method(*args, **kwargs)

        return call

    def _plan(self, signature: inspect.Signature, remaining: list, kwargs: dict) -> None:
        params = list(signature.parameters.values())
        if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                inspect.Parameter.VAR_POSITIONAL):
            raise TypeError(f"{self.label}: {self.method.__qualname__} must take the element "
                            "as its first argument")
        if params[0].kind == inspect.Parameter.VAR_POSITIONAL:
            self._positional += [_slot(a) for a in remaining]
            self._keyword.update({k: _slot(v) for k, v in kwargs.items()})
            return
        positional_ok = True
        for param in params[1:]:
            kind = _param_kind(param.default, self.label, param.name)
            if param.kind == inspect.Parameter.VAR_POSITIONAL:
                self._positional += [_slot(a) for a in remaining]
                remaining.clear()
                positional_ok = False
            elif param.kind == inspect.Parameter.VAR_KEYWORD:
                break
            elif kind is not None:
                # Context parameters keep their marker so the operator knows what is asked.
                extra = param.default if kind == _CONTEXT else None
                if positional_ok and param.kind != inspect.Parameter.KEYWORD_ONLY:
                    self._positional.append((kind, extra))
                else:
                    self._keyword[param.name] = (kind, extra)
            elif param.kind == inspect.Parameter.KEYWORD_ONLY or param.name in kwargs:
                positional_ok = False
            elif remaining and positional_ok:
                self._positional.append(_slot(remaining.pop(0)))
            else:
                positional_ok = False
        if remaining:
            raise TypeError(f"{self.label}: {len(remaining)} extra positional argument(s) "
                            f"{remaining!r:.100} do not fit {self.method.__qualname__}{signature}")
        for name, value in kwargs.items():
            if name in self._keyword:
                raise TypeError(f"{self.label}: argument {name!r} is both a DoFn parameter "
                                "and a keyword argument")
            self._keyword[name] = _slot(value)
        if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params):
            unknown = set(kwargs) - set(signature.parameters)
            if unknown:
                raise TypeError(f"{self.label}: unexpected keyword argument(s) {sorted(unknown)} "
                                f"for {self.method.__qualname__}{signature}")

    def plan(self) -> Tuple[List[Tuple[int, Any]], Dict[str, Tuple[int, Any]]]:
        """``(positional, keyword)``: ``(kind, extra)`` for each positional parameter (the
        element first) and each keyword one; ``extra`` is the value of an ``ARG``, the index
        of a ``SIDE`` input, the marker of a ``CONTEXT`` parameter."""
        return list(self._positional), dict(self._keyword)

    def invoke(self, value: Any, timestamp_micros: int = 0, window: Any = None,
               side_values: Sequence[Any] = (),
               context: Optional[Callable[[Any], Any]] = None) -> Any:
        """Call the method for one element in one window.

        ``context(marker)`` resolves the context parameters (pane info, key, state, timers).
        """
        if self.simple:
            return self.method(value, *self.static_args, **self.static_kwargs)

        def resolve(kind: int, extra: Any) -> Any:
            if kind == _ARG:
                return extra
            if kind == _SIDE:
                return side_values[extra]
            if kind == _ELEMENT:
                return value
            if kind == _TIMESTAMP:
                return Timestamp(micros=timestamp_micros)
            if kind == _CONTEXT:
                if context is None:
                    raise TypeError(f"{self.label}: {extra!r} is not available here")
                return context(extra)
            return window

        args = [resolve(kind, extra) for kind, extra in self._positional]
        kwargs = {name: resolve(kind, extra) for name, (kind, extra) in self._keyword.items()}
        return self.method(*args, **kwargs)


def make_process_invoker(fn: DoFn, args: tuple, kwargs: dict, label: str) -> DoFnInvoker:
    """Plan the ``process`` calls of ``fn`` inside transform ``label``."""
    if type(fn).process is DoFn.process:
        raise TypeError(f"{label}: {type(fn).__name__} must implement process()")
    signature_of = getattr(fn, "process_signature", None)
    signature = signature_of() if signature_of is not None else None
    return DoFnInvoker(fn.process, args, kwargs, label, signature)
