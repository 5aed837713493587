"""headrace: batch and streaming pipelines in Apache Beam's Python API.

``import headrace as beam`` runs ordinary Beam pipeline code:

>>> import headrace as beam
>>> with beam.Pipeline() as p:
...     _ = (p | beam.Create(["to be or not to be"])
...            | beam.FlatMap(str.split)
...            | beam.combiners.Count.PerElement())
"""
from headrace import coders, io, metrics, pvalue, transforms, typehints, window
from headrace.options import pipeline_options  # noqa: F401  (Beam's module path)
from headrace.sdk.dofn import DoFn
from headrace.sdk.pipeline import Pipeline
from headrace.sdk.primitives import Read, Write
from headrace.sdk.pvalue import PCollection
from headrace.sdk.watermarks import WatermarkStrategy
from headrace.transforms import (
                                 CoGroupByKey,
                                 CombineFn,
                                 CombineGlobally,
                                 CombinePerKey,
                                 CombineValues,
                                 Create,
                                 Distinct,
                                 Filter,
                                 FlatMap,
                                 FlatMapTuple,
                                 Flatten,
                                 GroupByKey,
                                 Keys,
                                 KvSwap,
                                 Map,
                                 MapTuple,
                                 ParDo,
                                 Partition,
                                 PartitionFn,
                                 PTransform,
                                 RemoveDuplicates,
                                 Reshuffle,
                                 Values,
                                 WindowInto,
                                 WithKeys,
                                 combiners,
                                 ptransform_fn,
)

__version__ = "0.1.0"

__all__ = [
    "CoGroupByKey", "CombineFn", "CombineGlobally", "CombinePerKey", "CombineValues", "Create",
    "Distinct", "DoFn", "Filter", "FlatMap", "FlatMapTuple", "Flatten", "GroupByKey", "Keys",
    "KvSwap", "Map", "MapTuple", "PCollection", "PTransform", "ParDo", "Partition", "PartitionFn",
    "Pipeline", "Read", "RemoveDuplicates", "Reshuffle", "Values", "WindowInto", "WithKeys",
    "WatermarkStrategy", "Write", "coders", "combiners", "io", "metrics", "ptransform_fn",
    "pvalue", "transforms", "typehints", "window",
]
