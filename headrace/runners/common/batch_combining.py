"""Combining a batch's values per window and key: what CombinePerKey's fast path and its
pre-combining before the key exchange (combiner lifting) share.

A :class:`BatchCombiner` groups a batch by window and key, in as few Python steps
per element as it can (pairs and plain keys are checked in C), and adds values or
partial accumulators to an accumulator. A :class:`PartialCombiner` turns a batch
into one partial accumulator per window and key, for the consumer on the other
side of the exchange to merge (``lifted``).
"""
from __future__ import annotations

from operator import itemgetter
from typing import Any, Callable, Dict, List, Optional, Tuple

from headrace.runners.operators.batch import Batch, ColumnBatch, as_columns
from headrace.sdk.coders import encode_key
from headrace.sdk.coders.keys import ENCODING_CONSISTENT_KEY_TYPES
from headrace.sdk.combinefn import CallableWrapperCombineFn
from headrace.sdk.timestamp import MIN_MICROS

#: Key types whose Python equality is their encoding's: used as dict keys as they are.
_PLAIN_KEYS = frozenset(ENCODING_CONSISTENT_KEY_TYPES)
_first, _second = itemgetter(0), itemgetter(1)


def _encoded_key(key: Any) -> tuple:
    # A tuple never equals a key of a plain type, so the two kinds cannot collide.
    return ("encoded", encode_key(key))


class BatchCombiner:
    """A ``CombineFn`` (with its extra arguments) applied to batches grouped by window and key.

    ``split(element)`` returns an element's ``(key, value)`` or raises naming the
    transform. Values may also be ``(count, partial accumulator)`` pairs from a
    :class:`PartialCombiner` (``partial``).
    """

    def __init__(self, combine_fn: Any, args: tuple, kwargs: dict,
                 split: Callable[[Any], tuple]) -> None:
        fn = combine_fn
        #: For a wrapped callable (e.g. ``sum``) without extra arguments: the callable, whose
        #: buffer-of-inputs accumulators are handled inline.
        self.reduce = None
        self.buffer_limit = 0
        if type(fn) is CallableWrapperCombineFn and not args and not kwargs:
            self.reduce = fn._fn
            self.buffer_limit = fn._BUFFER_SIZE
        if args or kwargs:
            self.create = lambda: fn.create_accumulator(*args, **kwargs)
            self.add_inputs = lambda acc, values: fn.add_inputs(acc, values, *args, **kwargs)
            self.merge = lambda accs: fn.merge_accumulators(accs, *args, **kwargs)
            self.extract = lambda acc: fn.extract_output(fn.compact(acc, *args, **kwargs),
                                                         *args, **kwargs)
        else:
            self.create, self.add_inputs = fn.create_accumulator, fn.add_inputs
            self.merge = fn.merge_accumulators
            self.extract = lambda acc: fn.extract_output(fn.compact(acc))
        self.split = split

    def accumulate(self, accumulator: Any, values: List[Any], partial: bool) -> Any:
        """``accumulator`` (None: a new one) with ``values`` (or partials) added."""
        if partial:
            parts = [part for _, part in values]
            if accumulator is not None:
                parts.insert(0, accumulator)
            return self.merge(parts)
        if accumulator is None:
            accumulator = self.create()
        return self.add_inputs(accumulator, values)

    def group_by_window(self, batch: Batch, horizon: int,
                        partial: bool = False) -> Tuple[Dict[Any, list], int]:
        """``{window: [{key code: [key, values]}, owned]}`` for the windows that end at or
        after ``horizon``, and the number of (element, window) pairs dropped for the others.

        ``owned``: the value lists belong to that window alone (an accumulator may take
        them over). As the general path, there is one group per key and window per batch.
        """
        columns = as_columns(batch)
        if columns.shared_windows:
            buckets = [(columns.windows, self._group(columns.values))]
        else:
            buckets = self._group_by_windows(columns.values, columns.windows)
        dropped = 0
        by_window: Dict[Any, list] = {}  # window -> [groups, owned (a copy of its own)]
        for windows, groups in buckets:
            for window in windows:
                if window.end_micros < horizon:
                    dropped += sum(sum(count for count, _ in group[1]) if partial
                                   else len(group[1]) for group in groups.values())
                    continue
                entry = by_window.get(window)
                if entry is None:
                    by_window[window] = [groups, len(windows) == 1]
                    continue
                if not entry[1]:
                    entry[0] = {code: [key, list(values)]
                                for code, (key, values) in entry[0].items()}
                    entry[1] = True
                target = entry[0]
                for code, (key, values) in groups.items():
                    group = target.get(code)
                    if group is None:
                        target[code] = [key, list(values)]
                    else:
                        group[1].extend(values)
        return by_window, dropped

    def _group(self, values: List[Any]) -> Dict[Any, list]:
        """``{key: [first key object, [values]]}`` (keys compared as their encodings)."""
        if set(map(type, values)) == {tuple} and set(map(len, values)) == {2}:
            # Checked in C: all pairs. Then keys of plain types group as they are.
            keys = list(map(_first, values))
            if set(map(type, keys)) <= _PLAIN_KEYS:
                distinct = set(keys)
                if len(distinct) == 1:  # e.g. CombineGlobally's single key
                    key = keys[0]
                    return {key: [key, list(map(_second, values))]}
                return self._group_plain(values)
        groups: Dict[Any, list] = {}
        get, split, plain = groups.get, self.split, _PLAIN_KEYS
        for element in values:
            if type(element) is not tuple or len(element) != 2:
                element = split(element)
            key = element[0]
            code = key if type(key) in plain else _encoded_key(key)
            group = get(code)
            if group is None:
                groups[code] = [key, [element[1]]]
            else:
                group[1].append(element[1])
        return groups

    @staticmethod
    def _group_plain(values: List[Tuple[Any, Any]]) -> Dict[Any, list]:
        """``_group`` for pairs whose keys are all of plain types."""
        groups: Dict[Any, list] = {}
        get = groups.get
        for key, value in values:
            group = get(key)
            if group is None:
                groups[key] = [key, [value]]
            else:
                group[1].append(value)
        return groups

    def _group_by_windows(self, values: List[Any], windows: List[tuple]
                          ) -> List[Tuple[tuple, Dict[Any, list]]]:
        return [(w, self._group(vs)) for w, vs in bucket_by_windows(values, windows)]


def plain_pairs(values: List[Any]) -> bool:
    """Whether every value is a ``(key, value)`` tuple with a key of a plain type (in C)."""
    return (set(map(type, values)) == {tuple} and set(map(len, values)) == {2}
            and set(map(type, map(_first, values))) <= _PLAIN_KEYS)


def bucket_by_windows(values: List[Any], windows: List[tuple]) -> List[Tuple[tuple, list]]:
    """``[(windows, values)]``: the values by their windows tuple, in first-seen order.

    Equal window tuples are usually the same object (assigned once per window start)
    and neighbours usually share it: buckets are found by identity.
    """
    buckets: Dict[int, Tuple[tuple, list]] = {}
    last: Any = None
    append: Any = None
    for value, element_windows in zip(values, windows):
        if element_windows is not last:
            last = element_windows
            bucket = buckets.get(id(element_windows))
            if bucket is None:
                bucket = buckets[id(element_windows)] = (element_windows, [])
            append = bucket[1].append
        append(value)
    return list(buckets.values())



class PartialCombiner(BatchCombiner):
    """Pre-combines a batch before the key exchange: one partial accumulator per window and key.

    >>> from headrace.sdk.combinefn import CombineFn
    >>> from headrace.sdk.window import GLOBAL_WINDOW
    >>> partial = PartialCombiner(CombineFn.maybe_from_callable(sum), (), {}, tuple)
    >>> partial.combine(ColumnBatch([("k", 1), ("k", 2), ("j", 5)], 0, (GLOBAL_WINDOW,))).values
    [('k', (2, [3])), ('j', (1, [5]))]
    """

    def groups_at_most(self, batch: Batch) -> Optional[int]:
        """An upper bound on the (key, window) groups of ``batch``, found in C, or None
        when its values are not all pairs with plain keys."""
        columns = as_columns(batch)
        if not plain_pairs(columns.values):
            return None
        keys = len(set(map(_first, columns.values)))
        if columns.shared_windows:
            return keys * len(columns.windows)
        return keys * len(set(map(id, columns.windows))) * max(map(len, columns.windows))

    def combine(self, batch: Batch) -> ColumnBatch:
        """``(key, (number of values, partial accumulator))`` per window and key."""
        by_window, _ = self.group_by_window(batch, MIN_MICROS)
        values: List[Any] = []
        timestamps: List[int] = []
        windows: List[tuple] = []
        reduce = self.reduce
        for window, (groups, _) in by_window.items():
            if reduce is not None:
                parts = [(key, (len(vs), [reduce(vs)] if len(vs) > 1 else vs))
                         for key, vs in groups.values()]
            else:
                add_inputs, create = self.add_inputs, self.create
                parts = [(key, (len(vs), add_inputs(create(), vs)))
                         for key, vs in groups.values()]
            values.extend(parts)
            # The consumer keeps end-of-window timestamps: an element's own does not matter.
            timestamps.extend([window.end_micros - 1] * len(parts))
            windows.extend([(window,)] * len(parts))
        return ColumnBatch(values, timestamps, windows)
