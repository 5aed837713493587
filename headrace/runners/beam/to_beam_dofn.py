"""Running headrace ``DoFn`` s and ``CombineFn`` s inside Apache Beam.

Beam discovers what a DoFn needs (timestamp, window, state, timers, ...) from
the parameter defaults of its methods. So for each headrace ParDo a Beam DoFn
*class* is generated whose ``process`` and ``@on_timer`` methods declare, with
Beam's markers, exactly what the headrace DoFn asks for with headrace's
markers (asking for more would change behaviour: ``WindowParam`` makes Beam
call ``process`` once per window). At run time the wrapper converts what Beam
passes into headrace objects, calls the headrace DoFn through the same
invoker the headrace runners use, and converts what it emits back.

>>> import headrace as hr
>>> class Double(hr.DoFn):
...     def process(self, x, ts=hr.DoFn.TimestampParam):
...         yield 2 * x
>>> p = hr.Pipeline()
>>> node = (p | hr.Create([1]) | hr.ParDo(Double())).producer
>>> type(make_beam_dofn(node)).__name__
'Beam[Double]'
"""
from __future__ import annotations

import inspect
import types
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.transforms import userstate as bus

from headrace.runners.beam.to_beam_values import (
    BeamMetricsBridge,
    to_beam_outputs,
    to_headrace_micros,
    to_headrace_pane,
    to_headrace_window,
    user_time_to_beam,
)
from headrace.runners.common.dofn_invoker import make_process_invoker
from headrace.runners.common.errors import reraise_with_label
from headrace.runners.common.timer_invoker import TimerCallbackInvoker
from headrace.sdk import userstate as hus
from headrace.sdk.serialization import dumps_user_code, loads_user_code
from headrace.sdk.timeutil import TimeDomain

_P = inspect.Parameter


# -- CombineFn ------------------------------------------------------------------------------------

class BeamCombineFnAdapter(beam.CombineFn):
    """A headrace ``CombineFn`` (with its extra arguments) as a Beam ``CombineFn``, so that
    Beam can lift it (combine before the shuffle) as it would its own.

    >>> from headrace.sdk.combinefn import CombineFn
    >>> adapter = BeamCombineFnAdapter(dumps_user_code((CombineFn.maybe_from_callable(sum),
    ...                                                 (), {}), "Sum"), "Sum")
    >>> adapter.extract_output(adapter.add_input(adapter.create_accumulator(), 3))
    3
    """

    def __init__(self, serialized: bytes, label: str) -> None:
        super().__init__()
        self._serialized = serialized
        self._label = label
        self._loaded: Optional[Tuple[Any, tuple, dict]] = None
        self._metrics = BeamMetricsBridge()

    def __getstate__(self) -> Dict[str, Any]:
        return {"_serialized": self._serialized, "_label": self._label}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._loaded = None
        self._metrics = BeamMetricsBridge()

    def _call(self, method: str, *args: Any) -> Any:
        if self._loaded is None:
            self._loaded = loads_user_code(self._serialized)
        fn, extra_args, extra_kwargs = self._loaded
        try:
            with self._metrics.scope():
                return getattr(fn, method)(*args, *extra_args, **extra_kwargs)
        except Exception as exc:
            reraise_with_label(exc, self._label)

    def setup(self, *args: Any, **kwargs: Any) -> None:
        self._call("setup")

    def create_accumulator(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("create_accumulator")

    def add_input(self, mutable_accumulator: Any, element: Any, *args: Any, **kwargs: Any) -> Any:
        return self._call("add_input", mutable_accumulator, element)

    def add_inputs(self, mutable_accumulator: Any, elements: Any, *args: Any,
                   **kwargs: Any) -> Any:
        return self._call("add_inputs", mutable_accumulator, elements)

    def merge_accumulators(self, accumulators: Any, *args: Any, **kwargs: Any) -> Any:
        return self._call("merge_accumulators", accumulators)

    def compact(self, accumulator: Any, *args: Any, **kwargs: Any) -> Any:
        return self._call("compact", accumulator)

    def extract_output(self, accumulator: Any, *args: Any, **kwargs: Any) -> Any:
        return self._call("extract_output", accumulator)

    def teardown(self, *args: Any, **kwargs: Any) -> None:
        if self._loaded is not None:
            self._call("teardown")

    def default_label(self) -> str:
        return f"BeamCombineFnAdapter({self._label})"


# -- state and timer specs ------------------------------------------------------------------------

class _HeadraceCoder(beam.coders.Coder):
    """A headrace ``Coder`` used where Beam needs a coder (state cells)."""

    def __init__(self, coder: Any) -> None:
        self.coder = coder

    def encode(self, value: Any) -> bytes:
        return self.coder.encode(value)

    def decode(self, encoded: bytes) -> Any:
        return self.coder.decode(encoded)

    def is_deterministic(self) -> bool:
        return self.coder.is_deterministic()


def _beam_coder(coder: Any) -> Any:
    return _HeadraceCoder(coder) if coder is not None else beam.coders.FastPrimitivesCoder()


def to_beam_state_spec(spec: hus.StateSpec, label: str) -> Any:
    """Beam's spec for a headrace state spec; ``NotImplementedError`` for what Beam lacks."""
    if spec.ttl is not None:
        raise NotImplementedError(
            f"{label}: state time-to-live (ttl=StateTtl(...) on {spec!r}) has no Apache Beam "
            "counterpart; it cannot run with --runner=beam")
    if isinstance(spec, hus.MapStateSpec):
        raise NotImplementedError(
            f"{label}: MapStateSpec {spec.name!r} (MapState) has no Apache Beam Python "
            "counterpart; it cannot run with --runner=beam")
    if isinstance(spec, hus.CombiningValueStateSpec):
        combine = BeamCombineFnAdapter(
            dumps_user_code((spec.combine_fn, (), {}), label, "CombineFn"), label)
        coder = _HeadraceCoder(spec.coder) if spec.coder is not None else None
        return bus.CombiningValueStateSpec(spec.name, coder, combine)
    if isinstance(spec, hus.BagStateSpec):
        return bus.BagStateSpec(spec.name, _beam_coder(spec.coder))
    if isinstance(spec, hus.SetStateSpec):
        return bus.SetStateSpec(spec.name, _beam_coder(spec.coder))
    if isinstance(spec, hus.ReadModifyWriteStateSpec):
        return bus.ReadModifyWriteStateSpec(spec.name, _beam_coder(spec.coder))
    raise NotImplementedError(f"{label}: state spec {spec!r} ({type(spec).__name__}) has no "
                              "Apache Beam counterpart")


def to_beam_timer_spec(spec: hus.TimerSpec) -> bus.TimerSpec:
    domain = (bus.TimeDomain.WATERMARK if spec.time_domain == TimeDomain.WATERMARK
              else bus.TimeDomain.REAL_TIME)
    # Both SDKs prefix the name with "ts-": hand Beam the bare name.
    return bus.TimerSpec(spec.name[len(hus.TimerSpec.prefix):], domain)


class _State:
    """Beam's runtime state as headrace's: reads come back as headrace's runners return them."""

    __slots__ = ("_state", "_kind")

    def __init__(self, state: Any, kind: str) -> None:
        self._state = state
        self._kind = kind

    def read(self) -> Any:
        value = self._state.read()
        if self._kind == "bag":
            return list(value)
        if self._kind == "set":
            return set(value)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)


class _Timer:
    """Beam's runtime timer as headrace's ``BaseTimer``."""

    __slots__ = ("_timer", "_label")

    def __init__(self, timer: Any, label: str) -> None:
        self._timer = timer
        self._label = label

    def set(self, timestamp: Any, dynamic_timer_tag: str = "",
            output_timestamp: Any = None) -> None:
        if output_timestamp is not None:
            raise NotImplementedError(
                f"{self._label}: timer.set(..., output_timestamp=...) has no Apache Beam Python "
                "counterpart; it cannot run with --runner=beam")
        self._timer.set(user_time_to_beam(timestamp), dynamic_timer_tag=dynamic_timer_tag)

    def clear(self, dynamic_timer_tag: str = "") -> None:
        self._timer.clear(dynamic_timer_tag=dynamic_timer_tag)


def _state_kind(spec: hus.StateSpec) -> str:
    if isinstance(spec, hus.BagStateSpec):
        return "bag"
    if isinstance(spec, hus.SetStateSpec):
        return "set"
    return "value"


# -- the generated Beam DoFn ---------------------------------------------------------------------

def _marker_names(method: Callable[..., Any]) -> List[str]:
    """The names of the headrace DoFn markers a method's parameters ask for."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.default.name for p in params if isinstance(p.default, hus._DoFnParam)]


def _with_signature(fn: Callable[..., Any], name: str,
                    params: Sequence[Tuple[str, Any]]) -> Callable[..., Any]:
    """Give ``fn(self, *args, **kwargs)`` the signature Beam inspects: ``params`` in order,
    each ``(name, default)`` with ``inspect.Parameter.empty`` for none."""
    fn.__name__ = fn.__qualname__ = name
    fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [_P("self", _P.POSITIONAL_OR_KEYWORD)]
        + [_P(n, _P.POSITIONAL_OR_KEYWORD, default=d) for n, d in params])
    return fn


class _BeamDoFnBase(beam.DoFn):
    """What every generated wrapper shares: loading the headrace DoFn and its lifecycle."""

    _label = ""
    _serialized = b""
    _views: Tuple[Any, ...] = ()
    _state_kinds: Dict[str, str] = {}

    def __init__(self) -> None:
        super().__init__()
        self._fn: Any = None

    def __getstate__(self) -> Dict[str, Any]:
        return {}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self._fn = None

    def _load(self) -> None:
        fn, args, kwargs = loads_user_code(self._serialized)
        self._fn = fn
        self._metrics = BeamMetricsBridge()
        self._invoker = make_process_invoker(fn, args, kwargs, self._label)
        self._timer_invokers: Dict[str, TimerCallbackInvoker] = {}
        for spec in hus.get_dofn_specs(fn)[1]:
            callback = spec._attached_callback
            self._timer_invokers[spec.name] = TimerCallbackInvoker(
                getattr(fn, callback.__name__), spec, self._label)
        self._side_cache: Dict[int, Tuple[Any, Any]] = {}

    def _user(self, call: Callable[[], Any]) -> List[Any]:
        """Run user code with headrace metrics going to Beam's; outputs converted."""
        try:
            with self._metrics.scope():
                return to_beam_outputs(call())
        except Exception as exc:
            reraise_with_label(exc, self._label)

    def setup(self) -> None:
        self._load()
        self._user(self._fn.setup)

    def start_bundle(self) -> None:
        if self._fn is None:
            self._load()
        self._user(self._fn.start_bundle)

    def finish_bundle(self) -> Any:
        return self._user(self._fn.finish_bundle)

    def teardown(self) -> None:
        if self._fn is not None:
            self._user(self._fn.teardown)

    def _side_values(self, raw: Sequence[Any]) -> List[Any]:
        # Beam hands over one list per window; shape it once per list, as headrace would.
        values = []
        for i, (view, value) in enumerate(zip(self._views, raw)):
            cached = self._side_cache.get(i)
            if cached is None or cached[0] is not value:
                cached = (value, view.view(list(value)))
                self._side_cache[i] = cached
            values.append(cached[1])
        return values

    def _runtime(self, bound: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        states = {name[len("hr_state_"):]: _State(v, self._state_kinds[name[len("hr_state_"):]])
                  for name, v in bound.items() if name.startswith("hr_state_")}
        timers = {"ts-" + name[len("hr_timer_"):]: _Timer(v, self._label)
                  for name, v in bound.items() if name.startswith("hr_timer_")}
        return states, timers

    def _resolver(self, bound: Dict[str, Any], stateful: bool) -> Callable[[Any], Any]:
        states, timers = self._runtime(bound)

        def resolve(marker: Any) -> Any:
            name = marker.name
            if name == "StateParam":
                return states[marker.spec.name]
            if name == "TimerParam":
                return timers[marker.spec.name]
            if name == "PaneInfoParam" and "hr_pane" in bound:
                return to_headrace_pane(bound["hr_pane"])
            if name == "KeyParam" and stateful:
                return bound["hr_key"]
            if name == "DynamicTimerTagParam" and "hr_tag" in bound:
                return bound["hr_tag"]
            raise TypeError(f"{marker!r} is not available here (a stateful DoFn, one that "
                            "declares state or timers, gets KeyParam; timer callbacks get "
                            "DynamicTimerTagParam)")

        return resolve


def _user_params(state_specs: Dict[str, Any], timer_specs: Dict[str, Any]) -> List[Tuple[str, Any]]:
    return ([(f"hr_state_{name}", beam.DoFn.StateParam(spec))
             for name, spec in state_specs.items()]
            + [(f"hr_timer_{name}", beam.DoFn.TimerParam(spec))
               for name, spec in timer_specs.items()])


def _check_name(name: str, label: str) -> None:
    if not name.isidentifier():
        raise NotImplementedError(f"{label}: state or timer name {name!r} must be a Python "
                                  "identifier to run with --runner=beam")


def make_beam_dofn(node: Any) -> beam.DoFn:
    """A Beam DoFn running the headrace ParDo of graph ``node``; refusals name the node."""
    transform, label = node.transform, node.full_label
    fn, args, kwargs = loads_user_code(transform.serialized_fn)
    invoker = make_process_invoker(fn, args, kwargs, label)  # parameter errors, now
    hr_states, hr_timers = hus.get_dofn_specs(fn)
    stateful = hus.is_stateful_dofn(fn)
    if stateful:
        hus.validate_stateful_dofn(fn, label)
    state_specs: Dict[str, Any] = {}
    for spec in sorted(hr_states, key=lambda s: s.name):
        _check_name(spec.name, label)
        state_specs[spec.name] = to_beam_state_spec(spec, label)
    timer_specs: Dict[str, Any] = {}
    for spec in sorted(hr_timers, key=lambda s: s.name):
        bare = spec.name[len(hus.TimerSpec.prefix):]
        _check_name(bare, label)
        timer_specs[bare] = to_beam_timer_spec(spec)
    asked = {m.name for m in invoker.context_params}
    n_side = len(transform.side_inputs)

    params: List[Tuple[str, Any]] = [("element", _P.empty)]
    params += [(f"hr_side_{i}", _P.empty) for i in range(n_side)]
    if invoker.uses_timestamp:
        params.append(("hr_timestamp", beam.DoFn.TimestampParam))
    if invoker.uses_window or stateful:
        params.append(("hr_window", beam.DoFn.WindowParam))
    if "PaneInfoParam" in asked:
        params.append(("hr_pane", beam.DoFn.PaneInfoParam))
    if stateful:
        params.append(("hr_key", beam.DoFn.KeyParam))
    params += _user_params(state_specs, timer_specs)
    names = [n for n, _ in params]

    def process(self: _BeamDoFnBase, *call_args: Any, **call_kwargs: Any) -> List[Any]:
        bound = dict(zip(names, call_args))
        bound.update(call_kwargs)
        side = self._side_values([bound[f"hr_side_{i}"] for i in range(n_side)])
        ts = bound.get("hr_timestamp")
        micros = to_headrace_micros(ts.micros) if ts is not None else 0
        window = bound.get("hr_window")
        window = to_headrace_window(window) if window is not None else None
        resolve = self._resolver(bound, stateful)
        return self._user(lambda: self._invoker.invoke(bound["element"], micros, window, side,
                                                       resolve))

    attrs: Dict[str, Any] = {
        "_label": label, "_serialized": transform.serialized_fn,
        "_views": tuple(_shaper(view) for view in transform.side_inputs),
        "_state_kinds": {s.name: _state_kind(s) for s in hr_states},
        "process": _with_signature(process, "process", params),
    }
    for i, spec in enumerate(sorted(hr_timers, key=lambda s: s.name)):
        callback = spec._attached_callback
        if "PaneInfoParam" in _marker_names(callback):
            raise NotImplementedError(
                f"{label}: the @on_timer callback {callback.__name__} asks for "
                "DoFn.PaneInfoParam, which Beam does not pass to timer callbacks")
        method_name = f"hr_on_timer_{i}"
        attrs[method_name] = bus.on_timer(timer_specs[spec.name[len("ts-"):]])(
            _timer_callback(spec.name, method_name, state_specs, timer_specs))
    cls = type(f"Beam[{type(fn).__name__}]", (_BeamDoFnBase,), attrs)
    return cls()


def _timer_callback(spec_name: str, method_name: str, state_specs: Dict[str, Any],
                    timer_specs: Dict[str, Any]) -> Callable[..., Any]:
    params = [("hr_timestamp", beam.DoFn.TimestampParam), ("hr_window", beam.DoFn.WindowParam),
              ("hr_key", beam.DoFn.KeyParam), ("hr_tag", beam.DoFn.DynamicTimerTagParam)]
    params += _user_params(state_specs, timer_specs)
    names = [n for n, _ in params]

    def callback(self: _BeamDoFnBase, *call_args: Any, **call_kwargs: Any) -> List[Any]:
        bound = dict(zip(names, call_args))
        bound.update(call_kwargs)
        fire_at = to_headrace_micros(bound["hr_timestamp"].micros)
        window = to_headrace_window(bound["hr_window"])
        resolve = self._resolver(bound, True)
        invoker = self._timer_invokers[spec_name]
        return self._user(lambda: invoker.invoke(fire_at, window, resolve))

    return _with_signature(callback, method_name, params)


def _shaper(view: Any) -> Any:
    """A copy of a side-input view that can shape values but holds no PCollection."""
    shaper = view.__class__.__new__(view.__class__)
    shaper.__dict__.update(view.__dict__)
    shaper.pvalue = types.SimpleNamespace(label=view.pvalue.label)
    return shaper
