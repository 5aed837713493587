"""Beam's bounded ``Read`` on HeadraceRunner: a headrace source split as Beam splits it,
named after the step of Beam's own expansion that reads."""
from __future__ import annotations

from apache_beam.io import iobase
from apache_beam.io.utils import CountingSource
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.util import assert_that, equal_to

from headrace.runners.beam.from_beam_io import BeamBoundedSource


def test_read_metrics_are_the_reading_steps(make_pipeline_mp):
    p = make_pipeline_mp()
    out = p | "ReadCounts" >> iobase.Read(CountingSource(50))
    assert_that(out, equal_to(list(range(50))))
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name("recordsRead"))["counters"]
    assert len(counters) == 1
    assert counters[0].key.step.startswith("ReadCounts/SDFBoundedSourceReader/")
    assert counters[0].committed == 50
    # Beam's MetricsFilter matches a step by any part of its path.
    assert result.metrics().query(MetricsFilter().with_step("ReadCounts"))["counters"]


def _read_all(split):
    reader = split.open()
    values = []
    while (batch := reader.read_batch(7)) is not None:
        values.extend(batch)
    return values


def test_bounded_source_is_split_as_beam_splits_it():
    source = CountingSource(5_000_000)  # about 40 MB: Beam reads it in several bundles
    bundles = list(source.split(iobase.Read.get_desired_chunk_size(source.estimate_size())))
    assert len(bundles) == 3
    assert len(BeamBoundedSource(source).split(8)) == 3
    two = BeamBoundedSource(source).split(2)
    assert [len(s.bundles) for s in two] == [2, 1]
    assert len(BeamBoundedSource(CountingSource(300)).split(4)) == 1  # one bundle
    single = BeamBoundedSource(CountingSource(100)).split(1)
    assert sorted(_read_all(single[0])) == list(range(100))


def test_every_split_is_read_once():
    class Small(CountingSource):
        def split(self, desired_bundle_size, start_position=None, stop_position=None):
            return super().split(10, start_position, stop_position)

    splits = BeamBoundedSource(Small(95)).split(3)
    assert len(splits) == 3
    values = [v for split in splits for v in _read_all(split)]
    assert sorted(values) == list(range(95))
