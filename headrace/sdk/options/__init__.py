"""Pipeline options: command-line flags parsed with argparse, viewed through classes.

As in Beam, options are declared by subclassing :class:`PipelineOptions` and
overriding ``_add_argparse_args``. Every declared option is parsed from the
same flags, whichever view is used, and all views of one options object share
their values. Flags that no class declares are kept, so a program can parse
its own flags from :meth:`PipelineOptions.unknown_flags`.

>>> options = PipelineOptions(["--runner=multiprocess", "--parallelism", "4", "--input=x"])
>>> options.view_as(StandardOptions).runner, options.view_as(HeadraceOptions).parallelism
('multiprocess', 4)
>>> options.unknown_flags()
['--input=x']

This package is split by job. This module holds the machinery: the registry of the
classes that declare options, the values shared by all views of one options object, and
:class:`PipelineOptions` itself. :mod:`~headrace.sdk.options.flags` turns flags into
values, and :mod:`~headrace.sdk.options.groups` declares headrace's own options; the names
callers use from both are re-exported here.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, ClassVar, Optional, Sequence, TypeVar

from headrace.sdk.options.flags import (
    Declared,
    OptionsError,
    RaisingArgumentParser,
    parse_unknown_flags,
    positive_int,
    unknown_option_message,
    validated,
)

T = TypeVar("T", bound="PipelineOptions")


# The classes that declare options, by importable name: a class redefined (in
# a notebook, or a __main__ imported twice) replaces its earlier version.
_declared: dict[str, Declared] = {}
_generation = 0
_union_cache: dict[int, argparse.ArgumentParser] = {}


def _union_parser() -> argparse.ArgumentParser:
    """A parser of every declared option, to tell unknown flags from known ones.

    Two unrelated classes may declare the same flag (tests often do), so later
    declarations replace earlier ones here; each view still reads the values
    parsed with its own classes' parsers.
    """
    parser = _union_cache.get(_generation)
    if parser is None:
        parser = RaisingArgumentParser(allow_abbrev=False, add_help=False,
                                       conflict_handler="resolve")
        for declared in _declared.values():
            declared.cls._add_argparse_args(parser)
        for action in parser._actions:
            action.required = False
        _union_cache.clear()
        _union_cache[_generation] = parser
    return parser


class _Parsed:
    """A store's flags parsed against every declaring class."""

    def __init__(self, flags: list[str]) -> None:
        self.by_class = {key: vars(d.parser.parse_known_args(flags)[0])
                         for key, d in _declared.items()}
        parser = _union_parser()
        namespace, self.unknown = parser.parse_known_args(flags)
        self.values = vars(namespace)
        self.defaults = {name: parser.get_default(name) for name in self.values}
        self.validators: dict[str, Callable[[Any], Any]] = {}
        for d in _declared.values():
            self.validators.update(d.validators)

    def keep_objects_of(self, previous: "_Parsed") -> None:
        """Reuse values handed out before a re-parse, e.g. a list the user appended to."""
        pairs = [(self.values, previous.values)] + [
            (values, previous.by_class[key]) for key, values in self.by_class.items()
            if key in previous.by_class]
        for new, old in pairs:
            for name in new.keys() & old.keys():
                new[name] = old[name]


_NO_DEFAULT = object()


class _Store:
    """The values shared by all views of one options object."""

    def __init__(self, flags: list[str], overrides: dict[str, Any]) -> None:
        self.flags = flags
        self.overrides = overrides
        self.parsed: Optional[_Parsed] = None
        self.generation = -1
        # Values parsed in an earlier life (before pickling), kept for options
        # whose class this process has not imported.
        self.inherited: dict[str, Any] = {}

    def refresh(self) -> _Parsed:
        if self.parsed is None or self.generation != _generation:
            previous, self.parsed = self.parsed, _Parsed(self.flags)
            self.generation = _generation
            if previous is not None:
                self.parsed.keep_objects_of(previous)
        return self.parsed

    def known_names(self) -> set[str]:
        parsed = self.refresh()
        names = set(parsed.values) | set(self.inherited)
        for values in parsed.by_class.values():
            names.update(values)
        return names

    def lookup(self, name: str, view_keys: Sequence[str]) -> Any:
        """The value of ``name`` seen through a view whose classes are ``view_keys``."""
        if name in self.overrides:
            return self.overrides[name]
        parsed = self.refresh()
        for key in view_keys:
            values = parsed.by_class.get(key)
            if values is not None and name in values:
                return values[name]
        if name in parsed.values:
            return parsed.values[name]
        return self.inherited[name]

    def default(self, name: str, view_keys: Sequence[str]) -> Any:
        for key in view_keys:
            d = _declared.get(key)
            if d is not None and name in d.dests:
                return d.defaults[name]
        return self.refresh().defaults.get(name, _NO_DEFAULT)

    def __getstate__(self) -> dict[str, Any]:
        parsed = self.refresh()
        inherited = dict(self.inherited)
        for values in parsed.by_class.values():
            inherited.update(values)
        inherited.update(parsed.values)
        return {"flags": self.flags, "overrides": self.overrides, "inherited": inherited}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.flags = state["flags"]
        self.overrides = state["overrides"]
        self.inherited = state["inherited"]
        self.parsed = None
        self.generation = -1


def _class_key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_view_keys_cache: dict[type, tuple[str, ...]] = {}


def _view_keys(cls: type) -> tuple[str, ...]:
    keys = _view_keys_cache.get(cls)
    if keys is None:
        keys = _view_keys_cache[cls] = tuple(_class_key(c) for c in cls.__mro__)
    return keys


class PipelineOptions:
    """Options parsed from flags; subclasses declare options and act as views.

    ``flags`` defaults to ``sys.argv[1:]``. ``kwargs`` set options by their
    destination name and take precedence over flags.

    >>> class MyOptions(PipelineOptions):
    ...     @classmethod
    ...     def _add_argparse_args(cls, parser):
    ...         parser.add_argument("--input", default="in.txt")
    >>> options = PipelineOptions(["--input=a.txt", "--streaming"], job_name="j")
    >>> options.view_as(MyOptions).input, options.streaming, options.job_name
    ('a.txt', True, 'j')
    """

    #: Per-option validators applied to values assigned in code (flags are
    #: validated by their argparse ``type``), keyed by destination name.
    _option_validators: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        global _generation
        key = _class_key(cls)
        if "_add_argparse_args" in cls.__dict__:
            # Built now so that a broken declaration fails where the class is defined.
            _declared[key] = Declared(cls)
        else:
            _declared.pop(key, None)
        _generation += 1

    def __init__(self, flags: Optional[Sequence[str]] = None, **kwargs: Any) -> None:
        if isinstance(flags, str):
            raise TypeError(
                f"PipelineOptions flags must be a list of strings, not the single string "
                f"{flags!r}; use shlex.split() to split a command line")
        flag_list = list(sys.argv[1:] if flags is None else flags)
        for flag in flag_list:
            if not isinstance(flag, str):
                raise TypeError(f"PipelineOptions flags must be strings, got {flag!r} "
                                f"({type(flag).__name__}) in {flag_list!r}")
        store = _Store(flag_list, {})
        parsed = store.refresh()
        for name, value in kwargs.items():
            store.overrides[name] = validated(name, value, parsed.validators)
        self._attach(store)

    def _attach(self, store: _Store) -> None:
        object.__setattr__(self, "_store", store)
        keys = _view_keys(type(self))
        for key in keys:
            d = _declared.get(key)
            for name, flag in (d.required.items() if d is not None else ()):
                if store.lookup(name, keys) is None:
                    raise OptionsError(f"{type(self).__qualname__} requires the option {flag}")

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        """Declare this class's options with ``parser.add_argument``; override in subclasses."""

    @classmethod
    def from_dictionary(cls: type[T], options: dict[str, Any]) -> T:
        """Build options from ``{name: value}`` as if they were flags, as Beam does.

        ``True`` becomes a bare ``--name``; ``False`` and ``None`` are dropped; a
        list repeats the flag; a dict is passed as JSON.

        >>> PipelineOptions.from_dictionary({"parallelism": 2, "streaming": True}).streaming
        True
        """
        flags: list[str] = []
        for name, value in options.items():
            if isinstance(value, bool):
                if value:
                    flags.append(f"--{name}")
            elif isinstance(value, list):
                flags.extend(f"--{name}={item}" for item in value)
            elif isinstance(value, dict):
                flags.append(f"--{name}={json.dumps(value)}")
            elif value is not None:
                flags.append(f"--{name}={value}")
        return cls(flags)

    def view_as(self, cls: type[T]) -> T:
        """This object's values seen as ``cls``; assignments on any view are shared.

        >>> options = PipelineOptions([])
        >>> options.view_as(StandardOptions).streaming = True
        >>> options.view_as(HeadraceOptions).streaming
        True
        """
        if not (isinstance(cls, type) and issubclass(cls, PipelineOptions)):
            raise TypeError(f"view_as() takes a PipelineOptions subclass, got {cls!r}")
        view = cls.__new__(cls)
        view._attach(self._store)
        return view

    def unknown_flags(self) -> list[str]:
        """The flags that no options class declares, in their original order.

        >>> PipelineOptions(["--mine", "1", "--streaming"]).unknown_flags()
        ['--mine', '1']
        """
        return list(self._store.refresh().unknown)

    def get_all_options(self, drop_default: bool = False, retain_unknown_options: bool = False,
                        current_only: bool = False) -> dict[str, Any]:
        """All option values by name.

        ``drop_default`` leaves out values equal to their default;
        ``retain_unknown_options`` adds unknown flags (``--x=v`` and ``--x v``
        as the string ``v``, a bare ``--x`` as ``True``) and unknown kwargs;
        ``current_only`` keeps only the options of this view's classes.

        >>> PipelineOptions(["--foo=1", "--bar"]).get_all_options(
        ...     drop_default=True, retain_unknown_options=True)
        {'foo': '1', 'bar': True}
        """
        store = self._store
        parsed = store.refresh()
        keys = _view_keys(type(self))
        if current_only:
            names: set[str] = set()
            for key in keys:
                d = _declared.get(key)
                names |= d.dests if d is not None else set()
        else:
            names = store.known_names()
        result = {}
        for name in sorted(names):
            value = store.lookup(name, keys)
            if drop_default and value == store.default(name, keys):
                continue
            result[name] = value
        if retain_unknown_options:
            for name, value in parse_unknown_flags(parsed.unknown).items():
                result.setdefault(name, store.overrides.get(name, value))
            for name, value in store.overrides.items():
                result.setdefault(name, value)
        return result

    def __getattr__(self, name: str) -> Any:
        # Private names (and lookups made while unpickling) are never options.
        if name.startswith("_"):
            raise AttributeError(name)
        store = self._store
        try:
            return store.lookup(name, _view_keys(type(self)))
        except KeyError:
            pass
        raise AttributeError(unknown_option_message(self, name, store.known_names()))

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        store = self._store
        parsed = store.refresh()
        if name not in store.known_names() and name not in store.overrides:
            raise AttributeError(unknown_option_message(self, name, store.known_names()))
        store.overrides[name] = validated(name, value, parsed.validators)

    def __getstate__(self) -> dict[str, Any]:
        return {"_store": self._store}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "_store", state["_store"])

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | self._store.known_names())

    def __repr__(self) -> str:
        own = self.get_all_options(current_only=type(self) is not PipelineOptions)
        values = ", ".join(f"{k}={v!r}" for k, v in own.items())
        return f"{type(self).__name__}({values})"


# Declared after PipelineOptions, which they subclass; importing this package declares them.
from headrace.sdk.options.groups import (
    CheckpointingOptions,
    DirectOptions,
    HeadraceOptions,
    SetupOptions,
    StandardOptions,
)
from headrace.sdk.options.recovery import RecoveryOptions
from headrace.sdk.options.state import StateBackendOptions
