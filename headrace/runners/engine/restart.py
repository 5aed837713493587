"""Restart strategies, Flink's: whether a failed job is restarted, and after how long.

A strategy is asked once per failure; it answers with the delay before the
restart, or ``None`` when the job must fail. ``fixed-delay`` allows a number of
restarts with the same pause between them; ``exponential-delay`` multiplies the
pause by ``backoff_multiplier`` per consecutive failure up to ``max_backoff``
(with random ``jitter``), and starts over from ``initial_backoff`` once the job
ran ``reset_backoff_threshold`` seconds without failing.

>>> strategy = FixedDelayRestartStrategy(attempts=2, delay=0.5)
>>> [strategy.next_delay(now) for now in (10.0, 20.0, 30.0)]
[0.5, 0.5, None]
>>> backoff = ExponentialDelayRestartStrategy(initial_backoff=1, max_backoff=5,
...                                           backoff_multiplier=2, jitter=0)
>>> [backoff.next_delay(now) for now in (0.0, 1.0, 2.0, 3.0, 4.0)]
[1.0, 2.0, 4.0, 5.0, 5.0]
>>> backoff.next_delay(10000.0)  # a long healthy run resets the backoff
1.0
"""
from __future__ import annotations

import abc
import logging
import random
import time
from typing import Any, Callable, Optional, TypeVar

from headrace.sdk.options import (
    CheckpointingOptions,
    OptionsError,
    PipelineOptions,
    RecoveryOptions,
)

LOG = logging.getLogger("headrace.restart")
T = TypeVar("T")
#: ``fixed-delay`` chosen by default (checkpointing on): as Flink, attempts are unlimited.
UNLIMITED = None


class RestartStrategy(abc.ABC):
    """Decides, failure by failure, whether and when the job restarts."""

    name = ""

    def __init__(self) -> None:
        self.restarts = 0

    @abc.abstractmethod
    def next_delay(self, now: float) -> Optional[float]:
        """A failure happened at ``now`` (monotonic seconds): the pause before the restart,
        or None when no restart is left."""

    def describe(self) -> str:
        """The strategy and its settings, for log lines and errors."""
        return self.name


class NoRestartStrategy(RestartStrategy):
    """The first failure fails the job.

    >>> NoRestartStrategy().next_delay(0.0) is None
    True
    """

    name = "none"

    def next_delay(self, now: float) -> Optional[float]:
        return None


class FixedDelayRestartStrategy(RestartStrategy):
    """Up to ``attempts`` restarts (None: unlimited), ``delay`` seconds after each failure."""

    name = "fixed-delay"

    def __init__(self, attempts: Optional[int] = 1, delay: float = 1.0) -> None:
        super().__init__()
        self.attempts = attempts
        self.delay = float(delay)

    def next_delay(self, now: float) -> Optional[float]:
        if self.attempts is not None and self.restarts >= self.attempts:
            return None
        self.restarts += 1
        return self.delay

    def describe(self) -> str:
        attempts = "unlimited" if self.attempts is None else self.attempts
        return f"fixed-delay (attempts {attempts}, delay {self.delay:g} s)"


class ExponentialDelayRestartStrategy(RestartStrategy):
    """Delays growing from ``initial_backoff`` by ``backoff_multiplier`` up to
    ``max_backoff``, each spread by up to ``jitter`` of itself either way; reset after
    ``reset_backoff_threshold`` seconds without a failure. ``attempts`` (None: unlimited)
    bounds the restarts since the last reset."""

    name = "exponential-delay"

    def __init__(self, initial_backoff: float = 1.0, max_backoff: float = 60.0,
                 backoff_multiplier: float = 1.5, reset_backoff_threshold: float = 3600.0,
                 jitter: float = 0.1, attempts: Optional[int] = None,
                 rng: Optional[random.Random] = None) -> None:
        super().__init__()
        self.initial_backoff = float(initial_backoff)
        self.max_backoff = float(max_backoff)
        self.backoff_multiplier = float(backoff_multiplier)
        self.reset_backoff_threshold = float(reset_backoff_threshold)
        self.jitter = float(jitter)
        self.attempts = attempts
        self.rng = rng or random.Random()
        self._since_reset = 0
        self._backoff = 0.0
        self._last_failure: Optional[float] = None

    def next_delay(self, now: float) -> Optional[float]:
        last, self._last_failure = self._last_failure, now
        if last is not None and now - last - self._backoff >= self.reset_backoff_threshold:
            self._since_reset, self._backoff = 0, 0.0
        if self.attempts is not None and self._since_reset >= self.attempts:
            return None
        self._since_reset += 1
        self.restarts += 1
        if self._backoff == 0.0:
            self._backoff = min(self.initial_backoff, self.max_backoff)
        else:
            self._backoff = min(self._backoff * self.backoff_multiplier, self.max_backoff)
        spread = self._backoff * self.jitter
        return max(0.0, self._backoff + (self.rng.uniform(-spread, spread) if spread else 0.0))

    def describe(self) -> str:
        attempts = "unlimited" if self.attempts is None else self.attempts
        return (f"exponential-delay (initial {self.initial_backoff:g} s, max "
                f"{self.max_backoff:g} s, x{self.backoff_multiplier:g}, jitter "
                f"{self.jitter:g}, attempts {attempts})")


def restart_strategy_from_options(options: Optional[PipelineOptions]) -> RestartStrategy:
    """The strategy ``--restart_strategy`` and its settings name; unset, Flink's default:
    fixed-delay with unlimited attempts when ``--checkpoint_interval`` is set, else none.

    >>> restart_strategy_from_options(PipelineOptions([])).describe()
    'none'
    >>> restart_strategy_from_options(PipelineOptions(["--checkpoint_interval=1"])).describe()
    'fixed-delay (attempts unlimited, delay 1 s)'
    >>> restart_strategy_from_options(PipelineOptions(
    ...     ["--restart_strategy=exponential-delay", "--restart_jitter=0"])).describe()
    'exponential-delay (initial 1 s, max 60 s, x1.5, jitter 0, attempts unlimited)'
    """
    if options is None:
        return NoRestartStrategy()
    view = options.view_as(RecoveryOptions)
    name = view.restart_strategy
    if name is None:
        if not options.view_as(CheckpointingOptions).checkpoint_interval:
            return NoRestartStrategy()
        return FixedDelayRestartStrategy(view.restart_attempts or UNLIMITED, view.restart_delay)
    if name == "fixed-delay":
        attempts = view.restart_attempts if view.restart_attempts is not None else 1
        return FixedDelayRestartStrategy(attempts, view.restart_delay)
    if name == "exponential-delay":
        return ExponentialDelayRestartStrategy(
            view.restart_initial_backoff, view.restart_max_backoff,
            view.restart_backoff_multiplier, view.restart_reset_backoff_threshold,
            view.restart_jitter, view.restart_attempts)
    return NoRestartStrategy()


def is_recoverable(exc: BaseException) -> bool:
    """Whether a restart can cure ``exc``: a task's or a worker's failure can, a bad option,
    unusable checkpoint storage or a checkpoint that does not fit the job cannot (and a
    stop on request is no failure).

    >>> is_recoverable(RuntimeError("worker 1 died")), is_recoverable(OptionsError("--x"))
    (True, False)
    """
    from headrace.runners.engine.recovery import RestoreError
    from headrace.runners.engine.stop import JobStopped
    from headrace.runners.state.checkpoint_storage import CheckpointStorageConfigError

    return not isinstance(exc, (OptionsError, RestoreError, CheckpointStorageConfigError,
                                JobStopped))


def run_with_restarts(attempt: Callable[[int], T], strategy: RestartStrategy, *,
                      is_recoverable: Callable[[BaseException], bool] = lambda exc: True,
                      clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep,
                      log: Any = LOG) -> T:
    """Call ``attempt(n)`` (n = 0, 1, ...) until it returns; after a recoverable failure,
    ask ``strategy`` and wait its delay, logging each restart with its cause. The last
    failure propagates as it was raised (a note on it tells the restarts made).

    >>> calls = []
    >>> def flaky(n):
    ...     calls.append(n)
    ...     if n < 2:
    ...         raise RuntimeError(f"worker died ({n})")
    ...     return "done"
    >>> run_with_restarts(flaky, FixedDelayRestartStrategy(attempts=3, delay=0),
    ...                   log=logging.getLogger("doctest"))
    'done'
    >>> calls
    [0, 1, 2]
    """
    number = 0
    while True:
        try:
            return attempt(number)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) or not is_recoverable(exc):
                raise
            delay = strategy.next_delay(clock())
            cause = _first_line(exc)
            if delay is None:
                if strategy.restarts:
                    log.error("job failed after %d restart(s), restart strategy %s exhausted: %s",
                              strategy.restarts, strategy.describe(), cause)
                    if hasattr(exc, "add_note"):
                        exc.add_note(f"(the job was restarted {strategy.restarts} time(s) "
                                     f"before; restart strategy {strategy.describe()})")
                raise
            number += 1
            log.warning("restarting the job (restart %d, strategy %s) in %.3g s after: %s",
                        number, strategy.describe(), delay, cause)
            if delay > 0:
                sleep(delay)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
