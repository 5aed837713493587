"""Re-raising user-code failures with the transform's label and the user's traceback."""
from __future__ import annotations

from typing import NoReturn

_LABELLED = "_headrace_label"


def reraise_with_label(exc: BaseException, label: str) -> NoReturn:
    """Re-raise ``exc`` as the same type, its message naming ``label``, keeping its traceback.

    Beam users catch the original exception type (``pytest.raises(ZeroDivisionError)``),
    so the type is always kept: rebuilt with an annotated first argument when the type
    allows it (Beam does the same), else the original is re-raised with a note.
    """
    if getattr(exc, _LABELLED, None) is not None or not isinstance(exc, Exception):
        raise exc
    labelled: BaseException = exc
    if hasattr(exc, "step_label") and not exc.step_label:
        exc.step_label = label  # errors that already name their step (e.g. bad keys)
    else:
        first = exc.args[0] if exc.args else ""
        try:
            rebuilt = type(exc)(f"{first} [while running {label!r}]", *exc.args[1:])
            if type(rebuilt) is type(exc):
                rebuilt.__dict__.update({k: v for k, v in vars(exc).items()
                                         if k not in vars(rebuilt)})
                labelled = rebuilt
        except Exception:  # a constructor with another signature: keep the original object
            pass
        if labelled is exc and hasattr(exc, "add_note"):
            exc.add_note(f"[while running {label!r}]")
    setattr(labelled, _LABELLED, label)
    if labelled is exc:
        raise exc
    raise labelled.with_traceback(exc.__traceback__) from exc
