"""Re-raising user-code failures with the transform's label and the user's traceback."""
from __future__ import annotations

from typing import NoReturn


class UserCodeError(RuntimeError):
    """A failure in user code whose exception type could not be re-created."""


_LABELLED = "_headrace_label"


def reraise_with_label(exc: BaseException, label: str) -> NoReturn:
    """Re-raise ``exc`` as the same type, its message naming ``label``, keeping its traceback.

    Beam users catch the original exception type (``pytest.raises(ZeroDivisionError)``),
    so the type is kept whenever it can be constructed from a message.
    """
    if getattr(exc, _LABELLED, None) is not None or not isinstance(exc, Exception):
        raise exc
    message = f"{exc} [while running {label!r}]"
    try:
        labelled = type(exc)(message)
    except Exception:
        labelled = UserCodeError(f"{type(exc).__name__}: {message}")
    if type(labelled) is not type(exc) or str(labelled) != message:
        labelled = UserCodeError(f"{type(exc).__name__}: {message}")
    setattr(labelled, _LABELLED, label)
    raise labelled.with_traceback(exc.__traceback__) from exc
