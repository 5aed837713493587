"""Converting runtime values between Apache Beam's types and headrace's.

A Beam pipeline run on headrace sees Beam's objects in its DoFns (Beam
``Timestamp``, windows, ``PaneInfo``, ``WindowedValue``) while headrace's
operators move headrace's. These functions convert at the boundary, in the
DoFn adapter and the WindowFn adapter, and nowhere else.
"""
from __future__ import annotations

from typing import Any, Optional

from apache_beam.pvalue import TaggedOutput as BeamTaggedOutput
from apache_beam.transforms import window as beam_window_mod
from apache_beam.utils import timestamp as beam_timestamp
from apache_beam.utils import windowed_value as beam_wv

from headrace.sdk.pvalue import TaggedOutput
from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS, Duration, Timestamp
from headrace.sdk.window import GLOBAL_WINDOW, BoundedWindow, GlobalWindow, IntervalWindow
from headrace.sdk.window import TimestampedValue as HeadraceTimestampedValue
from headrace.sdk.windowed_value import PaneInfo, WindowedValue

_BEAM_GLOBAL_WINDOW = beam_window_mod.GlobalWindow()


_BEAM_MAX = beam_timestamp.MAX_TIMESTAMP.micros
_BEAM_MIN = beam_timestamp.MIN_TIMESTAMP.micros


def beam_micros(value: Any) -> int:
    """Microseconds of a Beam ``Timestamp``/``Duration`` (or seconds as a number).

    Beam's ends of time are a little inside int64; they become headrace's.
    """
    micros = getattr(value, "micros", None)
    micros = int(micros) if micros is not None else int(round(float(value) * 1_000_000))
    if micros >= _BEAM_MAX:
        return MAX_MICROS
    if micros <= _BEAM_MIN:
        return MIN_MICROS
    return micros


def beam_timestamp_of(micros: int) -> beam_timestamp.Timestamp:
    """Beam's ``Timestamp`` for int microseconds (headrace's ends of time become Beam's)."""
    return beam_timestamp.Timestamp(micros=min(max(micros, _BEAM_MIN), _BEAM_MAX))


def headrace_timestamp(value: Any) -> Any:
    """A timestamp argument given by Beam user code, as something headrace accepts."""
    if isinstance(value, (beam_timestamp.Timestamp, beam_timestamp.Duration)):
        return Timestamp(micros=beam_micros(value))
    return value


def headrace_duration(value: Any) -> Duration:
    return Duration(micros=beam_micros(value))


class BeamWindow(BoundedWindow):
    """A Beam window of a user-defined type, carried through headrace's operators.

    Headrace needs ``end_micros`` (and ``start_micros`` where it has one);
    equality and hashing are the Beam window's, so grouping is unchanged.
    """

    def __init__(self, beam_window: Any) -> None:
        # Beam carries any object as a window until something needs its end (e.g. a
        # finish_bundle output whose "window" a WindowInto replaces): one without an end
        # is treated as ending when the global window does.
        end = getattr(beam_window, "end", None)
        super().__init__(Timestamp(micros=beam_micros(end) if end is not None
                                   else GLOBAL_WINDOW.end_micros))
        self.beam = beam_window
        start = getattr(beam_window, "start", None)
        if start is not None:
            self.start_micros = beam_micros(start)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BeamWindow) and self.beam == other.beam

    def __hash__(self) -> int:
        return hash(self.beam)

    def __lt__(self, other: "BeamWindow") -> bool:
        return self.end_micros < other.end_micros

    def __repr__(self) -> str:
        return f"BeamWindow({self.beam!r})"


def to_beam_window(window: Any) -> Any:
    """Beam's view of a headrace window."""
    if isinstance(window, BeamWindow):
        return window.beam
    if isinstance(window, GlobalWindow) or window is None:
        return _BEAM_GLOBAL_WINDOW
    if isinstance(window, IntervalWindow):
        return beam_window_mod.IntervalWindow(beam_timestamp_of(window.start_micros),
                                              beam_timestamp_of(window.end_micros))
    raise TypeError(f"Cannot show the headrace window {window!r} to Beam code")


def to_headrace_window(window: Any) -> Any:
    """Headrace's window for a Beam window (custom window types are wrapped)."""
    if isinstance(window, beam_window_mod.GlobalWindow):
        return GLOBAL_WINDOW
    if type(window) is beam_window_mod.IntervalWindow:
        return IntervalWindow.from_micros(beam_micros(window.start), beam_micros(window.end))
    if isinstance(window, (BoundedWindow,)):
        return window
    return BeamWindow(window)


def to_beam_pane(pane: Optional[PaneInfo]) -> Any:
    """Beam's ``PaneInfo`` (the timing numbers are the same in both SDKs)."""
    if pane is None:
        return beam_wv.PANE_INFO_UNKNOWN
    return beam_wv.PaneInfo(pane.is_first, pane.is_last, pane.timing, pane.index,
                            pane.nonspeculative_index)


def to_headrace_pane(pane: Any) -> Optional[PaneInfo]:
    if pane is None or pane == beam_wv.PANE_INFO_UNKNOWN:
        return None
    return PaneInfo(pane.is_first, pane.is_last, pane.timing, pane.index,
                    pane.nonspeculative_index)


def to_headrace_output(output: Any) -> Any:
    """One output of a Beam DoFn as headrace's operators expect it."""
    if isinstance(output, BeamTaggedOutput):
        return TaggedOutput(output.tag, to_headrace_output(output.value))
    if isinstance(output, beam_window_mod.TimestampedValue):
        return HeadraceTimestampedValue(output.value,
                                        Timestamp(micros=beam_micros(output.timestamp)))
    if isinstance(output, beam_wv.WindowedValue):
        return WindowedValue.of(output.value, beam_micros(output.timestamp),
                                tuple(to_headrace_window(w) for w in output.windows),
                                to_headrace_pane(output.pane_info))
    return output


def to_beam_windowed_value(value: Any, timestamp_micros: int, window: Any,
                           pane: Optional[PaneInfo]) -> Any:
    """Beam's ``WindowedValue`` for ``DoFn.WindowedValueParam``."""
    return beam_wv.WindowedValue(value, beam_timestamp_of(timestamp_micros),
                                 [to_beam_window(window)], to_beam_pane(pane))
