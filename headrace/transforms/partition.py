"""``Partition``: split one PCollection into a fixed number of PCollections."""
from __future__ import annotations

from typing import Any, Tuple

from headrace.sdk.callable_dofn import label_from_callable
from headrace.sdk.dofn import DoFn
from headrace.sdk.pardo import ParDo
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import PCollection, TaggedOutput


class PartitionFn:
    """Chooses the partition of an element; subclass and implement ``partition_for``."""

    def partition_for(self, element: Any, num_partitions: int, *args: Any, **kwargs: Any) -> int:
        raise NotImplementedError

    def default_label(self) -> str:
        return type(self).__name__


class _ApplyPartitionFn(DoFn):
    def __init__(self, partition_fn: Any) -> None:
        self.partition_fn = partition_fn

    def process(self, element: Any, num_partitions: int, *args: Any, **kwargs: Any):
        fn = self.partition_fn
        if isinstance(fn, PartitionFn):
            index = fn.partition_for(element, num_partitions, *args, **kwargs)
        else:
            index = fn(element, num_partitions, *args, **kwargs)
        if not isinstance(index, int) or not 0 <= index < num_partitions:
            raise ValueError(f"PartitionFn specified out-of-bounds partition index: {index!r} "
                             f"not in [0, {num_partitions})")
        yield TaggedOutput(str(index), element)


class Partition(PTransform):
    """Split a PCollection into ``num_partitions`` by ``fn(element, num_partitions, *args)``.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     small, large = (p | beam.Create([1, 50, 7])
    ...                       | beam.Partition(lambda x, n: 0 if x < 10 else 1, 2))
    """

    def __init__(self, fn: Any, num_partitions: int, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if not (isinstance(fn, PartitionFn) or callable(fn)):
            raise TypeError(f"Partition needs a PartitionFn or a callable, got {fn!r:.100}")
        if not isinstance(num_partitions, int) or num_partitions < 1:
            raise ValueError(f"Partition needs a positive number of partitions, "
                             f"got {num_partitions!r}")
        self.fn, self.num_partitions = fn, num_partitions
        self.args, self.kwargs = args, kwargs

    def default_label(self) -> str:
        name = (self.fn.default_label() if isinstance(self.fn, PartitionFn)
                else label_from_callable(self.fn))
        return f"Partition({name})"

    def expand(self, pcoll: PCollection) -> Tuple[PCollection, ...]:
        tags = [str(i) for i in range(self.num_partitions)]
        outputs = pcoll | "ParDo" >> ParDo(_ApplyPartitionFn(self.fn), self.num_partitions,
                                           *self.args, **self.kwargs).with_outputs(*tags)
        return tuple(outputs[tag] for tag in tags)
