"""The multiprocess runner's live progress display (headrace.runners.multiprocess.progress)."""
import errno
import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest

from headrace.runners.multiprocess.progress import ProgressDisplay, StageProgress
from headrace.sdk.timestamp import MAX_MICROS

WALL = 1_700_000_000_000_000  # a wall clock, microseconds since the epoch
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def runner():
    """No pipelines run here: once is enough (overrides tests/conftest.py's per-runner one)."""
    return "direct"


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch):
    # rich draws in place only on a terminal that is not "dumb"; make that so everywhere.
    monkeypatch.setenv("TERM", "xterm-256color")


class FakeClock:
    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now


class FakeTTY(io.StringIO):
    """A string stream that says it is a terminal, and counts its writes."""

    def __init__(self):
        super().__init__()
        self.writes = 0

    def isatty(self):
        return True

    def write(self, text):
        self.writes += 1
        return super().write(text)


class BrokenTTY(FakeTTY):
    """A terminal whose writes fail with ``error`` once ``broken`` is set."""

    def __init__(self, error, broken=True):
        super().__init__()
        self.error = error
        self.broken = broken
        self.attempts = 0

    def write(self, text):
        self.attempts += 1
        if self.broken:
            raise self.error
        return super().write(text)


def stage(name="Read -> Map", records=0, watermark=None, backpressure=0.0):
    return StageProgress(name, records, watermark, backpressure)


def plain(text):
    return ANSI.sub("", text)


# Silence.


def test_silent_when_the_stream_is_not_a_terminal():
    out = io.StringIO()
    clock = FakeClock()
    display = ProgressDisplay(out, clock=clock)
    assert not display.enabled
    display.update([stage(records=0)], WALL)
    clock.now = 1.0
    display.update([stage(records=100)], WALL)
    display.close()
    assert out.getvalue() == ""
    # The rates are kept all the same, for the runner's metrics.
    assert display.rates() == {"Read -> Map": 100.0}


def test_silent_when_disabled_even_on_a_terminal():
    out = FakeTTY()
    display = ProgressDisplay(out, enabled=False, clock=FakeClock())
    assert not display.enabled
    for _ in range(3):
        display.update([stage(records=5, watermark=WALL, backpressure=0.5)], WALL)
    display.close()
    display.close()
    assert out.writes == 0 and out.getvalue() == ""


def test_defaults_to_stderr(monkeypatch):
    out = FakeTTY()
    monkeypatch.setattr(sys, "stderr", out)
    display = ProgressDisplay(clock=FakeClock())
    assert display.enabled
    display.update([stage()], WALL)
    display.close()
    assert "Read -> Map" in out.getvalue()


def test_disabled_display_does_not_import_rich():
    code = (
        "import sys\n"
        "from headrace.runners.multiprocess.progress import ProgressDisplay, StageProgress\n"
        "d = ProgressDisplay(enabled=False)\n"
        "d.update([StageProgress('s', 1, None, 0.0)])\n"
        "d.close()\n"
        "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')))\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True, env=env)
    assert result.stdout.strip() == "[]"
    assert result.stderr == ""


# Drawing.


def test_draws_on_a_terminal_by_default():
    out = FakeTTY()
    display = ProgressDisplay(out, clock=FakeClock())
    assert display.enabled
    display.update([stage("Read -> Map -> Filter", records=12)], WALL)
    display.close()
    assert "Read -> Map -> Filter" in plain(out.getvalue())


def test_draws_names_rates_watermarks_and_backpressure():
    out = io.StringIO()
    clock = FakeClock(100.0)
    display = ProgressDisplay(out, enabled=True, clock=clock)
    names = ["Read -> Map", "GroupByKey -> Sum", "Window -> Count", "Write", "Batch"]
    display.update([stage(name) for name in names], WALL)
    clock.now = 102.0
    display.update([
        stage("Read -> Map", 5000, WALL - 1_500_000, 0.25),   # streaming: a lag
        stage("GroupByKey -> Sum", 300, None, 0.0),           # no watermark yet
        stage("Window -> Count", 7, MAX_MICROS, 1.0),          # finished
        stage("Write", 7, WALL + 2_000_000, 0.0),              # ahead of the wall clock
        stage("Batch", 2_500_000, 1_600_000_000_123_000, 0.0),  # old data: a time
    ], wall_now_micros=WALL)
    display.close()
    text = plain(out.getvalue())
    last = text[text.rindex("headrace"):]
    assert "elapsed 0:00:02" in last and "5 stages" in last
    lines = {line.split()[0]: line for line in last.splitlines()[2:] if line.strip()}
    assert re.search(r"Read -> Map\s+5\.00k\s+2\.50k/s\s+lag 1\.5s\s+25%", lines["Read"])
    assert re.search(r"GroupByKey -> Sum\s+300\s+150/s\s+-\s+0%", lines["GroupByKey"])
    assert re.search(r"\s7\s+3\.50/s\s+done\s+100%", lines["Window"])
    assert "ahead 2.0s" in lines["Write"]
    assert re.search(r"2\.50M\s+1\.25M/s\s+2020-09-13 12:26:40\.123\s", lines["Batch"])
    assert "stage" in last and "records" in last and "watermark" in last


def test_first_frame_has_no_rates_yet():
    out = io.StringIO()
    display = ProgressDisplay(out, enabled=True, clock=FakeClock())
    display.update([stage(records=42)], WALL)
    display.close()
    row = plain(out.getvalue()).splitlines()[2]
    assert re.search(r"Read -> Map\s+42\s+-\s", row)
    assert display.rates() == {"Read -> Map": 0.0}


def test_redraws_in_place_and_restores_the_cursor():
    out = io.StringIO()
    clock = FakeClock()
    display = ProgressDisplay(out, enabled=True, clock=clock)
    display.update([stage(records=1), stage("Write", 1)], WALL)
    first = out.getvalue()
    assert "\x1b[?25l" in first  # cursor hidden while drawing
    clock.now = 0.5
    display.update([stage(records=2), stage("Write", 2)], WALL)
    second = out.getvalue()[len(first):]
    assert re.search(r"\x1b\[\d*A", second)  # back up over the previous frame
    assert "Write" in second
    display.close()
    assert out.getvalue().endswith("\x1b[?25h")  # cursor shown again; last frame kept


def test_odd_figures_do_not_break_the_display():
    out = io.StringIO()
    clock = FakeClock()
    display = ProgressDisplay(out, enabled=True, clock=clock)
    display.update([stage("", -5, -(2 ** 63), float("nan")),
                    stage("x" * 500, 10 ** 20, 2 ** 62, 7.0),
                    stage("\u65e5\u672c\u8a9e stage", 3, 0, -1.0)], WALL)
    clock.now = 1.0
    display.update([stage("", -5, None, 0.5)], WALL)
    assert display.enabled and display.error is None
    display.close()
    text = plain(out.getvalue())
    assert "x" * 20 + "~" in text  # long names are shortened
    assert "100%" in text and "\u65e5\u672c\u8a9e stage" in text


def test_update_never_raises_even_on_bad_input():
    display = ProgressDisplay(io.StringIO(), enabled=True, clock=FakeClock())
    display.update([StageProgress("s", None, "soon", "high")], WALL)  # type: ignore[arg-type]
    assert display.error is not None and not display.enabled
    display.close()


# Rates.


def test_rates_from_successive_updates():
    clock = FakeClock()
    display = ProgressDisplay(io.StringIO(), enabled=False, clock=clock)
    window = ProgressDisplay.RATE_WINDOW_SECONDS
    assert window == 3.0
    expected = [
        (0.0, 0, 0.0),          # one sample: no rate yet
        (1.0, 1000, 1000.0),
        (2.0, 3000, 1500.0),    # (3000 - 0) / 2
        (3.0, 6000, 2000.0),
        (4.0, 10000, 3000.0),   # the sample at 0.0 has left the window: (10000 - 1000) / 3
        (4.5, 10000, 2571.4),   # (10000 - 1000) / 3.5: the base stays >= 3 s old
        (5.0, 10000, 2333.3),   # (10000 - 3000) / 3
    ]
    for now, records, rate in expected:
        clock.now = now
        display.update([stage("a", records), stage("b", 2 * records)], WALL)
        rates = display.rates()
        assert list(rates) == ["a", "b"]
        assert rates["a"] == pytest.approx(rate, abs=0.1), now
        assert rates["b"] == pytest.approx(2 * rate, abs=0.2), now


def test_rates_follow_a_change_of_pace_within_the_window():
    clock = FakeClock()
    display = ProgressDisplay(io.StringIO(), enabled=False, clock=clock)
    records = 0
    for tick in range(40):  # 4 updates a second at 1000 records/s, then at none
        clock.now = tick * 0.25
        records += 250 if tick < 20 else 0
        display.update([stage(records=records)], WALL)
        if tick == 19:
            assert display.rates()["Read -> Map"] == pytest.approx(1000.0)
    assert display.rates()["Read -> Map"] == 0.0


def test_rates_without_time_passing_or_with_a_counter_reset():
    clock = FakeClock(10.0)
    display = ProgressDisplay(io.StringIO(), enabled=False, clock=clock)
    display.update([stage(records=100)], WALL)
    display.update([stage(records=200)], WALL)  # same instant: no division by zero
    assert display.rates() == {"Read -> Map": 0.0}
    clock.now = 11.0
    display.update([stage(records=300)], WALL)
    assert display.rates() == {"Read -> Map": 100.0}  # from the latest count at 10.0
    clock.now = 12.0
    display.update([stage(records=50)], WALL)  # restarted from a checkpoint
    assert display.rates() == {"Read -> Map": 0.0}
    clock.now = 13.0
    display.update([stage(records=250)], WALL)
    assert display.rates() == {"Read -> Map": 200.0}


def test_rates_forget_stages_that_are_gone():
    clock = FakeClock()
    display = ProgressDisplay(io.StringIO(), enabled=False, clock=clock)
    assert display.rates() == {}
    display.update([stage("a", 0), stage("b", 0)], WALL)
    clock.now = 1.0
    display.update([stage("b", 10)], WALL)
    assert display.rates() == {"b": 10.0}
    clock.now = 2.0
    display.update([stage("a", 5), stage("b", 20)], WALL)
    assert display.rates() == {"a": 0.0, "b": 10.0}  # "a" starts over


# close.


def test_close_is_idempotent():
    out = FakeTTY()
    display = ProgressDisplay(out, clock=FakeClock())
    display.update([stage(records=1)], WALL)
    display.close()
    written, writes = out.getvalue(), out.writes
    display.close()
    display.update([stage(records=2)], WALL)  # after close: nothing more is drawn
    display.close()
    assert out.getvalue() == written and out.writes == writes
    assert not display.enabled


def test_close_before_any_update_writes_nothing():
    out = FakeTTY()
    display = ProgressDisplay(out, clock=FakeClock())
    display.close()
    display.close()
    assert out.writes == 0


# A broken terminal.


@pytest.mark.parametrize("error", [OSError(errno.EIO, "I/O error"),
                                   BrokenPipeError(errno.EPIPE, "Broken pipe")],
                         ids=["EIO", "EPIPE"])
def test_a_failing_write_turns_the_display_off(error):
    out = BrokenTTY(error)
    display = ProgressDisplay(out, clock=FakeClock())
    assert display.enabled
    display.update([stage(records=1)], WALL)  # must not raise (nor exit, for EPIPE)
    assert not display.enabled
    assert display.error is error
    attempts = out.attempts
    display.update([stage(records=2)], WALL)
    display.close()
    display.close()
    assert out.attempts == attempts  # no more writes once turned off


def test_a_terminal_that_breaks_mid_job():
    out = BrokenTTY(OSError(errno.ENXIO, "No such device"), broken=False)
    clock = FakeClock()
    display = ProgressDisplay(out, clock=clock)
    display.update([stage(records=1)], WALL)
    assert display.enabled and "Read -> Map" in out.getvalue()
    out.broken = True
    clock.now = 1.0
    display.update([stage(records=11)], WALL)
    assert not display.enabled and isinstance(display.error, OSError)
    clock.now = 2.0
    display.update([stage(records=21)], WALL)
    assert display.rates() == {"Read -> Map": 10.0}  # the rates live on
    display.close()


def test_a_failing_flush_turns_the_display_off():
    class FlushFails(FakeTTY):
        def flush(self):
            raise OSError(errno.EIO, "I/O error")

    display = ProgressDisplay(FlushFails(), clock=FakeClock())
    display.update([stage()], WALL)
    assert not display.enabled
    display.close()


# A real terminal (a pseudo-terminal).


class Pty:
    """A pseudo-terminal of the given size, whose output is collected by a thread."""

    def __init__(self, columns=120, lines=40):
        try:
            self.master, slave = pty.openpty()
        except OSError as e:
            pytest.skip(f"no pseudo-terminals here: {e}")
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        self.stream = os.fdopen(slave, "w", encoding="utf-8")
        self.chunks = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.chunks.append(data)

    def output(self):
        try:
            self.stream.close()
        except OSError:
            pass
        self.reader.join(5)
        os.close(self.master)
        return b"".join(self.chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def test_on_a_real_terminal_prints_go_above_the_display(monkeypatch):
    terminal = Pty()
    monkeypatch.setattr(sys, "stderr", terminal.stream)
    clock = FakeClock()
    display = ProgressDisplay(clock=clock)
    assert display.enabled
    display.update([stage(records=1)], WALL)
    assert sys.stderr is not terminal.stream  # redirected through the display
    print("a warning from the coordinator", file=sys.stderr)
    clock.now = 1.0
    display.update([stage(records=2)], WALL)
    display.close()
    assert sys.stderr is terminal.stream  # given back
    text = plain(terminal.output())
    assert "a warning from the coordinator" in text
    assert text.rstrip().endswith("0%")  # the last frame stays below it


def test_on_a_real_terminal_lines_fit_its_width():
    terminal = Pty(columns=50)
    display = ProgressDisplay(terminal.stream, clock=FakeClock())
    display.update([stage("Read -> " * 20, 123456789, WALL - 10**6, 0.5)], WALL)
    display.close()
    lines = re.split(r"[\r\n]", plain(terminal.output()))
    assert max(len(line) for line in lines) <= 50
    row = next(line for line in lines if "Read" in line)
    assert re.search(r"  Read -> R~\s+123M\s+-\s+lag 1\.0s\s+50%$", row)


def test_a_real_terminal_that_fails_gives_stderr_back(monkeypatch):
    terminal = Pty()
    monkeypatch.setattr(sys, "stderr", terminal.stream)
    display = ProgressDisplay(clock=FakeClock())
    display.update([stage()], WALL)
    assert sys.stderr is not terminal.stream
    # The terminal goes away under the display: its fd now refuses writes (EBADF).
    read_only = os.open(os.devnull, os.O_RDONLY)
    os.dup2(read_only, terminal.stream.fileno())
    os.close(read_only)
    display.update([stage()], WALL)
    assert not display.enabled and isinstance(display.error, OSError)
    assert sys.stderr is terminal.stream
    display.close()
    terminal.output()


# Cost.


def test_an_update_of_ten_stages_is_cheap():
    clock = FakeClock()
    display = ProgressDisplay(io.StringIO(), enabled=True, clock=clock)
    stages = [stage(f"Read -> Map -> Filter {i}", 0, WALL, 0.1 * i) for i in range(10)]
    display.update(stages, WALL)
    n = 50
    start = time.perf_counter()
    for tick in range(n):
        clock.now = tick * 0.25
        display.update(stages, WALL)
    per_update = (time.perf_counter() - start) / n
    display.close()
    # About 0.5 ms here; the bound is loose so that a busy machine does not fail it.
    assert per_update < 0.02
