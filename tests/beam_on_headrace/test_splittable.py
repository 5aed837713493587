"""Beam splittable DoFns (and PeriodicImpulse, one of them) on HeadraceRunner and on Beam."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.periodicsequence import PeriodicImpulse
from apache_beam.utils.timestamp import Duration, Timestamp


class _Chunks(beam.transforms.core.RestrictionProvider):
    """Offsets [0, n) of element n, initially split into chunks of two."""

    def initial_restriction(self, n):
        return OffsetRange(0, n)

    def split(self, n, restriction):
        for start in range(restriction.start, restriction.stop, 2):
            yield OffsetRange(start, min(start + 2, restriction.stop))

    def create_tracker(self, restriction):
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, n, restriction):
        return restriction.size()


class _Count(beam.DoFn):
    def process(self, n, ts=beam.DoFn.TimestampParam,
                tracker=beam.DoFn.RestrictionParam(_Chunks())):
        restriction = tracker.current_restriction()
        position = restriction.start
        while tracker.try_claim(position):
            yield n, position, restriction.start, float(ts)
            position += 1


def test_bounded_splittable_dofn(make_pipeline):
    with make_pipeline() as p:
        out = (p | beam.Create([3, 0, 5])
               | beam.Map(lambda n: beam.window.TimestampedValue(n, 7))
               | beam.ParDo(_Count()))
        # Each output says which initial split (restriction start) produced it.
        assert_that(out, equal_to([(3, 0, 0, 7.0), (3, 1, 0, 7.0), (3, 2, 2, 7.0),
                                   (5, 0, 0, 7.0), (5, 1, 0, 7.0), (5, 2, 2, 7.0),
                                   (5, 3, 2, 7.0), (5, 4, 4, 7.0)]))


class _Deferring(beam.DoFn):
    """Claims one position per call and defers the rest; the manual watermark it sets is
    carried to the next call by the estimator's state."""

    def process(self, n, tracker=beam.DoFn.RestrictionParam(_Chunks()),
                estimator=beam.DoFn.WatermarkEstimatorParam(
                    ManualWatermarkEstimator.default_provider())):
        position = tracker.current_restriction().start
        if tracker.try_claim(position):
            previous = estimator.current_watermark()
            yield n, position, None if previous is None else previous.micros
            estimator.set_watermark(Timestamp(micros=position + 1))
            tracker.defer_remainder(Duration(micros=10_000))


def test_deferred_remainder_resumes_with_estimator_state(make_pipeline):
    with make_pipeline() as p:
        out = p | beam.Create([4]) | beam.ParDo(_Deferring())
        assert_that(out, equal_to([(4, 0, None), (4, 1, 1), (4, 2, None), (4, 3, 3)]))


def test_periodic_impulse_with_a_stop_time(make_pipeline):
    start = Timestamp.now()
    with make_pipeline() as p:
        out = (p | PeriodicImpulse(start_timestamp=start, stop_timestamp=start + Duration(0.6),
                                   fire_interval=0.2)
               | beam.Map(lambda t, ts=beam.DoFn.TimestampParam: round(float(ts - start), 3)))
        assert_that(out, equal_to([0.0, 0.2, 0.4]))


def test_periodic_impulse_with_data_and_windowing(make_pipeline):
    start = Timestamp(1_000)  # in the past: everything is due at once
    with make_pipeline() as p:
        out = (p | PeriodicImpulse(start_timestamp=start, stop_timestamp=start + Duration(4),
                                   fire_interval=1, apply_windowing=True,
                                   data=["a", "b", "c", "d"])
               | beam.Map(lambda v, w=beam.DoFn.WindowParam: (v, float(w.start))))
        assert_that(out, equal_to([("a", 1000.0), ("b", 1001.0), ("c", 1002.0),
                                   ("d", 1003.0)]))
