"""The benchmark workloads, written once against the Beam API and once as plain Python loops.

Records are ``(key, value, event_time)``: ``num_keys`` keys, integer values, event times
spread evenly over ``span`` seconds. Each workload has a plain-Python function (the limit
any engine is measured against) and a pipeline builder that takes the SDK module, so the
same code runs on headrace and on Apache Beam.

Event times are multiples of 1/1024 s (about 1 ms): exact in a float, so a window boundary or
a session gap compares the same in the loop's float arithmetic and in an engine's integer
microseconds (however it rounds), and every engine's results can be checked against the
loop's in full: the pipelines end in a fingerprint (count and hash sum) of every
``(key, window start, sum)`` they produce, not just a count.
"""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Tuple

Record = Tuple[int, int, float]
#: Records per generated chunk: the unit a source split (or the loop) generates at once.
CHUNK = 10_000


#: Event times are multiples of 1 / TICKS seconds.
TICKS = 1024


def generate_chunk(index: int, total: int, num_keys: int = 1000,
                   span: int = 1000) -> List[Record]:
    """Chunk ``index`` of ``total`` records: seeded, so every engine sees the same data."""
    rand = random.Random(index).random
    ticks = span * TICKS
    base = index * CHUNK
    return [(int(rand() * num_keys), int(rand() * 100), (base + i) * ticks // total / TICKS)
            for i in range(min(CHUNK, total - base))]


def chunk_indexes(total: int) -> List[int]:
    return list(range(-(-total // CHUNK)))


def records(total: int) -> Iterator[Record]:
    """All ``total`` records, generated chunk by chunk (what the plain loops read)."""
    for index in chunk_indexes(total):
        yield from generate_chunk(index, total)


def source(beam: Any, p: Any, total: int) -> Any:
    """The same records inside a pipeline: chunk numbers, each expanded where it is read."""
    return (p | "Chunks" >> beam.Create(chunk_indexes(total))
            | "Generate" >> beam.FlatMap(generate_chunk, total))


def fingerprint(results: Any) -> Tuple[int, int]:
    """Count and hash sum of ``(key, window start in ticks, sum)`` triples (order-free)."""
    count = total = 0
    for triple in results:
        count += 1
        total += hash(triple)
    return count, total


def _fingerprinted(beam: Any, pcoll: Any, with_start: bool = True) -> Any:
    """Each ``(key, sum)`` with its window's start (or 0), then the fingerprint of them all."""

    class WithWindowStart(beam.DoFn):
        def process(self, kv, window=beam.DoFn.WindowParam):
            start = round(float(window.start) * TICKS) if with_start else 0
            yield hash((kv[0], start, kv[1]))

    class Fingerprint(beam.CombineFn):
        def create_accumulator(self):
            return 0, 0

        def add_input(self, accumulator, element):
            return accumulator[0] + 1, accumulator[1] + element

        def merge_accumulators(self, accumulators):
            counts, totals = zip(*accumulators)
            return sum(counts), sum(totals)

        def extract_output(self, accumulator):
            return accumulator

    return (pcoll
            | "WithWindowStart" >> beam.ParDo(WithWindowStart())
            | "Rewindow" >> beam.WindowInto(beam.window.GlobalWindows())
            | "Fingerprint" >> beam.CombineGlobally(Fingerprint()))


# -- W1: map, filter half, count ---------------------------------------------------------------
def w1_plain(total: int) -> int:
    count = 0
    for key, value, _ in records(total):
        doubled = value * 2 + key
        if doubled % 2 == 0:
            count += 1
    return count


def w1_pipeline(beam: Any, p: Any, total: int) -> Any:
    return (source(beam, p, total)
            | beam.Map(lambda r: r[1] * 2 + r[0])
            | beam.Filter(lambda x: x % 2 == 0)
            | beam.combiners.Count.Globally())


def w1_check(result: List[Any], total: int) -> bool:
    return result == [w1_plain(total)]


# -- W2: 10 s tumbling windows, sum per key and window ------------------------------------------
def w2_plain(total: int) -> Dict[Tuple[int, int], int]:
    sums: Dict[Tuple[int, int], int] = defaultdict(int)
    for key, value, event_time in records(total):
        sums[(key, int(event_time // 10))] += value
    return sums


def _timestamped(beam: Any) -> Callable[[Record], Any]:
    return lambda r: beam.window.TimestampedValue((r[0], r[1]), r[2])


def w2_pipeline(beam: Any, p: Any, total: int) -> Any:
    return _fingerprinted(beam, source(beam, p, total)
                          | beam.Map(_timestamped(beam))
                          | beam.WindowInto(beam.window.FixedWindows(10))
                          | beam.CombinePerKey(sum))


def w2_check(result: List[Any], total: int) -> bool:
    expected = fingerprint((key, window * 10 * TICKS, value)
                           for (key, window), value in w2_plain(total).items())
    return [tuple(r) for r in result] == [expected]


# -- W3: session windows (gap 5 s), sum per key and session --------------------------------------
def w3_plain(total: int) -> List[Tuple[int, float, int]]:
    """``(key, session start, sum)`` of every session."""
    by_key: Dict[int, List[Tuple[float, int]]] = defaultdict(list)
    for key, value, event_time in records(total):
        by_key[key].append((event_time, value))
    sessions = []
    for key, events in by_key.items():
        events.sort()
        end, start, summed = None, 0.0, 0
        for event_time, value in events:
            if end is None or event_time >= end:
                if end is not None:
                    sessions.append((key, start, summed))
                start, summed = event_time, 0
                end = event_time + 5
            else:
                end = max(end, event_time + 5)
            summed += value
        sessions.append((key, start, summed))
    return sessions


def w3_pipeline(beam: Any, p: Any, total: int) -> Any:
    return _fingerprinted(beam, source(beam, p, total)
                          | beam.Map(_timestamped(beam))
                          | beam.WindowInto(beam.window.Sessions(5))
                          | beam.CombinePerKey(sum), with_start=False)


def w3_check(result: List[Any], total: int) -> bool:
    # Sessions start at an element's timestamp, which Apache Beam's coders cut to whole
    # milliseconds (a tick is 0.98 ms): the check is each session's key and sum.
    expected = fingerprint((key, 0, value) for key, _, value in w3_plain(total))
    return [tuple(r) for r in result] == [expected]


# -- W4: W2 through a stateful DoFn with a value state and an event-time timer ------------------
def w4_pipeline(beam: Any, p: Any, total: int) -> Any:
    userstate = beam.transforms.userstate
    timeutil = beam.transforms.timeutil

    class SumPerWindow(beam.DoFn):
        TOTAL = userstate.ReadModifyWriteStateSpec("total", beam.coders.VarIntCoder())
        FLUSH = userstate.TimerSpec("flush", timeutil.TimeDomain.WATERMARK)

        def process(self, kv, window=beam.DoFn.WindowParam,
                    total=beam.DoFn.StateParam(TOTAL), flush=beam.DoFn.TimerParam(FLUSH)):
            current = total.read()
            if current is None:
                flush.set(window.max_timestamp())
                current = 0
            total.write(current + kv[1])

        @userstate.on_timer(FLUSH)
        def on_flush(self, key=beam.DoFn.KeyParam, total=beam.DoFn.StateParam(TOTAL)):
            yield key, total.read()

    return _fingerprinted(beam, source(beam, p, total)
                          | beam.Map(_timestamped(beam))
                          | beam.WindowInto(beam.window.FixedWindows(10))
                          | beam.ParDo(SumPerWindow()))


class Workload(NamedTuple):
    name: str
    description: str
    records: int
    plain: Callable[[int], Any]
    pipeline: Callable[[Any, Any, int], Any]
    check: Callable[[List[Any], int], bool]


def workloads(scale: float) -> List[Workload]:
    """The four workloads at ``scale`` (1.0: 1,000,000 records; 200,000 for sessions)."""
    full, sessions = int(1_000_000 * scale), int(200_000 * scale)
    return [
        Workload("W1", "map, filter half, count", full, w1_plain, w1_pipeline, w1_check),
        Workload("W2", "10 s tumbling windows, sum per key", full, w2_plain, w2_pipeline,
                 w2_check),
        Workload("W3", "sessions (gap 5 s), sum per key", sessions, w3_plain, w3_pipeline,
                 w3_check),
        Workload("W4", "W2 via ValueState + event-time timer", full, w2_plain, w4_pipeline,
                 w2_check),
    ]


# -- backpressure: W1 into a keyed sink that sleeps ---------------------------------------------
#: The slow sink sleeps SINK_PAUSE seconds after every SINK_EVERY records (per subtask):
#: at most 20,000 records/s per subtask, well below what the source produces.
SINK_EVERY, SINK_PAUSE = 100, 0.005


def slow_sink_pipeline(beam: Any, p: Any, total: int) -> Any:
    """W1's kept records through a keyed exchange into a sink that sleeps, then counted.

    The sink sits behind a key exchange (it is a stateful DoFn), so the source runs
    ahead of it only as far as the bounded channels let it: memory must stay flat.
    """
    import time

    userstate = beam.transforms.userstate

    class SleepingSink(beam.DoFn):
        SEEN = userstate.ReadModifyWriteStateSpec("seen", beam.coders.VarIntCoder())

        def setup(self):
            self.written = 0

        def process(self, kv, seen=beam.DoFn.StateParam(SEEN)):
            self.written += 1
            if self.written % SINK_EVERY == 0:
                time.sleep(SINK_PAUSE)
            yield kv[1]

    return (source(beam, p, total)
            | beam.Map(lambda r: r[1] * 2 + r[0])
            | beam.Filter(lambda x: x % 2 == 0)
            | "KeyBySlot" >> beam.Map(lambda x: (x % 64, x))
            | beam.ParDo(SleepingSink())
            | beam.combiners.Count.Globally())


SLOW_SINK = Workload("W1-slow-sink", "W1 into a keyed sink that sleeps", 0, w1_plain,
                     slow_sink_pipeline, w1_check)
