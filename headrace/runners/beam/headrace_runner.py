"""``HeadraceRunner``: an Apache Beam runner that runs Beam pipelines on headrace.

    python my_beam_pipeline.py --runner=headrace.runners.beam.HeadraceRunner \\
        --headrace_runner=direct

The Beam pipeline is translated into a headrace pipeline
(:mod:`headrace.runners.beam.from_beam`) and run by the headrace runner
``--headrace_runner`` names. Beam's user metrics recorded by Beam code come
back through Beam's ``PipelineResult.metrics()``: they are recorded into headrace's
metric containers (:mod:`headrace.runners.beam.from_beam_metrics`), so they reach the
driver from every runner's workers.
"""
from __future__ import annotations

from typing import Any, Optional

from apache_beam.options.pipeline_options import DirectOptions as BeamDirectOptions
from apache_beam.options.pipeline_options import PipelineOptions as BeamPipelineOptions
from apache_beam.options.pipeline_options import StandardOptions as BeamStandardOptions
from apache_beam.runners.direct.direct_metrics import DirectMetrics
from apache_beam.runners.runner import PipelineResult as BeamPipelineResult
from apache_beam.runners.runner import PipelineRunner as BeamPipelineRunner
from apache_beam.runners.runner import PipelineState as BeamPipelineState
from apache_beam.runners.worker import statesampler

from headrace.runners.beam.from_beam import translate_pipeline
from headrace.runners.beam.from_beam_coders import register_beam_key_coders
from headrace.runners.beam.from_beam_metrics import beam_metric_results, reset_other_metrics
from headrace.sdk.options import PipelineOptions


class HeadraceOptions(BeamPipelineOptions):
    """Beam pipeline options read by ``HeadraceRunner``."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--headrace_runner", default="direct",
                            help="The headrace runner that executes the Beam pipeline "
                                 "(see `headrace runners`).")


class HeadracePipelineResult(BeamPipelineResult):
    """A Beam ``PipelineResult`` for a finished headrace run."""

    def __init__(self, state: str, metrics: DirectMetrics, headrace_result: Any) -> None:
        super().__init__(state)
        self._metrics = metrics
        self.headrace_result = headrace_result

    def wait_until_finish(self, duration: Optional[int] = None) -> str:
        return self._state

    def metrics(self) -> DirectMetrics:
        return self._metrics


class HeadraceRunner(BeamPipelineRunner):
    """A Beam ``PipelineRunner`` executing Beam pipelines on a headrace runner."""

    def is_fnapi_compatible(self) -> bool:
        # Headrace walks Beam's object graph; False also keeps Beam's runner-API round
        # trip by default, which checks that the pipeline survives serialization.
        return False

    def run_pipeline(self, pipeline: Any, options: Any) -> HeadracePipelineResult:
        options = options if options is not None else pipeline.options
        pipeline_options = self.headrace_options(options)
        register_beam_key_coders()
        headrace_pipeline = translate_pipeline(pipeline, pipeline_options)
        reset_other_metrics()
        previous = statesampler.get_current_tracker()
        try:
            result = headrace_pipeline.run()
            result.wait_until_finish()
        finally:
            statesampler.set_current_tracker(previous)
        state = getattr(BeamPipelineState, str(result.state), BeamPipelineState.DONE)
        return HeadracePipelineResult(
            state, beam_metric_results(result.metrics()), result)

    @staticmethod
    def headrace_options(options: Any) -> PipelineOptions:
        """Headrace's options for a Beam run: the runner, its parallelism (Beam's
        ``--direct_num_workers``), streaming, and trusting Beam's own construction-time
        trigger check (so headrace does not repeat it).

        >>> from apache_beam.options.pipeline_options import PipelineOptions as Beam
        >>> HeadraceRunner.headrace_options(Beam(["--direct_num_workers=3"])).get_all_options(
        ...     )["parallelism"]
        3
        """
        runner = options.view_as(HeadraceOptions).headrace_runner or "direct"
        if runner.lower().endswith("headracerunner"):
            raise ValueError("--headrace_runner must name a headrace runner such as 'direct'")
        flags = [f"--runner={runner}", "--allow_unsafe_triggers"]
        # Beam's local runners run --direct_num_workers workers (default 1; 0: one per core).
        workers = options.view_as(BeamDirectOptions).direct_num_workers
        if workers:
            flags.append(f"--parallelism={workers}")
        if options.view_as(BeamStandardOptions).streaming:
            flags.append("--streaming")
        return PipelineOptions(flags)
