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
