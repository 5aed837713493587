"""The coder registry: which coder encodes values of a given type or type hint.

Beam code registers custom coders with
``beam.coders.registry.register_coder(MyType, MyCoder)``; the same call works
here, and a deterministic registered coder also lets ``MyType`` be a
grouping key (see :mod:`headrace.sdk.coders.keys`).

>>> registry.get_coder(int)
VarIntCoder
>>> registry.get_coder(tuple[str, int])
TupleCoder[StrUtf8Coder, VarIntCoder]
"""
from __future__ import annotations

import collections.abc
import typing
from typing import Any, Dict, Iterable, List, Optional, Tuple, Type, Union

from .base import (
    BooleanCoder,
    BytesCoder,
    Coder,
    FloatCoder,
    IterableCoder,
    ListCoder,
    StrUtf8Coder,
    TupleCoder,
    VarIntCoder,
)
from .fast import FastPrimitivesCoder

CoderSpec = Union[Coder, Type[Coder]]


class CoderRegistry:
    """Maps types and type hints to coders.

    ``typing`` generics are resolved structurally: ``tuple[A, B]`` becomes a
    :class:`TupleCoder`, ``list[A]`` a :class:`ListCoder`, ``Iterable[A]`` an
    :class:`IterableCoder`. Anything unregistered gets the fallback,
    :class:`FastPrimitivesCoder`.

    >>> class Point:
    ...     pass
    >>> class PointCoder(Coder):
    ...     def encode(self, p): return b""
    ...     def decode(self, b): return Point()
    >>> reg = CoderRegistry()
    >>> reg.register_coder(Point, PointCoder)
    >>> reg.get_coder(Point)
    PointCoder
    """

    def __init__(self) -> None:
        self._coders: Dict[Any, CoderSpec] = {}
        self._key_coders: Dict[type, Optional[Coder]] = {}
        self.custom_types: List[Any] = []
        for t, coder_class in ((int, VarIntCoder), (float, FloatCoder), (bytes, BytesCoder),
                               (bool, BooleanCoder), (str, StrUtf8Coder)):
            self._coders[t] = coder_class

    def register_coder(self, typehint_type: Any, coder: CoderSpec) -> None:
        """Use ``coder`` (a :class:`Coder` subclass or instance) for ``typehint_type``.

        A class is instantiated through its ``from_type_hint`` classmethod.
        """
        if not (isinstance(coder, Coder) or (isinstance(coder, type) and issubclass(coder, Coder))):
            raise TypeError(
                f"register_coder({typehint_type!r}, {coder!r}): the coder must be a subclass "
                "or an instance of headrace.coders.Coder"
            )
        try:
            hash(typehint_type)
        except TypeError:
            raise TypeError(
                f"register_coder({typehint_type!r}, ...): the type must be hashable"
            ) from None
        if typehint_type not in self.custom_types:
            self.custom_types.append(typehint_type)
        self._coders[typehint_type] = coder
        self._key_coders.clear()

    def _instantiate(self, spec: CoderSpec, typehint: Any) -> Coder:
        return spec if isinstance(spec, Coder) else spec.from_type_hint(typehint, self)

    def get_coder(self, typehint: Any) -> Coder:
        """The coder for a type or type hint, falling back to :class:`FastPrimitivesCoder`.

        >>> CoderRegistry().get_coder(list[float])
        ListCoder[FloatCoder]
        """
        try:
            spec = self._coders.get(typehint)
        except TypeError:  # an unhashable hint is never registered
            spec = None
        if spec is not None:
            return self._instantiate(spec, typehint)
        origin = typing.get_origin(typehint)
        args = typing.get_args(typehint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return TupleCoder([self.get_coder(a) for a in args])
        if origin is list and len(args) == 1:
            return ListCoder(self.get_coder(args[0]))
        if origin is collections.abc.Iterable and len(args) == 1:
            return IterableCoder(self.get_coder(args[0]))
        return FastPrimitivesCoder()

    def deterministic_coder_for(self, t: type) -> Optional[Coder]:
        """The registered coder of exactly type ``t`` if any, used for keys of that type.

        Raises ``ValueError`` when a coder is registered but is not deterministic.

        >>> CoderRegistry().deterministic_coder_for(complex) is None
        True
        """
        try:
            return self._key_coders[t]
        except KeyError:
            pass
        spec = self._coders.get(t)
        coder = None if spec is None else self._instantiate(spec, t)
        if coder is not None and not coder.is_deterministic():
            raise ValueError(
                f"the coder {coder!r} registered for {t.__qualname__!r} is not deterministic "
                "(its is_deterministic() returns False)"
            )
        self._key_coders[t] = coder
        return coder

    def get_custom_type_coder_tuples(
            self, types: Optional[Iterable[Any]] = None) -> List[Tuple[Any, CoderSpec]]:
        """The user registrations, so that a runner can ship them to worker processes.

        >>> CoderRegistry().get_custom_type_coder_tuples()
        []
        """
        wanted = None if types is None else list(types)
        return [(t, self._coders[t]) for t in self.custom_types
                if wanted is None or t in wanted]

    def load_custom_type_coder_tuples(self, type_coders: Iterable[Tuple[Any, CoderSpec]]) -> None:
        """Replay registrations from :meth:`get_custom_type_coder_tuples` (in a worker).

        >>> CoderRegistry().load_custom_type_coder_tuples([(complex, FastPrimitivesCoder)])
        """
        for t, coder in type_coders:
            self.register_coder(t, coder)


registry = CoderRegistry()
