"""CombinePerKey over session windows with the default trigger: the session fast path.

The operator is the general :class:`CombinePerKeyOperator` (metrics, bundles,
watermarks, CombineFn lifecycle) driving a
:class:`~headrace.runners.common.session_combine.SessionCombiner` instead of the
general triggered grouping; the factory picks it when
:func:`~headrace.runners.common.session_combine.supports` the windowing.
"""
from __future__ import annotations

from headrace.runners.common.session_combine import SessionCombiner, supports
from headrace.runners.operators.grouping_operators import CombinePerKeyOperator
from headrace.sdk.windowing import Windowing


class SessionCombinePerKeyOperator(CombinePerKeyOperator):
    """Emits ``(key, combined)`` panes per session; one accumulator per key and session.

    >>> from headrace.sdk.combinefn import CombineFn
    >>> from headrace.sdk.serialization import dumps_user_code
    >>> from headrace.sdk.timestamp import MAX_MICROS
    >>> from headrace.sdk.window import Sessions
    >>> from headrace.sdk.windowed_value import WindowedValue
    >>> op = SessionCombinePerKeyOperator(
    ...     "Sum", Windowing(Sessions(5)),
    ...     dumps_user_code((CombineFn.maybe_from_callable(sum), (), {}), "Sum"))
    >>> panes = []
    >>> op.emit_batch = lambda tag, batch: panes.extend(batch)
    >>> window = Sessions(5).assign_micros(0, None, None)
    >>> op.process_batch(0, [WindowedValue.of(("a", 1), 0, window),
    ...                      WindowedValue.of(("a", 2), 0, window)])
    >>> op.on_watermark(0, MAX_MICROS); [(wv.value, wv.windows) for wv in panes]
    [(('a', 3), (IntervalWindow(0, 5),))]
    """

    def __init__(self, label: str, windowing: Windowing, serialized_fn: bytes) -> None:
        super().__init__(label, windowing, serialized_fn)
        self.grouping = SessionCombiner(windowing, self.combine_fn, self.args, self.kwargs)


def combine_per_key_operator(windowing: Windowing) -> type:
    """The operator class for a CombinePerKey over ``windowing``: the session fast path when
    it applies, else the general one.

    >>> from headrace.sdk.window import FixedWindows, Sessions
    >>> combine_per_key_operator(Windowing(Sessions(5))).__name__
    'SessionCombinePerKeyOperator'
    >>> combine_per_key_operator(Windowing(FixedWindows(5))).__name__
    'CombinePerKeyOperator'
    """
    return SessionCombinePerKeyOperator if supports(windowing) else CombinePerKeyOperator
