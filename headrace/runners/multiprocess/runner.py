"""The multiprocess runner: the engine on a coordinator and N worker processes.

Each worker runs one subtask of every stage (slot sharing); records move
between workers in batches over pipes. ``--parallelism`` sets the number of
workers (default: the number of cores).

>>> import headrace as beam
>>> from headrace.testing.util import assert_that, equal_to
>>> with beam.Pipeline(argv=["--runner=multiprocess", "--parallelism=2", "--quiet"]) as p:
...     counts = (p | beam.Create(["a", "b", "a"]) | beam.Map(lambda w: (w, 1))
...               | beam.CombinePerKey(sum))
...     assert_that(counts, equal_to([("a", 2), ("b", 1)]))
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

from headrace.runners.engine.plan import PhysicalPlan
from headrace.runners.engine.recovery import JobRecovery
from headrace.runners.engine.restart import (
    is_recoverable,
    restart_strategy_from_options,
    run_with_restarts,
)
from headrace.runners.engine.snapshots import JobStart
from headrace.runners.engine.stop import JobStopped, stop_with_savepoint
from headrace.runners.multiprocess.checkpoint_coordinator import CheckpointSettings
from headrace.runners.multiprocess.coordinator import Coordinator
from headrace.runners.multiprocess.options import MultiprocessOptions
from headrace.runners.multiprocess.progress import ProgressDisplay
from headrace.runners.state.checkpoint_storage import storage_from_options
from headrace.sdk.metrics import merge_snapshots
from headrace.sdk.options import (
    CheckpointingOptions,
    HeadraceOptions,
    OptionsError,
    PipelineOptions,
    StandardOptions,
)
from headrace.sdk.runner import FinishedPipelineResult, PipelineRunner, PipelineState
from headrace.sdk.test_stream import TestStream


def checkpoint_settings(options: Any, plan: PhysicalPlan
                        ) -> Tuple[Optional[CheckpointSettings], JobStart]:
    """The checkpoint settings of ``--checkpoint_interval`` (None: no checkpoints) and how
    the job starts (its checkpoint storage)."""
    view = options.view_as(CheckpointingOptions)
    if not view.checkpoint_interval:
        return None, JobStart()
    if not view.checkpoint_dir:
        raise OptionsError("--checkpoint_interval needs --checkpoint_dir: where to store the "
                           "checkpoints (a local directory or s3://bucket/prefix)")
    if plan.has_test_stream():
        raise OptionsError("--checkpoint_interval: a pipeline with a TestStream cannot take "
                           "checkpoints (its script is replayed from the start, it has no "
                           "positions to resume from); drop --checkpoint_interval")
    storage = storage_from_options(options)
    settings = CheckpointSettings(view.checkpoint_interval, view.min_pause_between_checkpoints,
                                  view.checkpoint_timeout)
    return settings, JobStart(storage=storage, first_checkpoint_id=storage.next_checkpoint_id())


class MultiprocessRunner(PipelineRunner):
    """Runs a pipeline on worker processes of this machine (``--runner=multiprocess``).

    Its result's metrics are the user's, merged over workers, plus every step's
    ``records_out`` counter and ``output_watermark`` gauge in the ``headrace`` namespace.
    """

    def run_pipeline(self, pipeline: Any, options: Any) -> FinishedPipelineResult:
        options = options if options is not None else PipelineOptions([])
        headrace_options = options.view_as(HeadraceOptions)
        parallelism = headrace_options.resolved_parallelism()
        if any(isinstance(node.transform, TestStream) for node in pipeline.primitives()):
            # A TestStream is one script with one manual clock, and the job ends when the
            # script does: it runs in one worker.
            parallelism = 1
        plan = PhysicalPlan.build(pipeline, parallelism, headrace_options.max_parallelism)
        streaming = (bool(options.view_as(StandardOptions).streaming) or plan.is_unbounded()
                     or plan.has_test_stream())
        exchange = options.view_as(MultiprocessOptions).exchange_settings()
        recovery = JobRecovery(plan, options)
        stop_request = stop_with_savepoint(options)

        def attempt(number: int) -> List[Any]:
            settings, start = checkpoint_settings(options, plan)
            restore = recovery.prepare(number)
            if restore is not None:
                start.restored, start.previous = restore
            display = ProgressDisplay(enabled=False if headrace_options.quiet else None)
            coordinator = Coordinator(plan, streaming, exchange, display, options, start,
                                      settings, headrace_options.job_name or "")
            coordinator.stop_request = stop_request
            return coordinator.run()

        try:
            snapshots = run_with_restarts(attempt, restart_strategy_from_options(options),
                                          is_recoverable=is_recoverable)
        except JobStopped:
            return FinishedPipelineResult(PipelineState.STOPPED, merge_snapshots([]))
        finally:
            recovery.cleanup()
            if stop_request is not None:
                stop_request.uninstall()
        return FinishedPipelineResult(PipelineState.DONE, merge_snapshots(snapshots))
