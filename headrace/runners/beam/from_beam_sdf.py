"""Running Beam's splittable DoFns (``RestrictionParam``) inside a headrace ``ParDo``.

For each element (and window) the adapter does what Beam's SDK harness does
for a splittable DoFn, in the order Beam does it: the restriction provider's
``initial_restriction``, its initial ``split``, then for every restriction a
tracker (``create_tracker``, behind Beam's thread-safe tracker view) and a
watermark estimator (``initial_estimator_state`` /
``create_watermark_estimator``) are passed to ``process``; each output's
timestamp is observed by the estimator, and ``check_done`` is called when
``process`` returns.

When ``process`` defers its remainder (``defer_remainder``, as
``PeriodicImpulse`` does until the next firing time) the residual
restriction is resumed, with the estimator's state, once the delay it asked
for has passed. Headrace's ``ParDo`` has no way to hand unfinished work back to
the runner, so the step waits for that time itself: a deferring SDF holds its
headrace thread until its restriction is done, and its outputs move on when
the input batch that started it is finished. That is what bounded SDFs and a
``PeriodicImpulse`` with a stop time need in a batch pipeline; an SDF that never
finishes (a ``PeriodicImpulse`` without a stop) never lets the step finish.
Runner-initiated dynamic splitting and ``truncate`` (drain) are not used.
"""
from __future__ import annotations

import time
from typing import Any, Dict, Iterator, Tuple

from apache_beam.runners.common import DoFnSignature
from apache_beam.runners.sdf_utils import (
    RestrictionTrackerView,
    ThreadsafeRestrictionTracker,
    ThreadsafeWatermarkEstimator,
)
from apache_beam.transforms import core as beam_core

from headrace.runners.beam.from_beam_dofn import BeamDoFnAdapter, convert_outputs
from headrace.runners.beam.from_beam_metrics import install_bridge
from headrace.runners.beam.from_beam_values import beam_timestamp_of
from headrace.runners.beam.from_beam_windowing import UnsupportedBeamFeature
from headrace.sdk.pvalue import TaggedOutput
from headrace.sdk.window import TimestampedValue
from headrace.sdk.windowed_value import WindowedValue

_TRACKER = "_sdf_tracker"
_ESTIMATOR = "_sdf_estimator"


class BeamSplittableDoFnAdapter(BeamDoFnAdapter):
    """Runs a Beam splittable ``DoFn`` as a headrace ``DoFn`` (see the module docstring)."""

    splittable = True
    extra_markers: Tuple[type, ...] = (beam_core._RestrictionDoFnParam,
                                       beam_core._WatermarkEstimatorParam)
    needs_timestamp = True

    def __init__(self, beam_fn: Any, args: tuple, kwargs: dict, side_count: int,
                 label: str) -> None:
        super().__init__(beam_fn, args, kwargs, side_count, label)
        if self.stateful:
            raise UnsupportedBeamFeature(f"{label}: splittable DoFn {type(beam_fn).__name__} "
                                         "with state or timers is not supported by headrace")
        signature = DoFnSignature(beam_fn)
        self.restriction_provider = signature.get_restriction_provider()
        self.estimator_provider = signature.get_watermark_estimator_provider()

    def process(self, element: Any, *sides: Any, **context: Any) -> Iterator[Any]:
        install_bridge()
        args, kwargs = self._user_args(sides)
        return self._process_restrictions(element, args, kwargs, context)

    def _process_restrictions(self, element: Any, args: Any, kwargs: Dict[str, Any],
                              context: Dict[str, Any]) -> Iterator[Any]:
        provider = self.restriction_provider
        initial = provider.initial_restriction(element)
        for restriction in provider.split(element, initial):
            state = self.estimator_provider.initial_estimator_state(element, restriction)
            while True:
                tracker = ThreadsafeRestrictionTracker(provider.create_tracker(restriction))
                estimator = ThreadsafeWatermarkEstimator(
                    self.estimator_provider.create_watermark_estimator(state))
                call_context = dict(context)
                call_context[_TRACKER] = RestrictionTrackerView(tracker)
                call_context[_ESTIMATOR] = estimator
                call_args = self._fill(self.plan, args, kwargs, element, call_context)
                results = self.plan.method(*call_args, **kwargs)
                if isinstance(results, (str, bytes, dict)):
                    raise TypeError(f"Returning a {type(results).__name__} from a ParDo or "
                                    "FlatMap is discouraged. Please use "
                                    f"list({results!r:.40}) if you really want this behavior.")
                element_micros = context["_hr_ts"].micros
                for output in convert_outputs(results) or ():
                    estimator.observe_timestamp(
                        beam_timestamp_of(_output_micros(output, element_micros)))
                    yield output
                tracker.check_done()
                deferred = tracker.deferred_status()
                if deferred is None:
                    break
                restriction, delay = deferred
                state = estimator.get_estimator_state()
                wait = delay.micros / 1e6
                if wait > 0:
                    time.sleep(wait)

    def _param_value(self, marker: Any, element: Any, context: Dict[str, Any]) -> Any:
        if isinstance(marker, beam_core._RestrictionDoFnParam):
            return context[_TRACKER]
        if isinstance(marker, beam_core._WatermarkEstimatorParam):
            return context[_ESTIMATOR]
        return super()._param_value(marker, element, context)


def _output_micros(output: Any, element_micros: int) -> int:
    """The timestamp an output of ``process`` will carry (as Beam's estimator observes it)."""
    if type(output) is TaggedOutput:
        output = output.value
    if type(output) is TimestampedValue:
        return output.timestamp_micros
    if isinstance(output, WindowedValue):
        return output.timestamp_micros
    return element_micros


def adapt_beam_dofn(beam_fn: Any, args: tuple, kwargs: dict, side_count: int,
                    label: str) -> BeamDoFnAdapter:
    """The headrace ``DoFn`` running ``beam_fn``: splittable or not, as its signature says."""
    splittable = DoFnSignature(beam_fn).is_splittable_dofn()
    adapter = BeamSplittableDoFnAdapter if splittable else BeamDoFnAdapter
    return adapter(beam_fn, args, kwargs, side_count, label)
