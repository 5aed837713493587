"""Failure recovery, as in Flink: the restart strategy, and what a job is restored from.

``--restart_strategy`` is ``none``, ``fixed-delay`` or ``exponential-delay`` (Flink's
names; ``off``/``disable``, ``fixeddelay`` and ``exponentialdelay`` are accepted too).
Unset, it is ``fixed-delay`` with unlimited attempts when the job takes checkpoints
(``--checkpoint_interval``) and ``none`` otherwise, Flink's default.
``--from_checkpoint`` restores a stopped job from a ``chk-N`` directory, a savepoint or
a checkpoint root (its latest complete checkpoint); ``--allow_non_restored_state`` lets
state of operators the new job lacks be skipped instead of failing the restore.
``--savepoint_dir`` is where stop-with-savepoint writes.

>>> from headrace.sdk.options import PipelineOptions
>>> view = PipelineOptions(["--restart_strategy=FixedDelay", "--restart_attempts=3"]
...                        ).view_as(RecoveryOptions)
>>> view.restart_strategy, view.restart_attempts, view.restart_delay
('fixed-delay', 3, 1.0)
>>> try:
...     PipelineOptions(["--restart_strategy=sometimes"])
... except ValueError as e:
...     print(e)
argument --restart_strategy: must be 'none', 'fixed-delay' or 'exponential-delay', got 'sometimes'
"""
from __future__ import annotations

import argparse
from typing import Any, Callable, ClassVar

from headrace.sdk.options import PipelineOptions
from headrace.sdk.options.flags import non_negative_seconds, positive_int, positive_seconds

RESTART_STRATEGIES = ("none", "fixed-delay", "exponential-delay")
_ALIASES = {"off": "none", "disable": "none", "fixeddelay": "fixed-delay",
            "fixed_delay": "fixed-delay", "exponentialdelay": "exponential-delay",
            "exponential_delay": "exponential-delay"}


def restart_strategy_name(value: Any) -> str:
    """An argparse ``type=`` converter and assignment validator for ``--restart_strategy``.

    >>> restart_strategy_name("Off"), restart_strategy_name("exponential_delay")
    ('none', 'exponential-delay')
    """
    name = value.strip().lower() if isinstance(value, str) else value
    name = _ALIASES.get(name, name)
    if name not in RESTART_STRATEGIES:
        raise argparse.ArgumentTypeError(
            "must be 'none', 'fixed-delay' or 'exponential-delay', got " + repr(value))
    return name


def backoff_multiplier(value: Any) -> float:
    """A multiplier of at least 1 (``--restart_backoff_multiplier``).

    >>> backoff_multiplier("1.5")
    1.5
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if not number >= 1.0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 1, got {value!r}")
    return number


def jitter_factor(value: Any) -> float:
    """A fraction in [0, 1] (``--restart_jitter``).

    >>> jitter_factor(0.1)
    0.1
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, got {value!r}")
    return number


class RecoveryOptions(PipelineOptions):
    """How a failed job is restarted, and what a job starts from.

    >>> RecoveryOptions([]).restart_strategy is None
    True
    """

    _option_validators: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "restart_strategy": restart_strategy_name,
        "restart_attempts": positive_int,
        "restart_delay": non_negative_seconds,
        "restart_initial_backoff": non_negative_seconds,
        "restart_max_backoff": positive_seconds,
        "restart_backoff_multiplier": backoff_multiplier,
        "restart_reset_backoff_threshold": positive_seconds,
        "restart_jitter": jitter_factor,
    }

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--restart_strategy", type=restart_strategy_name, default=None,
                            help="What happens when a task fails or a worker dies: 'none' "
                                 "(the job fails), 'fixed-delay' or 'exponential-delay' "
                                 "(restart every task from the latest complete checkpoint). "
                                 "Default: fixed-delay with unlimited attempts when the job "
                                 "takes checkpoints, none otherwise.")
        parser.add_argument("--restart_attempts", type=positive_int, default=None,
                            help="Restarts allowed before the job fails (fixed-delay: in "
                                 "total, default 1 when the strategy is chosen explicitly; "
                                 "exponential-delay: since the backoff was last reset, "
                                 "default unlimited).")
        parser.add_argument("--restart_delay", type=non_negative_seconds, default=1.0,
                            help="fixed-delay: seconds between a failure and the restart.")
        parser.add_argument("--restart_initial_backoff", type=non_negative_seconds, default=1.0,
                            help="exponential-delay: the first delay (seconds).")
        parser.add_argument("--restart_max_backoff", type=positive_seconds, default=60.0,
                            help="exponential-delay: the largest delay (seconds).")
        parser.add_argument("--restart_backoff_multiplier", type=backoff_multiplier,
                            default=1.5, help="exponential-delay: growth of the delay per "
                                              "consecutive failure.")
        parser.add_argument("--restart_reset_backoff_threshold", type=positive_seconds,
                            default=3600.0, help="exponential-delay: a job that ran this long "
                                                 "(seconds) without failing starts over from "
                                                 "the initial backoff.")
        parser.add_argument("--restart_jitter", type=jitter_factor, default=0.1,
                            help="exponential-delay: random spread of each delay, as a "
                                 "fraction of it.")
        parser.add_argument("--from_checkpoint", default=None,
                            help="Restore the job from a checkpoint: a chk-N directory, a "
                                 "savepoint, or a --checkpoint_dir (its latest complete "
                                 "checkpoint); local path or s3://.")
        parser.add_argument("--savepoint_dir", default=None,
                            help="Where stop-with-savepoint writes (local path or s3://): "
                                 "SIGUSR1 to the driver (headrace stop PID) stops the job "
                                 "after copying its next complete checkpoint there. Needs "
                                 "--checkpoint_interval.")
        parser.add_argument("--allow_non_restored_state", default=False, action="store_true",
                            help="With --from_checkpoint: skip state of operators the job no "
                                 "longer has instead of failing.")
