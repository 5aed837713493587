"""``--runner=beam``: run a headrace pipeline on Apache Beam.

``--beam_runner=NAME`` picks Beam's runner (default ``DirectRunner``, or
``BundleBasedDirectRunner`` when the pipeline has a ``TestStream``, the Beam
runner that replays one faithfully). Every flag headrace does not know is
handed to Beam's ``PipelineOptions``, as is ``--streaming``.

>>> import headrace as hr
>>> p = hr.Pipeline(argv=["--runner=beam", "--beam_runner=DirectRunner"])
>>> _ = p | hr.Create([1, 2, 3]) | hr.Map(lambda x: x)
>>> type(p.runner.beam_pipeline(p, p.options)).__name__  # translated, not run
'Pipeline'
"""
from __future__ import annotations

from typing import Any, List, Optional

from headrace.sdk.metrics import merge_snapshots
from headrace.sdk.metrics.cells import MetricsSnapshot
from headrace.sdk.metrics.results import MetricResults, MetricsFilter
from headrace.sdk.options import HeadraceOptions, StandardOptions
from headrace.sdk.runner import PipelineResult, PipelineRunner
from headrace.sdk.test_stream import TestStream

DEFAULT_BEAM_RUNNER = "DirectRunner"
TEST_STREAM_BEAM_RUNNER = "BundleBasedDirectRunner"


class BeamMetricResults(MetricResults):
    """Beam's metric results behind headrace's query API (steps are headrace's labels)."""

    def __init__(self, beam_results: Any) -> None:
        snapshots: List[MetricsSnapshot] = []
        found = beam_results.query()
        for kind, index in (("counters", 1), ("distributions", 2), ("gauges", 3)):
            for result in found.get(kind, []):
                value = result.committed if result.committed is not None else result.attempted
                if value is None:
                    continue
                if kind == "distributions":
                    value = (value.sum, value.count, value.min, value.max)
                elif kind == "gauges":
                    value = (value.value, value.timestamp)
                snapshot = MetricsSnapshot(result.key.step, {}, {}, {})
                snapshot[index][(result.key.metric.namespace, result.key.metric.name)] = value
                snapshots.append(snapshot)
        self._collected = merge_snapshots(snapshots)

    def query(self, filter: Optional[MetricsFilter] = None) -> Any:
        return self._collected.query(filter)


class BeamPipelineResult(PipelineResult):
    """A headrace ``PipelineResult`` over Beam's."""

    def __init__(self, beam_result: Any) -> None:
        super().__init__(str(beam_result.state))
        self.beam_result = beam_result

    @property
    def state(self) -> str:
        return str(self.beam_result.state)

    def wait_until_finish(self, duration: Optional[float] = None) -> str:
        return str(self.beam_result.wait_until_finish(duration))

    def cancel(self) -> str:
        return str(self.beam_result.cancel())

    def metrics(self) -> BeamMetricResults:
        return BeamMetricResults(self.beam_result.metrics())


def _split_beam_runner(flags: List[str]) -> tuple:
    """Take ``--beam_runner`` out of ``flags``: ``(runner or None, other flags)``."""
    runner, rest, i = None, [], 0
    while i < len(flags):
        flag = flags[i]
        if flag.startswith("--beam_runner="):
            runner = flag.split("=", 1)[1]
        elif flag == "--beam_runner" and i + 1 < len(flags):
            runner = flags[i + 1]
            i += 1
        else:
            rest.append(flag)
        i += 1
    return runner, rest


class BeamRunner(PipelineRunner):
    """Translates the headrace pipeline to Apache Beam and runs it there.

    >>> import headrace as hr
    >>> from headrace.metrics.metric import MetricsFilter
    >>> p = hr.Pipeline(runner="beam")
    >>> _ = p | hr.Create(["a"]) | hr.Map(lambda s: hr.metrics.Metrics.counter("doc", "n").inc())
    >>> result = p.run()
    >>> result.wait_until_finish(), result.metrics().query(MetricsFilter().with_name("n"))[
    ...     "counters"][0].committed
    ('DONE', 1)
    """

    def beam_pipeline(self, pipeline: Any, options: Any) -> Any:
        """The translated (not yet run) Beam pipeline; refusals are raised here."""
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions as BeamOptions
        from apache_beam.options.pipeline_options import StandardOptions as BeamStandard

        from headrace.runners.beam.to_beam import BeamTranslator

        runner, flags = _split_beam_runner(list(options.unknown_flags()))
        nodes = pipeline.primitives()
        has_test_stream = any(isinstance(n.transform, TestStream) for n in nodes)
        unbounded = any(not pc.is_bounded for n in nodes for pc in n.outputs.values())
        streaming = bool(options.view_as(StandardOptions).streaming) or has_test_stream \
            or unbounded
        if runner is None:
            runner = TEST_STREAM_BEAM_RUNNER if has_test_stream else DEFAULT_BEAM_RUNNER
        beam_options = BeamOptions(flags)
        if streaming:
            beam_options.view_as(BeamStandard).streaming = True
        splits = options.view_as(HeadraceOptions).resolved_parallelism()
        bp = beam.Pipeline(runner=runner, options=beam_options)
        BeamTranslator(pipeline, desired_splits=splits, streaming=streaming).translate(bp)
        return bp

    def run_pipeline(self, pipeline: Any, options: Any) -> BeamPipelineResult:
        bp = self.beam_pipeline(pipeline, options)
        return BeamPipelineResult(bp.run())
