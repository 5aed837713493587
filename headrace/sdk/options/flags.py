"""From flags to option values: the argparse plumbing behind :mod:`headrace.sdk.options`.

It owns the parser that raises :class:`OptionsError` instead of exiting, the value
converters and validators, the options one class declares (:class:`Declared`), Beam's
reading of flags that no class declares, and the message for an unknown option.

>>> parse_unknown_flags(["--x=1", "--y", "2", "--z"])
{'x': '1', 'y': '2', 'z': True}
"""
from __future__ import annotations

import argparse
import difflib
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from headrace.sdk.options import PipelineOptions


class OptionsError(ValueError):
    """An option has an invalid value, or a required option is missing.

    >>> from headrace.sdk.options import PipelineOptions
    >>> try:
    ...     PipelineOptions(["--parallelism=0"])
    ... except OptionsError as e:
    ...     print(e)
    argument --parallelism: must be a positive integer, got '0'
    """


class RaisingArgumentParser(argparse.ArgumentParser):
    """Raises instead of printing usage and exiting: options are parsed inside libraries."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise OptionsError(message)


def positive_int(value: Any) -> int:
    """An argparse ``type=`` converter and assignment validator for counts.

    >>> positive_int("3")
    3
    """
    number = 0
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            pass
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return number


def positive_seconds(value: Any) -> float:
    """An argparse ``type=`` converter and assignment validator for durations in seconds.

    >>> positive_seconds("0.2")
    0.2
    """
    return _seconds(value, allow_zero=False)


def non_negative_seconds(value: Any) -> float:
    """Like :func:`positive_seconds`, but 0 is allowed.

    >>> non_negative_seconds(0)
    0.0
    """
    return _seconds(value, allow_zero=True)


def _seconds(value: Any, allow_zero: bool) -> float:
    number = -1.0
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            pass
    if number != number or number < 0 or (number == 0 and not allow_zero) \
            or number == float("inf"):
        kind = "a non-negative" if allow_zero else "a positive"
        raise argparse.ArgumentTypeError(f"must be {kind} number of seconds, got {value!r}")
    return number


def validated(name: str, value: Any, validators: dict[str, Callable[[Any], Any]]) -> Any:
    validator = validators.get(name)
    if validator is None or value is None:
        return value
    try:
        return validator(value)
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        raise OptionsError(f"option {name!r}: {exc}") from None


class Declared:
    """The options one class declares in its own ``_add_argparse_args``."""

    def __init__(self, cls: type["PipelineOptions"]) -> None:
        parser = RaisingArgumentParser(allow_abbrev=False, add_help=False)
        try:
            cls._add_argparse_args(parser)
        except argparse.ArgumentError as exc:
            raise OptionsError(f"{cls.__qualname__}._add_argparse_args: {exc}") from None
        actions = parser._actions
        # A required option is enforced only by views of the class declaring it
        # (as in Beam), so parsing never fails on it; see PipelineOptions._attach.
        self.required = {a.dest: (a.option_strings or [a.dest])[0] for a in actions if a.required}
        for action in actions:
            action.required = False
        self.cls = cls
        self.parser = parser
        self.dests = {a.dest for a in actions}
        self.defaults = {dest: parser.get_default(dest) for dest in self.dests}
        self.validators: dict[str, Callable[[Any], Any]] = dict(
            cls.__dict__.get("_option_validators", {}))


def parse_unknown_flags(flags: list[str]) -> dict[str, Any]:
    """Read unknown flags as Beam does: ``--x=v`` and ``--x v`` give ``'v'``, a flag
    followed by another flag (or nothing) gives True, ``-`` in names becomes ``_``,
    and a single-dash flag followed by a value is dropped."""
    result: dict[str, Any] = {}
    i = 0
    while i < len(flags):
        flag = flags[i]
        if flag == "--":
            break
        i += 1
        if not flag.startswith("-"):
            continue
        name, eq, value = flag.lstrip("-").partition("=")
        dest = name.replace("-", "_")
        if eq:
            result[dest] = value
        elif i < len(flags) and not flags[i].startswith("-"):
            if flag.startswith("--"):
                result[dest] = flags[i]
            i += 1
        else:
            result[dest] = True
    return result


def unknown_option_message(view: PipelineOptions, name: str, known: set[str]) -> str:
    message = f"{type(view).__name__} has no option {name!r}"
    close = difflib.get_close_matches(name, sorted(known), n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message + " (options are declared by PipelineOptions subclasses' _add_argparse_args)"
