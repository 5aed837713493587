"""Key/value helpers, CoGroupByKey, Distinct and Reshuffle."""
from __future__ import annotations

import random
from typing import Any, Dict, Tuple

from headrace.sdk.dofn import DoFn
from headrace.sdk.primitives import CombinePerKey, Flatten, GroupByKey, WindowInto
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import PCollection
from headrace.sdk.window import GlobalWindows
from headrace.sdk.windowed_value import WindowedValue
from headrace.transforms.elementwise import FlatMap, Map


class Keys(PTransform):
    """The keys of ``(key, value)`` pairs.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     keys = p | beam.Create([("a", 1)]) | beam.Keys()
    """

    def expand(self, pcoll: PCollection) -> PCollection:
        return pcoll | "Keys" >> Map(lambda kv: kv[0])


class Values(PTransform):
    """The values of ``(key, value)`` pairs.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     values = p | beam.Create([("a", 1)]) | beam.Values()
    """

    def expand(self, pcoll: PCollection) -> PCollection:
        return pcoll | "Values" >> Map(lambda kv: kv[1])


class KvSwap(PTransform):
    """``(key, value)`` to ``(value, key)``.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     swapped = p | beam.Create([("a", 1)]) | beam.KvSwap()
    """

    def expand(self, pcoll: PCollection) -> PCollection:
        return pcoll | "KvSwap" >> Map(lambda kv: (kv[1], kv[0]))


class WithKeys(PTransform):
    """Pair each element with a key: a constant, or ``key(element)`` when callable.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     keyed = p | beam.Create(["apple"]) | beam.WithKeys(lambda s: s[0])
    """

    def __init__(self, key: Any) -> None:
        super().__init__()
        self.key = key

    def expand(self, pcoll: PCollection) -> PCollection:
        key = self.key
        if callable(key):
            return pcoll | "WithKeys" >> Map(lambda v: (key(v), v))
        return pcoll | "WithKeys" >> Map(lambda v: (key, v))


class CoGroupByKey(PTransform):
    """Group several keyed PCollections by key.

    A dict input gives ``(key, {tag: [values]})``; a tuple or list gives
    ``(key, ([values0], [values1], ...))``.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     emails = p | "E" >> beam.Create([("amy", "amy@x.org")])
    ...     phones = p | "P" >> beam.Create([("amy", "555")])
    ...     joined = {"emails": emails, "phones": phones} | beam.CoGroupByKey()
    """

    def __init__(self, *, pipeline: Any = None) -> None:
        super().__init__()
        self.pipeline = pipeline

    def expand(self, pcolls: Any) -> PCollection:
        if isinstance(pcolls, dict):
            tags = list(pcolls)
            inputs = [pcolls[tag] for tag in tags]
        elif isinstance(pcolls, (tuple, list)):
            tags, inputs = list(range(len(pcolls))), list(pcolls)
        else:
            raise TypeError(f"CoGroupByKey needs a dict, tuple or list of PCollections, got "
                            f"{type(pcolls).__name__}")
        tagged = [pcoll | f"Tag[{tag}]" >> Map(lambda kv, tag=tag: (kv[0], (tag, kv[1])))
                  for tag, pcoll in zip(tags, inputs)]
        as_dict = isinstance(pcolls, dict)

        def regroup(key_tagged: Tuple[Any, Any]) -> Any:
            key, tagged_values = key_tagged
            grouped: Dict[Any, list] = {tag: [] for tag in tags}
            for tag, value in tagged_values:
                grouped[tag].append(value)
            return key, (grouped if as_dict else tuple(grouped[t] for t in tags))

        return (tuple(tagged) | "Flatten" >> Flatten(pipeline=self.pipeline)
                | "GroupByKey" >> GroupByKey() | "Regroup" >> Map(regroup))


class Distinct(PTransform):
    """Remove duplicate elements (per window).

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     unique = p | beam.Create([1, 1, 2]) | beam.Distinct()
    """

    def expand(self, pcoll: PCollection) -> PCollection:
        return (pcoll
                | "ToPairs" >> Map(lambda v: (v, None))
                | "Group" >> CombinePerKey(lambda values: None)
                | "Distinct" >> Map(lambda kv: kv[0]))


RemoveDuplicates = Distinct


class _ReifyWithRandomKey(DoFn):
    def process(self, element, timestamp=DoFn.TimestampParam, window=DoFn.WindowParam):
        yield random.getrandbits(32), (element, timestamp.micros, window)


class Reshuffle(PTransform):
    """Redistribute elements among workers; elements keep their timestamps and windows.

    >>> import headrace as beam
    >>> with beam.Pipeline() as p:
    ...     spread = p | beam.Create(range(10)) | beam.Reshuffle()
    """

    def __init__(self, num_buckets: Any = None) -> None:
        super().__init__()
        self.num_buckets = num_buckets

    def expand(self, pcoll: PCollection) -> PCollection:
        from headrace.sdk.pardo import ParDo

        restored = (pcoll
                    | "ReifyWithRandomKey" >> ParDo(_ReifyWithRandomKey())
                    | "GlobalWindow" >> WindowInto(GlobalWindows())
                    | "GroupByKey" >> GroupByKey()
                    | "Restore" >> FlatMap(lambda kv: [WindowedValue.of(v, ts, (w,))
                                                       for v, ts, w in kv[1]]))
        restored.windowing = pcoll.windowing
        return restored
