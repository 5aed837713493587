"""The option groups headrace declares itself: ``--runner`` and ``--streaming``
(:class:`StandardOptions`), Beam's setup flags (:class:`SetupOptions`), and the execution
options of headrace's runners (:class:`HeadraceOptions`, also viewed as :class:`DirectOptions`),
and where and how often checkpoints are taken (:class:`CheckpointingOptions`).

They are declared whenever :mod:`headrace.sdk.options` is imported, which re-exports them.

>>> from headrace.sdk.options import PipelineOptions
>>> PipelineOptions(["--runner=direct", "--parallelism=3"]).view_as(HeadraceOptions).runner
'direct'
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Callable, ClassVar

from headrace.sdk.options import PipelineOptions
from headrace.sdk.options.flags import (
    OptionsError,
    non_negative_seconds,
    positive_int,
    positive_seconds,
)


class StandardOptions(PipelineOptions):
    """``--runner`` (a name for the runner registry; ``None`` means direct) and ``--streaming``.

    >>> StandardOptions(["--runner", "direct"]).runner
    'direct'
    """

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--runner", default=None,
                            help="The runner to execute the pipeline with; defaults to direct.")
        parser.add_argument("--streaming", default=False, action="store_true",
                            help="Run in streaming mode.")


class SetupOptions(PipelineOptions):
    """``--save_main_session``, accepted for Beam compatibility (headrace pickles with cloudpickle).

    >>> SetupOptions(["--save_main_session"]).save_main_session
    True
    """

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--save_main_session", default=False, action="store_true",
                            help="Accepted and ignored: functions are pickled by value.")


class HeadraceOptions(PipelineOptions):
    """Execution options of headrace's runners.

    ``--parallelism`` (default: the number of cores), ``--max_parallelism``
    (the number of key groups, default 128), ``--quiet``, ``--job_name``.

    >>> HeadraceOptions(["--parallelism=2"]).resolved_parallelism()
    2
    """

    _option_validators: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "parallelism": positive_int,
        "max_parallelism": positive_int,
    }

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--parallelism", type=positive_int, default=None,
                            help="Parallel instances of each stage; default: the number of cores.")
        parser.add_argument("--max_parallelism", type=positive_int,
                            default=128, help="Number of key groups: the upper bound of "
                                              "parallelism when rescaling keyed state.")
        parser.add_argument("--quiet", default=False, action="store_true",
                            help="Do not print progress.")
        parser.add_argument("--job_name", default=None, help="A name for the job.")

    def resolved_parallelism(self) -> int:
        """``--parallelism``, or the number of cores capped at ``--max_parallelism``.

        >>> HeadraceOptions(max_parallelism=1).resolved_parallelism()
        1
        """
        max_parallelism = self.max_parallelism
        if self.parallelism is None:
            return min(os.cpu_count() or 1, max_parallelism)
        if self.parallelism > max_parallelism:
            raise OptionsError(
                f"--parallelism ({self.parallelism}) cannot exceed --max_parallelism "
                f"({max_parallelism}): every parallel instance needs at least one key group")
        return self.parallelism


class DirectOptions(HeadraceOptions):
    """Beam's name for the direct runner's options view; the same options as HeadraceOptions.

    >>> DirectOptions(["--parallelism=1"]).parallelism
    1
    """


class CheckpointingOptions(PipelineOptions):
    """Checkpoints, as in Flink: where they are stored and how many are kept, and how often
    they are taken (by the multiprocess runner; the direct runner takes none).

    ``--checkpoint_dir`` is a local path or ``s3://bucket/prefix``; durations are in seconds.

    >>> view = CheckpointingOptions(["--checkpoint_dir=s3://b/jobs", "--checkpoint_interval=0.2"])
    >>> view.checkpoint_interval, view.checkpoints_retained
    (0.2, 3)
    """

    _option_validators: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "checkpoints_retained": positive_int,
        "checkpoint_interval": positive_seconds,
        "min_pause_between_checkpoints": non_negative_seconds,
        "checkpoint_timeout": positive_seconds,
    }

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--checkpoint_dir", default=None,
                            help="Where checkpoints are stored: a local directory or "
                                 "s3://bucket/prefix (endpoint and credentials from the usual "
                                 "AWS settings; needs the 's3' extra).")
        parser.add_argument("--checkpoints_retained", type=positive_int, default=3,
                            help="Complete checkpoints kept in --checkpoint_dir; older ones, and "
                                 "files no kept checkpoint references, are deleted.")
        parser.add_argument("--checkpoint_interval", type=positive_seconds, default=None,
                            help="Seconds between checkpoints; unset means no checkpoints.")
        parser.add_argument("--min_pause_between_checkpoints", type=non_negative_seconds,
                            default=0.0, help="Seconds from the end of one checkpoint to the "
                                              "start of the next.")
        parser.add_argument("--checkpoint_timeout", type=positive_seconds, default=600.0,
                            help="Seconds after which an incomplete checkpoint is abandoned.")
