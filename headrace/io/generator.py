"""A synthetic, seeded event generator: ``(key, value, event_time)`` records for samples,
tests and benchmarks.

Event time advances by ``1 / events_per_event_second`` per event; each event
is then pushed back by up to ``max_out_of_orderness`` seconds (out of order),
and a ``late_fraction`` of them by ``late_by`` more (late beyond the default
watermark). Every record is a pure function of ``seed`` and its index, so a
split can resume from any position with the same output.

>>> import headrace as beam
>>> with beam.Pipeline() as p:
...     events = p | GenerateEvents(num_events=1000, num_keys=10, seed=7)
"""
from __future__ import annotations

import random
import time
from typing import Any, List, Optional

from headrace.sdk.io_base import Source, SourceSplit, SplitReader
from headrace.sdk.primitives import Read
from headrace.sdk.ptransform import PTransform
from headrace.sdk.pvalue import PBegin, PCollection
from headrace.sdk.watermarks import WatermarkStrategy

#: Events are drawn from one seeded RNG per block of a split, so a reader can seek anywhere.
_BLOCK = 4096


class _GeneratorConfig:
    def __init__(self, num_events: Optional[int], num_keys: int, events_per_second: Optional[float],
                 events_per_event_second: float, start_time: float,
                 max_out_of_orderness: float, late_fraction: float, late_by: float,
                 seed: int, num_splits: int) -> None:
        self.num_events = num_events
        self.num_keys = num_keys
        self.events_per_second = events_per_second
        self.events_per_event_second = events_per_event_second
        self.start_time = start_time
        self.max_out_of_orderness = max_out_of_orderness
        self.late_fraction = late_fraction
        self.late_by = late_by
        self.seed = seed
        self.num_splits = num_splits


class _GeneratorReader(SplitReader):
    def __init__(self, config: _GeneratorConfig, split: int, position: int) -> None:
        self.config = config
        self.split = split
        self.emitted = position  # events of this split returned so far
        self._rng: Optional[random.Random] = None
        self._rng_block = -1
        self._started = time.monotonic()
        self._start_count = position

    def _event(self, index: int) -> tuple:
        # Draws follow this split's own sequence, so a resumed reader re-creates them exactly.
        block, offset = divmod(self.emitted, _BLOCK)
        if block != self._rng_block or offset == 0 or self._rng is None:
            self._rng = random.Random(hash((self.config.seed, self.split, block)))
            self._rng_block = block
            for _ in range(offset * 4):
                self._rng.random()
        rng, cfg = self._rng, self.config
        key = int(rng.random() * cfg.num_keys)
        value = round(rng.random() * 100.0, 3)
        skew = rng.random() * cfg.max_out_of_orderness
        if rng.random() < cfg.late_fraction:
            skew += cfg.late_by
        event_time = cfg.start_time + index / cfg.events_per_event_second - skew
        return (key, value, event_time)

    def read_batch(self, max_records: int) -> Optional[List[Any]]:
        cfg = self.config
        budget = max_records
        if cfg.events_per_second:
            # Pace in processing time: at most what the rate allows since the reader opened.
            allowed = int((time.monotonic() - self._started) * cfg.events_per_second
                          / cfg.num_splits) + 1
            budget = min(budget, self._start_count + allowed - self.emitted)
        batch = []
        while len(batch) < budget:
            index = self.emitted * cfg.num_splits + self.split
            if cfg.num_events is not None and index >= cfg.num_events:
                break
            batch.append(self._event(index))
            self.emitted += 1
        if not batch and cfg.num_events is not None \
                and self.emitted * cfg.num_splits + self.split >= cfg.num_events:
            return None
        return batch

    def position(self) -> int:
        return self.emitted


class _GeneratorSplit(SourceSplit):
    def __init__(self, config: _GeneratorConfig, index: int) -> None:
        self.config = config
        self.index = index

    def open(self, position: Any = None) -> SplitReader:
        return _GeneratorReader(self.config, self.index, position or 0)


class GeneratorSource(Source):
    """The source behind :class:`GenerateEvents`; splits interleave the event indices."""

    def __init__(self, config: _GeneratorConfig, bounded: bool) -> None:
        self.config = config
        self.is_bounded = bounded

    def split(self, desired_num_splits: int) -> List[SourceSplit]:
        return [_GeneratorSplit(self.config, i) for i in range(self.config.num_splits)]

    def display_name(self) -> str:
        count = self.config.num_events
        return f"Generator({'unbounded' if count is None else count})"

    def default_watermark_strategy(self) -> WatermarkStrategy:
        return (WatermarkStrategy
                .for_bounded_out_of_orderness(self.config.max_out_of_orderness)
                .with_timestamp_assigner(lambda event, _: event[2]))


class GenerateEvents(PTransform):
    """Synthetic ``(key, value, event_time)`` records with a fixed seed.

    ``num_events=None`` generates forever; ``events_per_second`` paces the
    output in processing time (otherwise as fast as possible). The element
    timestamp is ``event_time``; the default watermark trails the largest
    event time by ``max_out_of_orderness``, so ``late_fraction`` of the
    events arrive behind it.
    """

    def __init__(self, num_events: Optional[int] = None, num_keys: int = 1000,
                 events_per_second: Optional[float] = None,
                 events_per_event_second: float = 1000.0, start_time: float = 0.0,
                 max_out_of_orderness: float = 0.0, late_fraction: float = 0.0,
                 late_by: float = 0.0, seed: int = 0, num_splits: int = 1,
                 watermark_strategy: Optional[WatermarkStrategy] = None) -> None:
        super().__init__()
        checks = [(num_events is None or num_events >= 0, "num_events", num_events),
                  (num_keys >= 1, "num_keys", num_keys),
                  (events_per_second is None or events_per_second > 0, "events_per_second",
                   events_per_second),
                  (events_per_event_second > 0, "events_per_event_second",
                   events_per_event_second),
                  (max_out_of_orderness >= 0, "max_out_of_orderness", max_out_of_orderness),
                  (0 <= late_fraction <= 1, "late_fraction", late_fraction),
                  (late_by >= 0, "late_by", late_by), (num_splits >= 1, "num_splits", num_splits)]
        for ok, name, value in checks:
            if not ok:
                raise ValueError(f"GenerateEvents: invalid {name}={value!r}")
        self.config = _GeneratorConfig(num_events, num_keys, events_per_second,
                                       events_per_event_second, start_time,
                                       max_out_of_orderness, late_fraction, late_by, seed,
                                       num_splits)
        self.bounded = num_events is not None and events_per_second is None
        self.watermark_strategy = watermark_strategy

    def expand(self, pbegin: PBegin) -> PCollection:
        return pbegin | Read(GeneratorSource(self.config, self.bounded), self.watermark_strategy)
