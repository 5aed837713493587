"""Running Beam's ``DoFn`` s and ``CombineFn`` s inside headrace's operators.

:class:`BeamDoFnAdapter` is a headrace ``DoFn`` whose ``process`` asks
headrace for exactly the context the Beam DoFn asks Beam for (timestamp,
window, pane, key, state, timers) and calls the Beam DoFn with Beam's
objects. Headrace plans a DoFn's parameters from its signature, so the
adapter publishes a signature built per Beam DoFn (``process_signature``,
and ``__signature__`` on the timer callbacks it creates).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from apache_beam.internal.util import insert_values_in_args
from apache_beam.runners.common import DoFnSignature
from apache_beam.transforms import core as beam_core
from apache_beam.transforms import userstate as beam_userstate

from headrace.runners.beam.from_beam_grouping import original_element, original_key
from headrace.runners.beam.from_beam_metrics import install_bridge
from headrace.runners.beam.from_beam_values import (
    beam_timestamp_of,
    headrace_timestamp,
    to_beam_pane,
    to_beam_window,
    to_beam_windowed_value,
    to_headrace_output,
)
from headrace.runners.beam.from_beam_windowing import UnsupportedBeamFeature
from headrace.sdk import userstate as hs
from headrace.sdk.combinefn import CombineFn
from headrace.sdk.dofn import DoFn

_P = inspect.Parameter
BeamParam = beam_core._DoFnParam

#: Beam's context parameters the adapter can supply, and the headrace marker each needs.
_SIMPLE_PARAMS = {
    "TimestampParam": ("ts", DoFn.TimestampParam),
    "WindowParam": ("win", DoFn.WindowParam),
    "PaneInfoParam": ("pane", DoFn.PaneInfoParam),
    "KeyParam": ("key", DoFn.KeyParam),
    "WindowedValueParam": ("win", DoFn.WindowParam),
    "DynamicTimerTagParam": ("tag", DoFn.DynamicTimerTagParam),
}


class BeamCombineFnAdapter(CombineFn):
    """A Beam ``CombineFn`` behind headrace's ``CombineFn`` interface (same four methods)."""

    def __init__(self, beam_fn: Any) -> None:
        self.beam_fn = beam_core.CombineFn.maybe_from_callable(beam_fn)

    def setup(self, *args: Any, **kwargs: Any) -> None:
        install_bridge()
        self.beam_fn.setup(*args, **kwargs)

    def create_accumulator(self, *args: Any, **kwargs: Any) -> Any:
        install_bridge()  # Beam metrics in the CombineFn record into headrace's containers
        return self.beam_fn.create_accumulator(*args, **kwargs)

    def add_input(self, accumulator: Any, element: Any, *args: Any, **kwargs: Any) -> Any:
        return self.beam_fn.add_input(accumulator, element, *args, **kwargs)

    def add_inputs(self, accumulator: Any, elements: Iterable[Any], *args: Any,
                   **kwargs: Any) -> Any:
        return self.beam_fn.add_inputs(accumulator, elements, *args, **kwargs)

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        install_bridge()
        return self.beam_fn.merge_accumulators(accumulators, *args, **kwargs)

    def compact(self, accumulator: Any, *args: Any, **kwargs: Any) -> Any:
        return self.beam_fn.compact(accumulator, *args, **kwargs)

    def extract_output(self, accumulator: Any, *args: Any, **kwargs: Any) -> Any:
        install_bridge()
        return self.beam_fn.extract_output(accumulator, *args, **kwargs)

    def teardown(self, *args: Any, **kwargs: Any) -> None:
        self.beam_fn.teardown(*args, **kwargs)

    def default_label(self) -> str:
        return self.beam_fn.default_label()


def translate_state_spec(spec: Any) -> hs.StateSpec:
    """Headrace's state spec for a Beam one (same name, so errors read the same)."""
    kind = type(spec)
    if kind is beam_userstate.ReadModifyWriteStateSpec:
        return hs.ReadModifyWriteStateSpec(spec.name)
    if kind is beam_userstate.BagStateSpec:
        return hs.BagStateSpec(spec.name)
    if kind is beam_userstate.SetStateSpec:
        return hs.SetStateSpec(spec.name)
    if kind is beam_userstate.CombiningValueStateSpec:
        return hs.CombiningValueStateSpec(spec.name, combine_fn=BeamCombineFnAdapter(
            spec.combine_fn))
    raise UnsupportedBeamFeature(f"the Beam state spec {spec!r} ({kind.__name__}) is not "
                                 "supported by headrace")


class _BeamTimer:
    """Beam's timer interface over headrace's timer (Beam timestamps converted)."""

    __slots__ = ("timer",)

    def __init__(self, timer: Any) -> None:
        self.timer = timer

    def set(self, timestamp: Any, dynamic_timer_tag: str = "",
            output_timestamp: Any = None) -> None:
        self.timer.set(headrace_timestamp(timestamp), dynamic_timer_tag,
                       None if output_timestamp is None else headrace_timestamp(output_timestamp))

    def clear(self, dynamic_timer_tag: str = "") -> None:
        self.timer.clear(dynamic_timer_tag)


class _CallPlan:
    """How to call one Beam DoFn method, planned once with Beam's argument-filling rule.

    Positional values are: the element (unless a parameter asks for
    ``ElementParam``), as many user arguments as there are parameters without
    defaults, then one value per defaulted parameter (the context a marker asks
    for, or the next user argument when one is left), then the leftover user
    arguments; keywords are passed through.
    """

    def __init__(self, method: Any, label: str, takes_element: bool = True,
                 allowed: Tuple[type, ...] = ()) -> None:
        self.method = method.method_value
        self.label = label
        names: List[str] = list(method.args)
        defaults: List[Any] = list(method.defaults)
        self.markers = [d for d in defaults if _is_beam_param(d)]
        for name, default in zip(names[len(names) - len(defaults):], defaults):
            if _is_beam_param(default):
                _check_supported(default, label, name, allowed)
        element_marker = any(_is_beam_param(d) and getattr(d, "param_id", None) == "ElementParam"
                             for d in defaults)
        self.leading_element = takes_element and not element_marker
        self.picked = len(names) - len(defaults) - (1 if self.leading_element else 0)
        self.picked = max(self.picked, 0)
        #: (name, marker or None) for each defaulted parameter, in order.
        self.defaulted = [(name, d if _is_beam_param(d) else None)
                          for name, d in zip(names[len(names) - len(defaults):], defaults)]


def _is_beam_param(value: Any) -> bool:
    """A context marker; ``SideInputParam`` is not one (Beam fills it like a plain default)."""
    if type(value) is BeamParam and value.param_id == "SideInputParam":
        return False
    return isinstance(value, BeamParam) or (isinstance(value, type)
                                             and issubclass(value, BeamParam))


def _check_supported(marker: Any, label: str, name: str, allowed: Tuple[type, ...] = ()) -> None:
    if isinstance(marker, (beam_core._StateDoFnParam, beam_core._TimerDoFnParam) + allowed):
        return
    if type(marker) is BeamParam and marker.param_id in _SIMPLE_PARAMS:
        return
    if type(marker) is BeamParam and marker.param_id == "ElementParam":
        return
    raise UnsupportedBeamFeature(f"{label}: the Beam DoFn parameter {name}={marker!r} is not "
                                 "supported when running on headrace")


class BeamDoFnAdapter(DoFn):
    """Runs one Beam ``DoFn`` (with its ParDo arguments) as a headrace ``DoFn``.

    ``side_count`` side-input values arrive positionally after the element and
    replace Beam's side-input placeholders in ``args``/``kwargs``. Splittable
    DoFns run through the subclass in :mod:`headrace.runners.beam.from_beam_sdf`.
    """

    #: Whether this adapter runs splittable DoFns.
    splittable = False
    #: Beam parameter markers a subclass supplies itself (beyond the simple ones).
    extra_markers: Tuple[type, ...] = ()
    #: Whether ``process`` always asks headrace for the element's timestamp.
    needs_timestamp = False
    #: Beam's key coder when keys headrace cannot encode arrive keyed by it (stateful DoFns).
    key_coder: Optional[Any] = None

    def __init__(self, beam_fn: Any, args: tuple, kwargs: dict, side_count: int,
                 label: str) -> None:
        self.beam_fn = beam_fn
        self.label = label
        self.beam_args = tuple(args)
        self.beam_kwargs = dict(kwargs)
        self.side_count = side_count
        signature = DoFnSignature(beam_fn)
        if signature.is_splittable_dofn() and not self.splittable:
            raise UnsupportedBeamFeature(f"{label}: splittable DoFn {type(beam_fn).__name__} "
                                         "(RestrictionParam) is not supported by headrace")
        # Wrappers (e.g. Beam's exception-handling DoFn) may set ``process`` per instance.
        process = getattr(beam_fn, "process", None)
        if getattr(process, "__func__", process) is beam_core.DoFn.process:
            raise UnsupportedBeamFeature(f"{label}: batched DoFn {type(beam_fn).__name__} "
                                         "(process_batch only) is not supported by headrace")
        self.plan = _CallPlan(signature.process_method, label, allowed=self.extra_markers)
        state_specs, timer_specs = beam_userstate.get_dofn_specs(beam_fn)
        # Sorted by name: a stable order for the generated parameter names.
        self.state_specs = {s: translate_state_spec(s)
                            for s in sorted(state_specs, key=lambda s: s.name)}
        self.timer_specs = {t: hs.TimerSpec(t.name[len(t.prefix):], t.time_domain)
                            for t in sorted(timer_specs, key=lambda t: t.name)}
        self.stateful = bool(state_specs or timer_specs)
        self.timer_plans: Dict[str, _CallPlan] = {}
        for index, (beam_spec, spec) in enumerate(self.timer_specs.items()):
            method = signature.timer_methods.get(beam_spec)
            if method is None:
                raise ValueError(f"{label}: DoFn {type(beam_fn).__name__} has a TimerSpec "
                                 f"without an associated on_timer callback: {beam_spec!r}.")
            plan = _CallPlan(method, label, takes_element=False)
            callback = _make_timer_callback(self, beam_spec, plan, f"_on_timer_{index}")
            setattr(self, callback.__name__, callback)
            hs.on_timer(spec)(callback)
            self.timer_plans[beam_spec.name] = plan
        self._process_signature = self._signature(self.plan.markers, element=True)

    # -- what headrace asks --------------------------------------------------------------------
    def _context_params(self, markers: List[Any], for_timer: bool) -> List[inspect.Parameter]:
        """Keyword-only headrace markers for the context the Beam ``markers`` need."""
        wanted: Dict[str, Any] = {}
        for marker in markers:
            if isinstance(marker, BeamParam) and marker.param_id in _SIMPLE_PARAMS:
                name, hmarker = _SIMPLE_PARAMS[marker.param_id]
                wanted[name] = hmarker
                if marker.param_id == "WindowedValueParam":
                    wanted["ts"] = DoFn.TimestampParam
                    wanted["pane"] = DoFn.PaneInfoParam
        if for_timer or self.needs_timestamp:
            wanted.setdefault("ts", DoFn.TimestampParam)
        if for_timer:
            wanted.setdefault("win", DoFn.WindowParam)
        # Every spec appears in process: that is how headrace learns the DoFn's specs.
        for index, spec in enumerate(self.state_specs.values()):
            wanted[f"state{index}"] = DoFn.StateParam(spec)
        for index, spec in enumerate(self.timer_specs.values()):
            wanted[f"timer{index}"] = DoFn.TimerParam(spec)
        return [_P(f"_hr_{name}", _P.KEYWORD_ONLY, default=marker)
                for name, marker in wanted.items()]

    def _signature(self, markers: List[Any], element: bool) -> inspect.Signature:
        params = []
        if element:
            params += [_P("element", _P.POSITIONAL_ONLY), _P("sides", _P.VAR_POSITIONAL)]
        return inspect.Signature(params + self._context_params(markers, not element))

    def process_signature(self) -> inspect.Signature:
        return self._process_signature

    # -- lifecycle -----------------------------------------------------------------------------
    # Each call installs the Beam metrics bridge: headrace may run any of them on any
    # thread, and Beam finds its metrics tracker per thread.
    def setup(self) -> None:
        install_bridge()
        self.beam_fn.setup()

    def start_bundle(self) -> Any:
        install_bridge()
        return self.beam_fn.start_bundle()  # headrace refuses outputs, as Beam does

    def finish_bundle(self) -> Optional[Iterable[Any]]:
        install_bridge()
        return convert_outputs(self.beam_fn.finish_bundle())

    def teardown(self) -> None:
        install_bridge()
        self.beam_fn.teardown()

    def default_label(self) -> str:
        return type(self.beam_fn).__name__

    # -- calls ---------------------------------------------------------------------------------
    def process(self, element: Any, *sides: Any, **context: Any) -> Any:
        install_bridge()
        if self.key_coder is not None:
            element = original_element(element, self.key_coder)
        args, kwargs = self._user_args(sides)
        call_args = self._fill(self.plan, args, kwargs, element, context)
        return convert_outputs(self.plan.method(*call_args, **kwargs))

    def _user_args(self, sides: tuple) -> Tuple[Any, Dict[str, Any]]:
        """The ParDo's arguments with the side-input values in place of Beam's placeholders."""
        if sides:
            return insert_values_in_args(self.beam_args, self.beam_kwargs, sides)
        return self.beam_args, self.beam_kwargs

    def _fill(self, plan: _CallPlan, args: Any, kwargs: dict, element: Any,
              context: Dict[str, Any]) -> List[Any]:
        values: List[Any] = [element] if plan.leading_element else []
        values.extend(args[:plan.picked])
        remaining = iter(args[plan.picked:])
        for _name, marker in plan.defaulted:
            if marker is None:
                for value in remaining:
                    values.append(value)
                    break
            else:
                values.append(self._param_value(marker, element, context))
        values.extend(remaining)
        return values

    def _param_value(self, marker: Any, element: Any, context: Dict[str, Any]) -> Any:
        if isinstance(marker, beam_core._StateDoFnParam):
            index = list(self.state_specs).index(marker.state_spec)
            return context[f"_hr_state{index}"]
        if isinstance(marker, beam_core._TimerDoFnParam):
            index = list(self.timer_specs).index(marker.timer_spec)
            return _BeamTimer(context[f"_hr_timer{index}"])
        param = marker.param_id
        if param == "ElementParam":
            return element
        if param == "TimestampParam":
            return beam_timestamp_of(context["_hr_ts"].micros)
        if param == "WindowParam":
            return to_beam_window(context["_hr_win"])
        if param == "PaneInfoParam":
            return to_beam_pane(context["_hr_pane"])
        if param == "WindowedValueParam":
            return to_beam_windowed_value(element, context["_hr_ts"].micros, context["_hr_win"],
                                          context["_hr_pane"])
        if param == "KeyParam":
            key = context["_hr_key"]
            return key if self.key_coder is None else original_key(key, self.key_coder)
        if param == "DynamicTimerTagParam":
            return context["_hr_tag"]
        raise UnsupportedBeamFeature(f"{self.label}: DoFn parameter {marker!r}")

    def fire_timer(self, beam_spec: Any, plan: _CallPlan, context: Dict[str, Any]) -> Any:
        install_bridge()
        values = self._fill(plan, (), {}, None, context)
        return convert_outputs(plan.method(*values))


def _make_timer_callback(adapter: BeamDoFnAdapter, beam_spec: Any, plan: _CallPlan,
                         name: str) -> Callable[..., Any]:
    """A function headrace calls when the timer fires, with the context it declares."""

    def callback(**context: Any) -> Any:
        return adapter.fire_timer(beam_spec, plan, context)

    callback.__name__ = callback.__qualname__ = name
    callback.__signature__ = adapter._signature(plan.markers, element=False)  # type: ignore
    return callback


def convert_outputs(results: Any) -> Any:
    """A Beam DoFn's results as headrace outputs (converted lazily, one by one)."""
    if results is None or isinstance(results, (str, bytes, dict)):
        return results  # headrace reports the str/bytes/dict mistake as Beam does
    return (to_headrace_output(output) for output in results)
