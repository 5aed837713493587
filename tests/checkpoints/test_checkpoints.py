"""Aligned-barrier checkpoints on the multiprocess runner, end to end: real workers, real
checkpoint storage (a directory, and S3 on a moto server), both state backends."""
from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from typing import Any, List

import pytest

import headrace as beam
from headrace.io.generator import GenerateEvents, GeneratorSource
from headrace.runners.multiprocess.checkpoint_coordinator import CHECKPOINTS_STEP
from headrace.runners.state.checkpoint_storage import open_checkpoint_storage
from headrace.sdk.io_base import Source, SourceSplit, SplitReader
from headrace.sdk.metrics import MetricsFilter
from headrace.sdk.options import OptionsError
from headrace.sdk.window import FixedWindows
from headrace.testing.test_stream import TestStream
from headrace.testing.util import assert_that, equal_to

NUM_EVENTS = 6000


@pytest.fixture(autouse=True)
def _multiprocess_only(runner):
    if runner != "multiprocess":
        pytest.skip("checkpoints are taken by the multiprocess runner")


def _argv(checkpoint_dir: Any, *extra: str, interval: float = 0.1) -> List[str]:
    return ["--runner=multiprocess", "--parallelism=2", "--quiet",
            f"--checkpoint_dir={checkpoint_dir}", f"--checkpoint_interval={interval}", *extra]


def _events(p: Any, num_events: int = NUM_EVENTS, rate: float = 6000) -> Any:
    # Paced, so that the job lasts about a second and several checkpoints happen meanwhile.
    return p | "Events" >> GenerateEvents(num_events=num_events, num_keys=40,
                                          events_per_second=rate, num_splits=2)


def _windowed_counts(events: Any) -> Any:
    return (events | "Keyed" >> beam.Map(lambda e: (e[0], 1))
            | "Window" >> beam.WindowInto(FixedWindows(0.5))
            | "Group" >> beam.GroupByKey()
            | "Count" >> beam.Map(lambda kv: (kv[0], sum(kv[1])))
            | "Global" >> beam.WindowInto(beam.window.GlobalWindows())
            | "Total" >> beam.CombinePerKey(sum))


def _expected_totals(num_events: int = NUM_EVENTS) -> List[tuple]:
    """Events per key, read from the generator's splits here."""
    source = GeneratorSource(GenerateEvents(num_events=num_events, num_keys=40,
                                            num_splits=2).config, True)
    counts: Counter = Counter()
    for split in source.split(2):
        reader = split.open()
        while (batch := reader.read_batch(1000)) is not None:
            counts.update(event[0] for event in batch)
    return sorted(counts.items())


def _checkpoint_metrics(result: Any) -> dict:
    query = result.metrics().query(MetricsFilter().with_namespace("headrace"))
    out = {}
    for kind in ("counters", "distributions", "gauges"):
        for r in query[kind]:
            if r.key.step == CHECKPOINTS_STEP:
                out[r.key.metric.name] = r.committed
    return out


@pytest.mark.parametrize("backend", ["memory", "rocksdb"])
def test_checkpoints_complete_during_a_streaming_job(storage_url, backend, caplog):
    caplog.set_level(logging.DEBUG, logger="headrace.runners.multiprocess")
    expected = _expected_totals()
    p = beam.Pipeline(argv=_argv(storage_url, f"--state_backend={backend}", "--job_name=counts"))
    assert_that(_windowed_counts(_events(p)), equal_to(expected))
    result = p.run()
    figures = _checkpoint_metrics(result)
    assert figures["checkpoints_completed"] >= 2
    assert figures["checkpoint_size_bytes"].count == figures["checkpoints_completed"]
    assert figures["checkpoint_sync_pause_ms"].count == 2 * figures["checkpoints_completed"]
    assert any("checkpoint" in r.message and "complete" in r.message for r in caplog.records)
    with open_checkpoint_storage(storage_url) as storage:
        ids = storage.checkpoint_ids()
        assert len(ids) == min(3, figures["checkpoints_completed"])  # --checkpoints_retained
        assert figures["last_checkpoint_id"].value == ids[-1]
        latest = storage.latest()
    assert latest.job_id == "counts"
    assert latest.properties == {"parallelism": 2, "max_parallelism": 128}
    labels = ["Events/Read(Generator(6000))", "Keyed", "Window", "Group", "Count", "Global",
              "Total"]
    assert set(labels) <= set(latest.operators)
    for op, tasks in latest.operators.items():
        assert [t.subtask_index for t in tasks] == [0, 1], op
    # The final checkpoint: every split read to its end.
    sources = latest.operators["Events/Read(Generator(6000))"]
    assert [t.position["splits"] for t in sources] == [
        [{"index": 0, "id": None, "position": None, "finished": True}],
        [{"index": 1, "id": None, "position": None, "finished": True}]]
    grouped = latest.task("Group", 0)
    # (the suite may force one backend for every job: HEADRACE_TEST_STATE_BACKEND)
    assert grouped.info["keyed_format"] == (os.environ.get("HEADRACE_TEST_STATE_BACKEND")
                                            or backend)
    assert grouped.info["key_groups"] == [0, 64]
    assert latest.task("Total", 1).info == {}  # the fast path: its tables are operator state
    assert "operator-state.pkl" in latest.task("Total", 1).files


def test_metadata_records_source_positions_mid_stream(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    with beam.Pipeline(argv=_argv(checkpoints, "--checkpoints_retained=50")) as p:
        _ = _events(p, 6000, rate=4000) | "Identity" >> beam.Map(lambda e: e)
    with open_checkpoint_storage(checkpoints) as storage:
        metas = storage.list_checkpoints()
    assert len(metas) >= 3
    for subtask in (0, 1):
        positions = [m.task("Events/Read(Generator(6000))", subtask).position["splits"][0]
                     for m in metas]
        assert all(p["index"] == subtask for p in positions)
        read = [p["position"] if not p["finished"] else 3000 for p in positions]
        assert read == sorted(read) and read[-1] == 3000
        assert any(0 < n < 3000 for n in read)  # taken while the split was being read
    document = json.loads((checkpoints / f"chk-{metas[-1].checkpoint_id}" / "_metadata")
                          .read_text())
    assert set(document["operators"]["Identity"]) == {"0", "1"}


def test_rocksdb_checkpoints_are_incremental(tmp_path):
    checkpoints = tmp_path / "checkpoints"

    class CountPerKey(beam.DoFn):
        COUNT = beam.transforms.userstate.CombiningValueStateSpec("count", sum)

        def process(self, element, count=beam.DoFn.StateParam(COUNT)):
            count.add(1)

    with beam.Pipeline(argv=_argv(checkpoints, "--state_backend=rocksdb",
                                  "--checkpoints_retained=50")) as p:
        _ = (_events(p, 12000, rate=8000) | beam.Map(lambda e: (e[0] * 1000 + e[1], 1))
             | "Count" >> beam.ParDo(CountPerKey()))
    with open_checkpoint_storage(checkpoints) as storage:
        metas = storage.list_checkpoints()
    assert len(metas) >= 3
    reused = [ref for m in metas for task in m.operators["Count"] for name, ref in
              task.files.items() if name.endswith(".sst") and ref.checkpoint_id < m.checkpoint_id]
    assert reused, "no later checkpoint referenced an SST file uploaded by an earlier one"
    assert all(ref.key.startswith("shared/") for ref in reused)
    assert any(m.incremental_size < m.total_size for m in metas[1:])


def test_a_checkpoint_that_times_out_is_aborted_and_the_next_completes(tmp_path, caplog):
    checkpoints = tmp_path / "checkpoints"

    def stall_once(e):
        if e[0] == 0 and e[1] < 5.0 and not stall_once.done:  # a few events, one stall each
            stall_once.done = True
            time.sleep(1.5)
        return e

    stall_once.done = False
    with beam.Pipeline(argv=_argv(checkpoints, "--checkpoint_timeout=0.5",
                                  "--checkpoints_retained=50")) as p:
        _ = _events(p, 6000, rate=3000) | beam.Map(stall_once)
    result = p.result
    figures = _checkpoint_metrics(result)
    assert figures["checkpoints_aborted"] >= 1
    assert figures["checkpoints_completed"] >= 1
    assert any("aborted" in r.message and "--checkpoint_timeout" in r.message
               for r in caplog.records)
    with open_checkpoint_storage(checkpoints) as storage:
        complete = storage.checkpoint_ids()
    aborted_ids = {int(r.message.split()[1]) for r in caplog.records if "aborted" in r.message}
    assert not aborted_ids & set(complete)
    assert max(complete) > min(aborted_ids)  # a later one completed
    assert not [p for p in checkpoints.iterdir() if p.name.startswith("chk-")
                and int(p.name[4:]) in aborted_ids]  # discarded


class _RecordingSplit(SourceSplit):
    def __init__(self, log: str, index: int, count: int) -> None:
        self.log, self.index, self.count = log, index, count

    def open(self, position: Any = None) -> SplitReader:
        return _RecordingReader(self, position or 0)


class _RecordingReader(SplitReader):
    """Reads numbers slowly; records the positions checkpoints confirm."""

    def __init__(self, split: _RecordingSplit, position: int) -> None:
        self.split, self.next = split, position

    def read_batch(self, max_records: int) -> Any:
        if self.next >= self.split.count:
            return None
        time.sleep(0.01)
        batch = list(range(self.next, min(self.next + 20, self.split.count)))
        self.next += len(batch)
        return batch

    def position(self) -> int:
        return self.next

    def notify_checkpoint_complete(self, position: int) -> None:
        with open(self.split.log, "a") as f:
            f.write(f"{self.split.index} {position}\n")


class _RecordingSource(Source):
    def __init__(self, log: str, count: int) -> None:
        self.log, self.count = log, count

    def split(self, desired_num_splits: int) -> List[SourceSplit]:
        return [_RecordingSplit(self.log, i, self.count) for i in range(2)]


def test_completed_checkpoints_are_notified_to_sources(tmp_path):
    log = tmp_path / "notified.txt"
    checkpoints = tmp_path / "checkpoints"
    with beam.Pipeline(argv=_argv(checkpoints, "--checkpoints_retained=50")) as p:
        numbers = p | beam.io.Read(_RecordingSource(str(log), 1000))
        assert_that(numbers | beam.combiners.Count.Globally(), equal_to([2000]))
    notified = [tuple(map(int, line.split())) for line in log.read_text().splitlines()]
    with open_checkpoint_storage(checkpoints) as storage:
        metas = storage.list_checkpoints()
    for split in (0, 1):
        positions = [pos for index, pos in notified if index == split]
        assert positions and positions == sorted(positions)
        stored = {m.task("Read(_RecordingSource)", split).position["splits"][0]["position"]
                  for m in metas}
        assert set(positions) <= stored  # each notified position is one a checkpoint stored


class _PassThrough(beam.DoFn):
    """A stateful DoFn (so its input crosses a key exchange) that counts and passes on."""

    SEEN = beam.transforms.userstate.CombiningValueStateSpec("seen", sum)

    def process(self, kv, seen=beam.DoFn.StateParam(SEEN)):
        seen.add(1)
        yield kv


def test_two_inputs_from_two_workers_align(tmp_path):
    """A Flatten of a local input and one behind a key exchange (whose gate aligns the two
    workers' channels), into a keyed combine: each Flatten holds its first input back until
    the barrier comes through the exchange. A job restarted from a mid-stream checkpoint
    then finishes with exact totals, which it cannot if a snapshot mixed records from
    before and after a barrier."""
    checkpoints = tmp_path / "checkpoints"
    expected = _expected_totals(4000)

    def pipeline(p: Any) -> None:
        first = p | "First" >> GenerateEvents(num_events=4000, num_keys=40,
                                              events_per_second=4000, num_splits=2)
        second = p | "Second" >> GenerateEvents(num_events=4000, num_keys=40,
                                                events_per_second=8000, num_splits=2)
        local = first | "Ones" >> beam.Map(lambda e: (e[0], 1))
        exchanged = (second | "Keyed" >> beam.Map(lambda e: (e[0], 1))
                     | "PassThrough" >> beam.ParDo(_PassThrough()))
        counts = (local, exchanged) | beam.Flatten() | beam.CombinePerKey(sum)
        assert_that(counts, equal_to([(k, 2 * n) for k, n in expected]))

    argv = _argv(checkpoints, "--checkpoints_retained=50", interval=0.05)
    with beam.Pipeline(argv=argv) as p:
        pipeline(p)
    with open_checkpoint_storage(checkpoints) as storage:
        metas = storage.list_checkpoints()
    assert len(metas) >= 3
    assert all({t.subtask_index for t in m.operators["Flatten"]} == {0, 1} for m in metas)
    middle = [m for m in metas if not all(
        s["finished"] for op in ("First/Read(Generator(4000))", "Second/Read(Generator(4000))")
        for t in m.operators[op] for s in t.position["splits"])]
    assert middle, "no checkpoint was taken mid-stream"
    chosen = middle[len(middle) // 2].checkpoint_id
    with beam.Pipeline(argv=[*argv, f"--from_checkpoint={checkpoints / f'chk-{chosen}'}"]) as p:
        pipeline(p)


def test_checkpointing_needs_a_checkpoint_dir():
    with pytest.raises(OptionsError, match="--checkpoint_dir"):
        with beam.Pipeline(argv=["--runner=multiprocess", "--parallelism=2", "--quiet",
                                 "--checkpoint_interval=1"]) as p:
            _ = p | beam.Create([1])


def test_test_stream_refuses_checkpointing(tmp_path):
    stream = TestStream().add_elements([1]).advance_watermark_to_infinity()
    with pytest.raises(OptionsError, match="TestStream"):
        with beam.Pipeline(argv=_argv(tmp_path)) as p:
            _ = p | stream


def test_without_checkpointing_nothing_is_written(tmp_path):
    with beam.Pipeline(argv=["--runner=multiprocess", "--parallelism=2", "--quiet",
                             f"--checkpoint_dir={tmp_path / 'c'}"]) as p:
        _ = _events(p, 200, rate=2000) | beam.Map(lambda e: e)
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").rglob("_metadata"))


def test_final_checkpoint_waits_for_the_end_of_every_source(tmp_path):
    """One source ends long before the other: the job goes on checkpointing until both
    have, and its last checkpoint holds both finished."""
    checkpoints = tmp_path / "checkpoints"
    with beam.Pipeline(argv=_argv(checkpoints, "--checkpoints_retained=50")) as p:
        quick = p | "Quick" >> beam.Create(range(10))
        slow = _events(p, 3000, rate=3000) | beam.Map(lambda e: e[0])
        assert_that((quick, slow) | beam.Flatten() | beam.combiners.Count.Globally(),
                    equal_to([3010]))
    with open_checkpoint_storage(checkpoints) as storage:
        metas = storage.list_checkpoints()
    last = metas[-1]
    quick_done = [all(s["finished"] for t in m.operators["Quick/Read(InMemory(10 elements))"]
                      for s in t.position["splits"]) for m in metas]
    slow_done = [all(s["finished"] for t in m.operators["Events/Read(Generator(3000))"]
                     for s in t.position["splits"]) for m in metas]
    assert quick_done[-1] and slow_done[-1]
    assert any(q and not s for q, s in zip(quick_done, slow_done))
    assert last.checkpoint_id == max(m.checkpoint_id for m in metas)




class _FlakyReader(_RecordingReader):
    """Its position cannot be taken once (the second time it is asked)."""

    calls = 0

    def position(self) -> int:
        _FlakyReader.calls += 1
        if _FlakyReader.calls == 2:
            raise OSError("position unavailable")
        return self.next


class _FlakySplit(_RecordingSplit):
    def open(self, position: Any = None) -> SplitReader:
        return _FlakyReader(self, position or 0)


class _FlakySource(_RecordingSource):
    def split(self, desired_num_splits: int) -> List[SourceSplit]:
        return [_FlakySplit(self.log, i, self.count) for i in range(2)]


def test_a_failed_snapshot_declines_the_checkpoint_and_the_job_goes_on(tmp_path, caplog):
    checkpoints = tmp_path / "checkpoints"
    with beam.Pipeline(argv=_argv(checkpoints, "--checkpoints_retained=50")) as p:
        numbers = p | "Flaky" >> beam.io.Read(_FlakySource(str(tmp_path / "log"), 1000))
        assert_that(numbers | beam.combiners.Count.Globally(), equal_to([2000]))
    figures = _checkpoint_metrics(p.result)
    assert figures["checkpoints_aborted"] >= 1 and figures["checkpoints_completed"] >= 1
    reasons = [r.message for r in caplog.records if "aborted" in r.message]
    assert any("could not snapshot 'Flaky'" in m and "position unavailable" in m
               for m in reasons)


@pytest.mark.parametrize("backend", ["memory", "rocksdb"])
@pytest.mark.parametrize("parallelism", [2, 3])
def test_a_job_started_from_a_checkpoint_finishes_the_same(tmp_path, backend, parallelism):
    """Run to the end taking checkpoints; then run again with ``--from_checkpoint`` from a
    mid-stream checkpoint (also at another parallelism): the sources resume from their
    positions and the keyed state (a grouping over the backend, a fast-path combine) is
    restored, so the totals, emitted only at the end, are exact."""
    checkpoints = tmp_path / "checkpoints"
    expected = _expected_totals()

    def pipeline(p: Any) -> None:
        events = _events(p, rate=5000)
        grouped = (events | "Keyed" >> beam.Map(lambda e: (e[0], 1))
                   | "Group" >> beam.GroupByKey()
                   | "Count" >> beam.Map(lambda kv: (kv[0], sum(kv[1]))))
        summed = (events | "Pairs" >> beam.Map(lambda e: (e[0], 1))
                  | "Sum" >> beam.CombinePerKey(sum))
        assert_that(grouped, equal_to(expected), label="Grouped")
        assert_that(summed, equal_to(expected), label="Summed")

    argv = _argv(checkpoints, f"--state_backend={backend}", "--checkpoints_retained=50")
    with beam.Pipeline(argv=argv) as p:
        pipeline(p)
    with open_checkpoint_storage(checkpoints) as storage:
        metas = storage.list_checkpoints()
    middle = [m for m in metas if not all(
        s["finished"] for t in m.operators["Events/Read(Generator(6000))"]
        for s in t.position["splits"])]
    assert middle, "no checkpoint was taken mid-stream"
    chosen = middle[len(middle) // 2].checkpoint_id
    argv = [a for a in argv if not a.startswith("--parallelism")] + [
        f"--parallelism={parallelism}", f"--from_checkpoint={checkpoints / f'chk-{chosen}'}"]
    with beam.Pipeline(argv=argv) as p:
        pipeline(p)
    with open_checkpoint_storage(checkpoints) as storage:
        assert max(storage.checkpoint_ids()) > metas[-1].checkpoint_id  # it went on
