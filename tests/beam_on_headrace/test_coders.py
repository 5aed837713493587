"""Values of a type the user registered a Beam coder for cross headrace's worker processes
encoded by that coder, as on Beam's runners: the type need not pickle."""
from __future__ import annotations

import collections
from typing import Tuple

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from headrace.runners.beam.headrace_runner import HeadraceRunner


def _unpicklable_type_and_coder(coder_module: str) -> tuple:
    """A new type (a registration outlives its test) that refuses pickling, and its coder
    defined in ``coder_module``."""
    class Unpicklable:
        def __init__(self, value: int) -> None:
            self.value = value

        def __getstate__(self):
            raise NotImplementedError("pickled instead of encoded by its registered coder")

    class UnpicklableCoder(beam.coders.Coder):
        def encode(self, value: Unpicklable) -> bytes:
            return str(value.value).encode()

        def decode(self, encoded: bytes) -> Unpicklable:
            return Unpicklable(int(encoded))

        def is_deterministic(self) -> bool:
            return True

    UnpicklableCoder.__module__ = coder_module
    return Unpicklable, UnpicklableCoder


# Beam's own test files define such coders too (util_test's CoGroupByKey on unpicklable
# values): only the coders of Beam's coders package are Beam's.
@pytest.mark.parametrize("module", [__name__, "apache_beam.transforms.util_test"])
def test_unpicklable_values_cross_workers_by_their_coder(module):
    unpicklable, coder = _unpicklable_type_and_coder(module)
    beam.coders.registry.register_coder(unpicklable, coder)
    options = PipelineOptions(["--headrace_runner=multiprocess", "--direct_num_workers=2"])
    with beam.Pipeline(runner=HeadraceRunner(), options=options) as p:
        keyed = p | beam.Create([unpicklable(i) for i in range(6)]) | beam.WithKeys(
            lambda x: x)
        out = ({"x": keyed} | beam.CoGroupByKey()
               | beam.FlatMapTuple(lambda k, tagged: [(k.value, tagged["x"][0].value * 2)]))
        assert_that(out, equal_to([(i, 2 * i) for i in range(6)]))


def test_a_coder_that_pickles_its_values_is_not_called_back():
    # The registered coder pickles the value itself (cloudpickle: the type is made at run
    # time, so plain pickle cannot refer to it); encoding must not recurse into the coder.
    point = collections.namedtuple("Point", ["x", "y"])

    class PicklingCoder(beam.coders.FastPrimitivesCoder):
        def __init__(self):
            super().__init__(fallback_coder=beam.coders.CloudpickleCoder())

    beam.coders.registry.register_coder(point, PicklingCoder)
    options = PipelineOptions(["--headrace_runner=multiprocess", "--direct_num_workers=2"])
    with beam.Pipeline(runner=HeadraceRunner(), options=options) as p:
        out = (p | beam.Create(range(20)) | beam.Reshuffle()
               | beam.FlatMap(lambda i: [(point(i % 2, "a"), 1)]).with_output_types(
                   Tuple[point, int])
               | beam.GroupByKey() | beam.MapTuple(lambda k, ones: (k.x, k.y, sum(ones))))
        assert_that(out, equal_to([(0, "a", 10), (1, "a", 10)]))
