"""Combiner lifting: pre-combine before the key exchange of a CombinePerKey.

When a CombinePerKey runs its fast path (see
:mod:`~headrace.runners.common.windowed_combine`) on more than one subtask, each
producer subtask turns an outgoing batch into one partial accumulator per window
and key (:class:`PartialCombineOperator`, in front of the exchange), sent as a
``PARTIAL`` frame that the consumer merges instead of adding elements. A batch is
combined and sent on at once, so the consumer sees the same bundles, late-data
decisions and panes as without lifting; only fewer records cross the exchange.

Pre-combining costs a grouping pass; it pays only when keys repeat within a
batch. For pairs with plain keys the number of (key, window) groups is bounded
in C first (distinct keys times distinct windows); a batch that would not shrink
to :data:`MIN_REDUCTION` of its records goes out as it is. For other keys a batch
is combined, and when it hardly shrank the next :data:`PASS_THROUGH_BATCHES`
batches go out as they are.
"""
from __future__ import annotations

from typing import Any

from headrace.runners.common.batch_combining import PartialCombiner
from headrace.runners.common.errors import reraise_with_label
from headrace.runners.engine.exchange import DATA, PARTIAL, ExchangeOutput
from headrace.runners.operators.base import Batch, Operator
from headrace.runners.operators.grouping_operators import CombinePerKeyOperator, split_key_value
from headrace.sdk.metrics import metrics_scope

#: A pre-combined batch must be at most this fraction of the input to be worth it.
MIN_REDUCTION = 0.25
#: Batches sent as they are after one that did not shrink enough, before trying again.
PASS_THROUGH_BATCHES = 32


def can_lift(consumer: Operator) -> bool:
    """Whether ``consumer`` is a CombinePerKey whose fast path merges partial accumulators."""
    return isinstance(consumer, CombinePerKeyOperator) and consumer.columnar


class PartialCombineOperator(Operator):
    """The producer half of a lifted CombinePerKey: partial accumulators per window and key.

    It runs its own instance of ``consumer``'s CombineFn (set up and torn down
    here), labels errors with the consumer's label, and hands its output to
    ``exchange``.
    """

    def __init__(self, consumer: CombinePerKeyOperator, combine_fn: Any,
                 exchange: ExchangeOutput) -> None:
        super().__init__(f"{consumer.label}/precombine", 1)
        self.consumer_label = consumer.label
        self.combine_fn, self.args, self.kwargs = combine_fn, consumer.args, consumer.kwargs
        self.exchange = exchange
        self.receivers[None] = [(exchange, 0)]  # watermarks and idleness
        label = consumer.label
        self.partial = PartialCombiner(combine_fn, self.args, self.kwargs,
                                       lambda element: split_key_value(element, label))
        self.set_up = False
        self.pass_through = 0

    def start(self) -> None:
        self._guarded(self.combine_fn.setup)
        self.set_up = True

    def close(self) -> None:
        if self.set_up:
            self.set_up = False
            self._guarded(self.combine_fn.teardown)

    def _guarded(self, method: Any) -> None:
        with metrics_scope(self.metrics):
            try:
                method(*self.args, **self.kwargs)
            except Exception as exc:
                reraise_with_label(exc, self.consumer_label)

    def process_batch(self, index: int, batch: Batch) -> None:
        estimate = self.partial.groups_at_most(batch)
        if self.pass_through or (estimate is not None
                                 and estimate > MIN_REDUCTION * len(batch)):
            self.pass_through = max(0, self.pass_through - 1)
            self.exchange.route(batch, DATA)
            return
        with metrics_scope(self.metrics):
            try:
                partials = self.partial.combine(batch)
            except Exception as exc:
                reraise_with_label(exc, self.consumer_label)
        if estimate is None and len(partials) > MIN_REDUCTION * len(batch):
            self.pass_through = PASS_THROUGH_BATCHES
        self.records_out += len(partials)
        self.exchange.route(partials, PARTIAL)
