"""The transform library, composed from the SDK's primitives."""
from headrace.sdk.combinefn import CombineFn
from headrace.sdk.pardo import ParDo
from headrace.sdk.primitives import CombinePerKey, Flatten, GroupByKey, WindowInto
from headrace.sdk.ptransform import PTransform, ptransform_fn
from headrace.transforms import combiners, timeutil, trigger, userstate, window
from headrace.transforms.combine import CombineGlobally, CombineValues
from headrace.transforms.create import Create
from headrace.transforms.elementwise import Filter, FlatMap, FlatMapTuple, Map, MapTuple
from headrace.transforms.partition import Partition, PartitionFn
from headrace.transforms.util import (
                                      CoGroupByKey,
                                      Distinct,
                                      Keys,
                                      KvSwap,
                                      RemoveDuplicates,
                                      Reshuffle,
                                      Values,
                                      WithKeys,
)

__all__ = [
    "CoGroupByKey", "CombineFn", "CombineGlobally", "CombinePerKey", "CombineValues", "Create",
    "Distinct", "Filter", "FlatMap", "FlatMapTuple", "Flatten", "GroupByKey", "Keys", "KvSwap",
    "Map", "MapTuple", "ParDo", "PTransform", "Partition", "PartitionFn", "RemoveDuplicates",
    "Reshuffle", "Values", "WindowInto", "WithKeys", "combiners", "ptransform_fn", "timeutil",
    "trigger", "userstate", "window",
]
