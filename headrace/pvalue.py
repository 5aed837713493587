"""Beam's ``pvalue`` module path: PCollections, tagged outputs, side-input views."""
from headrace.sdk.pvalue import (
                                 AsDict,
                                 AsIter,
                                 AsList,
                                 AsMultiMap,
                                 AsSideInput,
                                 AsSingleton,
                                 DoOutputsTuple,
                                 EmptySideInput,
                                 PBegin,
                                 PCollection,
                                 PDone,
                                 PValue,
                                 TaggedOutput,
)

__all__ = ["AsDict", "AsIter", "AsList", "AsMultiMap", "AsSideInput", "AsSingleton",
           "DoOutputsTuple", "EmptySideInput", "PBegin", "PCollection", "PDone", "PValue",
           "TaggedOutput"]
