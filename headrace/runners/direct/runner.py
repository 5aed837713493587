"""The direct runner: one process, one thread, the reference semantics."""
from __future__ import annotations

import sys
from typing import Any

from headrace.runners.direct.executor import DirectExecutor
from headrace.sdk.metrics import merge_snapshots
from headrace.sdk.runner import FinishedPipelineResult, PipelineRunner, PipelineState

#: The direct runner's result: finished when ``run`` returns (Beam's name kept).
DirectPipelineResult = FinishedPipelineResult


class DirectRunner(PipelineRunner):
    """Runs a pipeline in the calling thread; every other runner is tested against it.

    >>> import headrace as beam
    >>> with beam.Pipeline(runner="direct") as p:
    ...     _ = p | beam.Create([1, 2]) | beam.Map(print)
    1
    2
    """

    def run_pipeline(self, pipeline: Any, options: Any) -> DirectPipelineResult:
        _refuse_recovery_options(options)
        executor = DirectExecutor(pipeline, options)
        limit = sys.getrecursionlimit()
        # Elements are pushed depth-first through the graph: deep pipelines need the room.
        sys.setrecursionlimit(max(limit, 20 * len(executor.nodes) + 1000))
        try:
            operators = executor.run()
        finally:
            sys.setrecursionlimit(limit)
        snapshots = [operator.metrics.snapshot() for operator in operators]
        return DirectPipelineResult(PipelineState.DONE, merge_snapshots(snapshots))


def _refuse_recovery_options(options: Any) -> None:
    """The direct runner takes no checkpoints, so it cannot restore or stop with one."""
    if options is None:
        return
    from headrace.sdk.options import OptionsError, RecoveryOptions

    view = options.view_as(RecoveryOptions)
    for flag, value in (("--from_checkpoint", view.from_checkpoint),
                        ("--savepoint_dir", view.savepoint_dir)):
        if value:
            raise OptionsError(f"{flag}: the direct runner takes no checkpoints and restores "
                               "none; use --runner=multiprocess")
    from headrace.sdk.options import CheckpointingOptions

    if options.view_as(CheckpointingOptions).checkpoint_interval:
        raise OptionsError("--checkpoint_interval: the direct runner takes no checkpoints; "
                           "use --runner=multiprocess")
