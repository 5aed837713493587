"""Per-key state and timers for ``DoFn`` s: Beam's ``apache_beam.transforms.userstate``.

A DoFn becomes *stateful* when one of its methods asks for
``DoFn.StateParam(spec)`` or ``DoFn.TimerParam(spec)``. It must then be
applied to ``(key, value)`` pairs: state and timers are kept per key and
window. ``MapStateSpec`` (Flink's MapState) and state time-to-live
(``ttl=StateTtl(...)``, Flink's StateTtlConfig) go beyond Beam.

>>> import headrace as beam
>>> from headrace.transforms.userstate import BagStateSpec, TimerSpec, on_timer
>>> from headrace.transforms.timeutil import TimeDomain
>>> class BufferUntilWindowEnd(beam.DoFn):
...     BUFFER = BagStateSpec("buffer")
...     FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
...     def process(self, kv, w=beam.DoFn.WindowParam,
...                 buffer=beam.DoFn.StateParam(BUFFER), flush=beam.DoFn.TimerParam(FLUSH)):
...         buffer.add(kv[1])
...         flush.set(w.max_timestamp())
...     @on_timer(FLUSH)
...     def on_flush(self, key=beam.DoFn.KeyParam, buffer=beam.DoFn.StateParam(BUFFER)):
...         yield key, sorted(buffer.read())
...         buffer.clear()
>>> is_stateful_dofn(BufferUntilWindowEnd())
True
"""
from __future__ import annotations

import inspect
import sys
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple, TypeVar

from headrace.sdk.coders.base import Coder
from headrace.sdk.combinefn import CombineFn
from headrace.sdk.dofn import DoFn, _DoFnParam, _SpecParam
from headrace.sdk.state_ttl import StateTtl, TtlUpdate
from headrace.sdk.timeutil import TimeDomain

__all__ = [
    "AccumulatingRuntimeState", "BagRuntimeState", "BagStateSpec", "BaseTimer",
    "CombiningValueRuntimeState", "CombiningValueStateSpec", "MapRuntimeState", "MapStateSpec",
    "ReadModifyWriteRuntimeState", "ReadModifyWriteStateSpec", "RuntimeState",
    "SetRuntimeState", "SetStateSpec", "StateSpec", "StateTtl", "TimeDomain", "TimerSpec",
    "TtlUpdate", "get_dofn_specs", "is_stateful_dofn", "on_timer", "validate_stateful_dofn",
]

CallableT = TypeVar("CallableT", bound=Callable[..., Any])

#: The attribute ``on_timer`` leaves on the decorated function, so that validation can
#: find callbacks whose spec the DoFn never declares.
TIMER_CALLBACK_ATTR = "_headrace_on_timer_specs"


# -- specs keep their identity through pickling ---------------------------------------------

def _pickled_by_reference(cls: type) -> bool:
    """Whether cloudpickle ships ``cls`` by reference (importable) rather than by value."""
    try:
        from cloudpickle.cloudpickle import _should_pickle_by_reference
    except ImportError:  # another cloudpickle: the same rule, approximately
        module = sys.modules.get(cls.__module__)
        if module is None or cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
            return False
        target: Any = module
        for part in cls.__qualname__.split("."):
            target = getattr(target, part, None)
        return target is cls
    return bool(_should_pickle_by_reference(cls))


class _Spec:
    """Specs are matched by identity, as in Beam. A spec declared in a class that is pickled
    by reference is pickled as a reference to that class attribute, so that a method pickled
    by value (say, of a subclass defined in a test) still refers to the very same spec."""

    def __set_name__(self, owner: type, name: str) -> None:
        if "_owner" not in self.__dict__:
            self._owner = (owner, name)

    def __reduce_ex__(self, protocol: Any) -> Any:
        owner = self.__dict__.get("_owner")
        if owner is not None and getattr(owner[0], owner[1], None) is self \
                and _pickled_by_reference(owner[0]):
            return (getattr, owner)
        return super().__reduce_ex__(protocol)

    def __getstate__(self) -> Dict[str, Any]:
        # A copy is no class attribute: it is pickled by value from then on.
        return {k: v for k, v in self.__dict__.items() if k != "_owner"}


# -- state specs ----------------------------------------------------------------------------

class StateSpec(_Spec):
    """Declares one state cell of a stateful DoFn: its name, coder and time to live.

    Specs compare by identity, as in Beam; two specs of one DoFn must not
    share a name.
    """

    def __init__(self, name: str, coder: Optional[Coder] = None,
                 ttl: Optional[StateTtl] = None) -> None:
        if not isinstance(name, str):
            raise TypeError("name is not a string")
        if coder is not None and not isinstance(coder, Coder):
            raise TypeError("coder is not of type Coder")
        if ttl is not None and not isinstance(ttl, StateTtl):
            raise TypeError(f"ttl must be a StateTtl, got {ttl!r:.100}")
        self.name = name
        self.coder = coder
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class ReadModifyWriteStateSpec(StateSpec):
    """A single value (Beam's ValueState): ``read``, ``write``, ``clear``.

    >>> ReadModifyWriteStateSpec("last_seen")
    ReadModifyWriteStateSpec(last_seen)
    """


class BagStateSpec(StateSpec):
    """An unordered collection that is cheap to append to: ``add``, ``read``, ``clear``.

    With a ``ttl``, every element expires on its own.

    >>> BagStateSpec("buffer").name
    'buffer'
    """


class SetStateSpec(StateSpec):
    """A set of distinct values: ``add``, ``read``, ``clear``.

    Elements are told apart by their deterministic encoding (as keys are),
    so ``1`` and ``1.0`` are two elements. With a ``ttl``, every element
    expires on its own.

    >>> SetStateSpec("users")
    SetStateSpec(users)
    """


class CombiningValueStateSpec(StateSpec):
    """A value folded from added inputs by a ``CombineFn`` (or a callable such as ``sum``).

    Beam's argument forms: ``(name, combine_fn)``, ``(name, coder, combine_fn)``
    or ``(name, combine_fn=...)``; ``coder`` is the accumulator's coder.

    >>> CombiningValueStateSpec("total", sum).combine_fn.apply([1, 2])
    3
    """

    def __init__(self, name: str, coder: Any = None, combine_fn: Any = None,
                 ttl: Optional[StateTtl] = None) -> None:
        if combine_fn is None:
            if coder is None:
                raise ValueError("combine_fn must be provided")
            # Beam's two-argument form puts the combine_fn where the coder goes.
            coder, combine_fn = None, coder
        self.combine_fn = CombineFn.maybe_from_callable(combine_fn)
        super().__init__(name, coder, ttl)


class MapStateSpec(StateSpec):
    """A map from user keys to values (Flink's MapState), beyond Beam.

    Methods: ``get``, ``put``, ``remove``, ``contains``, ``keys``, ``values``,
    ``items``, ``is_empty``, ``clear``. Keys are told apart by their
    deterministic encoding (``key_coder`` when given, which must then be
    deterministic). With a ``ttl``, every entry expires on its own.

    >>> MapStateSpec("by_user").name
    'by_user'
    """

    def __init__(self, name: str, key_coder: Optional[Coder] = None,
                 value_coder: Optional[Coder] = None, ttl: Optional[StateTtl] = None) -> None:
        if key_coder is not None:
            if not isinstance(key_coder, Coder):
                raise TypeError("key_coder is not of type Coder")
            if not key_coder.is_deterministic():
                raise ValueError(f"MapStateSpec {name!r}: key_coder {key_coder!r} is not "
                                 "deterministic, so equal keys could be stored twice")
        super().__init__(name, value_coder, ttl)
        self.key_coder = key_coder

    @property
    def value_coder(self) -> Optional[Coder]:
        return self.coder


# -- timers ---------------------------------------------------------------------------------

class TimerSpec(_Spec):
    """Declares a timer (a timer family, with dynamic tags) and its time domain.

    Its callback is the DoFn method decorated with ``@on_timer(spec)``. As in
    Beam, ``name`` carries the ``ts-`` prefix.

    >>> TimerSpec("flush", TimeDomain.WATERMARK)
    TimerSpec(ts-flush)
    """

    prefix = "ts-"

    def __init__(self, name: str, time_domain: str) -> None:
        if not isinstance(name, str):
            raise TypeError("name is not a string")
        if time_domain not in (TimeDomain.WATERMARK, TimeDomain.REAL_TIME):
            raise ValueError(f"Unsupported TimeDomain: {time_domain!r}.")
        self.name = self.prefix + name
        self.time_domain = time_domain
        self._attached_callback: Optional[Callable[..., Any]] = None

    @property
    def is_event_time(self) -> bool:
        return self.time_domain == TimeDomain.WATERMARK

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


def on_timer(timer_spec: TimerSpec) -> Callable[[CallableT], CallableT]:
    """Decorate the DoFn method that runs when the timer of ``timer_spec`` fires.

    The method takes no element; it asks for context with parameter defaults:
    ``DoFn.TimestampParam`` (the firing time), ``DoFn.WindowParam``,
    ``DoFn.KeyParam``, ``DoFn.DynamicTimerTagParam``, ``DoFn.StateParam(spec)``
    and ``DoFn.TimerParam(spec)``. What it yields is output at the timer's
    output timestamp, in the timer's window.

    >>> class Expiring(DoFn):
    ...     EXPIRY = TimerSpec("expiry", TimeDomain.WATERMARK)
    ...     @on_timer(EXPIRY)
    ...     def expired(self, key=DoFn.KeyParam):
    ...         yield key
    >>> Expiring.EXPIRY._attached_callback is Expiring.expired
    True
    """
    if not isinstance(timer_spec, TimerSpec):
        raise ValueError("@on_timer decorator expected TimerSpec.")

    def attach(method: CallableT) -> CallableT:
        if not callable(method):
            raise ValueError("@on_timer decorator expected callable.")
        if timer_spec._attached_callback is not None:
            raise ValueError(f"Multiple on_timer callbacks registered for {timer_spec!r}.")
        timer_spec._attached_callback = method
        try:
            specs = getattr(method, TIMER_CALLBACK_ATTR, ())
            setattr(method, TIMER_CALLBACK_ATTR, (*specs, timer_spec))
        except (AttributeError, TypeError):  # e.g. a builtin; validation will say more
            pass
        return method

    return attach


# -- what user code is handed at run time (runners implement these) ----------------------------

class RuntimeState:
    """State object passed to user code; runners subclass the typed variants below."""

    def prefetch(self) -> None:
        """A hint that the state will be read soon; nothing to do in memory."""

    def finalize(self) -> None:
        """Called when the runner is done with this object."""


class ReadModifyWriteRuntimeState(RuntimeState):
    def read(self) -> Any:
        """The value, or None when none is stored."""
        raise NotImplementedError(type(self))

    def write(self, value: Any) -> None:
        raise NotImplementedError(type(self))

    def clear(self) -> None:
        raise NotImplementedError(type(self))

    def commit(self) -> None:
        """Make writes durable; a no-op for runners that write through."""


class AccumulatingRuntimeState(RuntimeState):
    def read(self) -> Iterable[Any]:
        raise NotImplementedError(type(self))

    def add(self, value: Any) -> None:
        raise NotImplementedError(type(self))

    def clear(self) -> None:
        raise NotImplementedError(type(self))

    def commit(self) -> None:
        """Make writes durable; a no-op for runners that write through."""


class BagRuntimeState(AccumulatingRuntimeState):
    """Bag state: ``read()`` returns the added values."""


class SetRuntimeState(AccumulatingRuntimeState):
    """Set state: ``read()`` returns a ``set`` of the added values."""


class CombiningValueRuntimeState(AccumulatingRuntimeState):
    """Combining state: ``read()`` returns the combined output of the added values."""


class MapRuntimeState(RuntimeState):
    """Map state, after Flink's MapState."""

    def get(self, key: Any, default: Any = None) -> Any:
        raise NotImplementedError(type(self))

    def put(self, key: Any, value: Any) -> None:
        raise NotImplementedError(type(self))

    def remove(self, key: Any) -> None:
        raise NotImplementedError(type(self))

    def contains(self, key: Any) -> bool:
        raise NotImplementedError(type(self))

    def keys(self) -> Iterator[Any]:
        raise NotImplementedError(type(self))

    def values(self) -> Iterator[Any]:
        raise NotImplementedError(type(self))

    def items(self) -> Iterator[Tuple[Any, Any]]:
        raise NotImplementedError(type(self))

    def is_empty(self) -> bool:
        raise NotImplementedError(type(self))

    def clear(self) -> None:
        raise NotImplementedError(type(self))

    def commit(self) -> None:
        """Make writes durable; a no-op for runners that write through."""


class BaseTimer:
    """Timer object passed to user code."""

    def set(self, timestamp: Any, dynamic_timer_tag: str = "",
            output_timestamp: Any = None) -> None:
        """Fire at ``timestamp`` (replacing a pending timer with the same tag).

        ``output_timestamp`` (beyond Beam's Python API; Java's
        ``withOutputTimestamp``) stamps what the callback outputs and holds
        the output watermark there until the timer fires or is cleared.
        """
        raise NotImplementedError(type(self))

    def clear(self, dynamic_timer_tag: str = "") -> None:
        """Cancel the pending timer with this tag, if any."""
        raise NotImplementedError(type(self))


# -- finding the specs of a DoFn ------------------------------------------------------------------

def _method_signatures(dofn: DoFn) -> Iterator[Tuple[str, inspect.Signature]]:
    """(name, signature) of every method of ``dofn``'s class, without running properties."""
    seen: Set[str] = set()
    for klass in type(dofn).__mro__:
        if klass in (DoFn, object):
            continue
        for name, raw in vars(klass).items():
            if name in seen or name.startswith("__"):
                continue
            seen.add(name)
            if not isinstance(raw, (staticmethod, classmethod)) and not inspect.isfunction(raw):
                continue
            signature = None
            if name == "process":
                signature_of = getattr(dofn, "process_signature", None)
                signature = signature_of() if signature_of is not None else None
            if signature is None:
                try:
                    signature = inspect.signature(getattr(dofn, name))
                except (TypeError, ValueError):
                    continue
            yield name, signature


def spec_params(dofn: DoFn) -> List[Tuple[str, str, _DoFnParam]]:
    """Every ``(method name, parameter name, marker)`` of ``dofn``'s DoFn parameters."""
    found = []
    for method_name, signature in _method_signatures(dofn):
        for param in signature.parameters.values():
            if isinstance(param.default, _DoFnParam):
                found.append((method_name, param.name, param.default))
    return found


def get_dofn_specs(dofn: DoFn) -> Tuple[Set[StateSpec], Set[TimerSpec]]:
    """The state and timer specs the methods of ``dofn`` ask for (Beam's rule).

    >>> class Counter(DoFn):
    ...     COUNT = CombiningValueStateSpec("count", sum)
    ...     def process(self, kv, count=DoFn.StateParam(COUNT)):
    ...         count.add(1)
    >>> get_dofn_specs(Counter())
    ({CombiningValueStateSpec(count)}, set())
    """
    state_specs: Set[StateSpec] = set()
    timer_specs: Set[TimerSpec] = set()
    for _, _, marker in spec_params(dofn):
        if isinstance(marker, _SpecParam):
            if marker.name == "StateParam" and isinstance(marker.spec, StateSpec):
                state_specs.add(marker.spec)
            elif marker.name == "TimerParam" and isinstance(marker.spec, TimerSpec):
                timer_specs.add(marker.spec)
    return state_specs, timer_specs


def is_stateful_dofn(dofn: Any) -> bool:
    """Whether ``dofn`` uses state or timers (and so needs keyed input).

    >>> is_stateful_dofn(DoFn())
    False
    """
    if not isinstance(dofn, DoFn):
        return False
    for _, _, marker in spec_params(dofn):
        if isinstance(marker, _SpecParam):
            return True
    return False


def declared_specs(dofn: DoFn) -> Dict[str, Any]:
    """The specs ``dofn`` declares as class (or instance) attributes, by attribute name."""
    declared: Dict[str, Any] = {}
    for klass in reversed(type(dofn).__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, (StateSpec, TimerSpec)):
                declared[name] = value
    for name, value in getattr(dofn, "__dict__", {}).items():
        if isinstance(value, (StateSpec, TimerSpec)):
            declared[name] = value
    return declared


def validate_stateful_dofn(dofn: DoFn, label: Optional[str] = None) -> None:
    """Check the state and timer declarations of ``dofn``; ``ValueError`` names ``label``."""
    from headrace.sdk.userstate_validation import validate  # validation imports this module

    validate(dofn, label)
