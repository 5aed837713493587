"""A live progress display for long jobs: one line per stage, redrawn in place.

The coordinator calls :meth:`ProgressDisplay.update` a few times per second with one
:class:`StageProgress` per stage; the display works out each stage's records per second
(smoothed over the last few seconds), its watermark lag, and its backpressure, and redraws a
compact table on the terminal with :mod:`rich` (``rich.live.Live``, refreshed only by
``update``). It draws only on a terminal, unless told otherwise, and never fails a job: if
writing to the terminal fails, the display turns itself off.

Example, drawing to a string with a fake clock::

    >>> import io
    >>> from headrace.runners.multiprocess.progress import ProgressDisplay, StageProgress
    >>> now = [0.0]
    >>> out = io.StringIO()
    >>> display = ProgressDisplay(out, enabled=True, clock=lambda: now[0])
    >>> display.update([StageProgress("Read -> Map", 0, None, 0.0)])
    >>> now[0] = 2.0
    >>> wall = 1_700_000_001_500_000    # microseconds since the epoch
    >>> display.update([StageProgress("Read -> Map", 5000, wall - 1_500_000, 0.25)],
    ...                wall_now_micros=wall)
    >>> display.rates()
    {'Read -> Map': 2500.0}
    >>> display.close()
    >>> frame = out.getvalue()
    >>> all(part in frame for part in ("Read -> Map", "2.50k/s", "lag 1.5s", "25%"))
    True

Without a terminal (or with ``enabled=False``, as for ``--quiet``) nothing is written, and
``update`` only keeps the rates, which :meth:`ProgressDisplay.rates` returns so that the
runner can publish them as metrics.

On a terminal, what this process prints to stdout and stderr while the display is up (but
not what other processes write to the same terminal) appears above the display.

Drawing a frame of ten stages costs about half a millisecond, most of it in ``rich``, which
is imported only when the display first draws; a disabled display costs about a microsecond
per stage per update. The display is not thread-safe: call ``update`` and ``close`` from one
thread.
"""
from __future__ import annotations

import collections
import datetime
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Sequence, TextIO

from headrace.sdk.timestamp import MAX_MICROS, MIN_MICROS

if TYPE_CHECKING:  # rich is imported only when the display draws (it takes ~40 ms to import).
    from rich.console import Console
    from rich.live import Live

__all__ = ["StageProgress", "ProgressDisplay"]

_LOG = logging.getLogger(__name__)

#: A watermark within this distance of the wall clock is shown as a lag (a streaming job);
#: farther away, as a time (a batch job over old data, or timestamps that are not wall times).
LAG_HORIZON_MICROS = 86_400 * 1_000_000

#: The size of the display drawn into a stream that is not a terminal.
_FILE_WIDTH, _FILE_HEIGHT = 100, 1000

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


@dataclass(frozen=True)
class StageProgress:
    """One stage's figures at one moment, combined over its subtasks by the coordinator."""

    #: The stage's label, e.g. ``"Read -> Map -> Filter"``; unique among the stages of a job
    #: (rates are kept per name).
    name: str
    #: Cumulative records the stage emitted, summed over its subtasks.
    records_out: int
    #: Microseconds since the epoch, the minimum over subtasks; ``None`` before any watermark;
    #: :data:`headrace.sdk.timestamp.MAX_MICROS` once the stage has finished.
    output_watermark: Optional[int]
    #: 0.0..1.0: the share of recent time the stage's subtasks were blocked by full output
    #: channels (the maximum over subtasks).
    backpressure: float


class _RateTracker:
    """Records per second of one stage, over a sliding window of samples.

    The rate is measured from the newest sample back to the newest sample that is at least
    ``window`` seconds older (or the oldest one, early on), so it covers a few seconds of
    history and follows a change of pace within about ``window`` seconds.
    """

    __slots__ = ("samples", "rate")

    def __init__(self) -> None:
        self.samples: Deque[List[float]] = collections.deque()
        self.rate: Optional[float] = None

    def add(self, now: float, count: int, window: float) -> None:
        samples = self.samples
        if samples:
            last = samples[-1]
            if count < last[1]:
                # The counter went back (a restart from a checkpoint): start over.
                samples.clear()
                self.rate = None
            elif now <= last[0]:
                # No time has passed: the newest sample now carries the newer count.
                last[1] = count
                return
        samples.append([now, count])
        while len(samples) > 2 and samples[1][0] <= now - window:
            samples.popleft()
        first = samples[0]
        if len(samples) > 1 and now > first[0]:
            self.rate = (count - first[1]) / (now - first[0])


class _Console:
    """The rich console class, with a broken pipe raised as an error instead of exiting.

    rich's default answer to ``BrokenPipeError`` is to point stdout at ``/dev/null`` and raise
    ``SystemExit``; a progress display must not end the job, so the error is raised and the
    display turns itself off.
    """

    _cls: Optional[type] = None

    @classmethod
    def make(cls, **kwargs: Any) -> "Console":
        if cls._cls is None:
            from rich.console import Console

            class _QuietPipeConsole(Console):
                def on_broken_pipe(self) -> None:
                    raise  # re-raises: rich calls this in `except BrokenPipeError:`

            cls._cls = _QuietPipeConsole
        return cls._cls(**kwargs)


class _Frame:
    """A frame of the display as ready-made rich segments (cheaper to render than a Text)."""

    __slots__ = ("segments",)

    def __init__(self, segments: List[Any]) -> None:
        self.segments = segments

    def __rich_console__(self, console: Any, options: Any) -> Any:
        return self.segments


class _Styles:
    """The display's rich styles, parsed once."""

    _instance: Optional["_Styles"] = None

    def __init__(self) -> None:
        from rich.style import Style

        self.bold = Style(bold=True)
        self.dim = Style(dim=True)
        self.name = Style(color="cyan")
        self.some = Style(color="yellow")
        self.high = Style(color="red")

    @classmethod
    def get(cls) -> "_Styles":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def _compact(value: float, integer: bool = False) -> str:
    """``value`` in three significant figures with a k/M/G/T/P suffix: 12.3k, 1.23M.

    Below a thousand, an ``integer`` is shown whole; other figures always have three digits
    (2.50, 12.3k), so that a column keeps its width while the figure changes.
    """
    if value < 999.5 and integer:
        return str(int(value))
    suffix = ""
    for next_suffix in ("k", "M", "G", "T", "P"):
        if value < 999.5:
            break
        value /= 1000.0
        suffix = next_suffix
    if value < 9.995:
        return f"{value:.2f}{suffix}"
    return f"{value:.1f}{suffix}" if value < 99.95 else f"{value:.0f}{suffix}"


def _duration(seconds: float) -> str:
    """A short duration: 0.8s, 12.3s, 2m05s, 3h07m, 2d04h."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
    return f"{seconds // 86_400}d{seconds // 3600 % 24:02d}h"


def _elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _watermark(micros: Optional[int], wall_now_micros: int) -> str:
    """How a watermark reads: a lag behind the wall clock, a UTC time, ``-`` or ``done``."""
    if micros is None or micros <= MIN_MICROS:
        return "-"
    if micros >= MAX_MICROS:
        return "done"
    lag = wall_now_micros - micros
    if abs(lag) <= LAG_HORIZON_MICROS:
        return f"lag {_duration(lag / 1e6)}" if lag >= 0 else f"ahead {_duration(-lag / 1e6)}"
    try:
        when = _EPOCH + datetime.timedelta(microseconds=micros)
    except OverflowError:
        return f"{micros}us"
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}"


class ProgressDisplay:
    """Draws the progress of a running job's stages on a terminal, redrawn in place.

    Args:
        stream: Where to draw; ``sys.stderr`` (as it is when the display is made) by default.
        enabled: ``None`` (the default) draws only when ``stream`` is a terminal; ``True``
            draws anyway (with terminal control sequences, e.g. into a ``StringIO``);
            ``False`` (``--quiet``) never writes anything.
        clock: Seconds, monotonic; measures rates and the elapsed time (tests pass a fake).
    """

    #: Seconds of history the records/s figures are measured over.
    RATE_WINDOW_SECONDS = 3.0

    def __init__(self, stream: Optional[TextIO] = None, enabled: Optional[bool] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream: TextIO = sys.stderr if stream is None else stream
        self._clock = clock
        self._started_at = clock()
        self._tty = _isatty(self._stream)
        self._fileno: Optional[int] = None
        if self._tty:
            try:
                self._fileno = self._stream.fileno()
            except (AttributeError, OSError, ValueError):
                pass
        self._enabled = self._tty if enabled is None else bool(enabled)
        self._trackers: Dict[str, _RateTracker] = {}
        self._names: List[str] = []
        self._live: Optional["Live"] = None
        self._closed = False
        self._error: Optional[BaseException] = None

    @property
    def enabled(self) -> bool:
        """Whether the display draws; it turns off when closed or when drawing fails."""
        return self._enabled

    @property
    def error(self) -> Optional[BaseException]:
        """The error that turned the display off, if one did."""
        return self._error

    def update(self, stages: Sequence[StageProgress],
               wall_now_micros: Optional[int] = None) -> None:
        """Take the stages' latest figures and, if enabled, redraw. Never raises.

        Args:
            stages: One entry per stage, in the order to show them.
            wall_now_micros: The wall clock in microseconds since the epoch, for watermark
                lags; ``time.time_ns() // 1000`` by default.
        """
        try:
            now = self._clock()
            self._record(stages, now)
        except Exception as e:  # progress must never fail the job
            self._fail(e)
            return
        if not self._enabled:
            return
        try:
            if wall_now_micros is None:
                wall_now_micros = time.time_ns() // 1000
            live = self._live if self._live is not None else self._start_live()
            if self._fileno is not None:  # follow the terminal's size (a syscall, ~1 us)
                columns, lines = os.get_terminal_size(self._fileno)
                live.console.size = (columns or 80, lines or 25)  # 0 when unknown
            live.update(self._frame(stages, now, wall_now_micros), refresh=True)
        except Exception as e:  # a broken terminal must not fail the job
            self._fail(e)

    def rates(self) -> Dict[str, float]:
        """The latest smoothed records/s of each stage in the last update (0.0 until known)."""
        trackers = self._trackers
        return {name: trackers[name].rate or 0.0 for name in self._names}

    def close(self) -> None:
        """Stop drawing, leaving the last frame on screen, and restore the terminal.

        Idempotent, and never raises. Updates after ``close`` still keep :meth:`rates`
        current but draw nothing.
        """
        if self._closed:
            return
        self._closed = True
        self._enabled = False
        self._stop_live()

    # Internals.

    def _record(self, stages: Sequence[StageProgress], now: float) -> None:
        trackers = self._trackers
        window = self.RATE_WINDOW_SECONDS
        names = []
        for stage in stages:
            name = stage.name
            tracker = trackers.get(name)
            if tracker is None:
                tracker = trackers[name] = _RateTracker()
            tracker.add(now, stage.records_out, window)
            names.append(name)
        if len(trackers) > len(names):
            for name in set(trackers).difference(names):
                del trackers[name]
        self._names = names

    def _start_live(self) -> "Live":
        from rich.live import Live

        console = _Console.make(
            file=self._stream, force_terminal=True, force_jupyter=False, highlight=False,
            markup=False, emoji=False, soft_wrap=False,
            # Not a terminal (enabled=True on a file): a fixed size, whatever fds 0-2 are.
            width=None if self._fileno is not None else _FILE_WIDTH,
            height=None if self._fileno is not None else _FILE_HEIGHT)
        # On a real terminal, prints and warnings to stdout/stderr during the job go above the
        # display instead of into it (those streams are restored by Live.stop).
        live = Live(console=console, auto_refresh=False, transient=False,
                    redirect_stdout=self._tty and _isatty(sys.stdout),
                    redirect_stderr=self._tty and _isatty(sys.stderr))
        self._live = live  # so that _stop_live undoes a start that failed half-way
        live.start()
        return live

    def _stop_live(self) -> None:
        live, self._live = self._live, None
        if live is None:
            return
        try:
            live.stop()
        except Exception as e:  # restores sys.stdout/err even when it raises
            if self._error is None:
                self._error = e

    def _fail(self, error: Exception) -> None:
        """Turn the display off after ``error`` (logged once) and give the terminal back."""
        first = self._error is None
        if first:
            self._error = error
        self._enabled = False
        self._stop_live()
        if first:
            if isinstance(error, OSError):
                _LOG.debug("progress display turned off: %r", error)
            else:
                _LOG.warning("progress display turned off", exc_info=error)

    def _frame(self, stages: Sequence[StageProgress], now: float,
               wall_now_micros: int) -> "_Frame":
        from rich.cells import cell_len, set_cell_size
        from rich.segment import Segment

        styles = _Styles.get()
        rows = [("stage", "records", "rate", "watermark", "backpressure")]
        pressures = []
        trackers = self._trackers
        for stage in stages:
            rate = trackers[stage.name].rate
            pressure = stage.backpressure
            pressure = min(1.0, pressure) if pressure > 0 and not math.isnan(pressure) else 0.0
            pressures.append(pressure)
            rows.append((
                stage.name,
                _compact(max(0, stage.records_out), integer=True),
                "-" if rate is None else _compact(max(0.0, rate)) + "/s",
                _watermark(stage.output_watermark, wall_now_micros),
                f"{round(pressure * 100)}%",
            ))
        name_w = max(cell_len(row[0]) for row in rows)
        records_w = max(len(row[1]) for row in rows)
        rate_w = max(len(row[2]) for row in rows)
        mark_w = max(len(row[3]) for row in rows)
        # Names give way first when the terminal is narrow, down to 10 cells; then lines are
        # cropped to its width (the "backpressure" title first: the figures are 4 wide).
        fixed = 2 + records_w + 2 + rate_w + 2 + mark_w + 2 + len("backpressure")
        name_w = max(10, min(name_w, self._live_width() - 2 - fixed))

        elapsed = _elapsed(now - self._started_at)
        count = f"{len(stages)} stage{'' if len(stages) == 1 else 's'}"
        segments = [Segment(f"headrace  elapsed {elapsed}", styles.bold),
                    Segment(f"  {count}", styles.dim)]
        newline = Segment("\n")
        for i, (name, records, rate, mark, pressure) in enumerate(rows):
            if cell_len(name) > name_w:
                name = set_cell_size(name, name_w - 1) + "~"
            else:
                name = set_cell_size(name, name_w)
            middle = f"  {records:>{records_w}}  {rate:>{rate_w}}  {mark:<{mark_w}}  "
            if i == 0:
                line = [Segment(f"  {name}{middle}{pressure}", styles.dim)]
            else:
                level = pressures[i - 1]
                line = [Segment("  "), Segment(name, styles.name), Segment(middle),
                        Segment(f"{pressure:>4}", styles.high if level >= 0.75
                                else styles.some if level >= 0.25 else None)]
            segments.append(newline)
            segments.extend(line)
        return _Frame(segments)

    def _live_width(self) -> int:
        live = self._live
        return live.console.width if live is not None else _FILE_WIDTH
