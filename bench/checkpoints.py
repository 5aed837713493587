"""Checkpoint costs: incremental RocksDB checkpoints of a large keyed state, and the
throughput a job keeps with checkpoints on.

    python bench/checkpoints.py                       # both parts, 1,000,000 keys
    python bench/checkpoints.py --keys 100000 --checkpoints 5 --parts state

``state``: one RocksDB backend holds ``--keys`` keys (a value state each); between
checkpoints ``--change`` of the keys (1%) get a new value. Each checkpoint is taken as the
runtime takes it: a synchronous ``snapshot()`` (the pause the operator sees), then, off
the processing path, materialize, upload to checkpoint storage (a local directory;
``--checkpoint_dir`` for another, e.g. s3://) with the task's previous handle so that
unchanged SST files are referenced, and commit. Reported per checkpoint: sync pause,
total duration, bytes uploaded (the checkpoint's incremental size) and the full state
size it references. Targets: incremental <= 5% of full, sync pause < 50 ms. The pause is
also split into its steps (memtable flush, native checkpoint of hard links, metadata).

``throughput``: W2 of ``bench/run.py`` (10 s tumbling windows, sum per key) on the
multiprocess runner with 2 workers, without checkpoints and with one per second
(``--checkpoint_interval=1``), each run in its own subprocess; the cost is the drop in
records/s. Target: < 15%. The same computation over GenerateEvents is measured too,
because W2's own source hands the whole input over in one batch (see THROUGHPUT_JOBS),
so few checkpoints complete during it; the table says how many did.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's headrace


def _key(i: int) -> bytes:
    return b"user-%09d" % i


def bench_state(keys: int, checkpoints: int, change: float, checkpoint_dir: Optional[str],
                seed: int = 7) -> List[Dict[str, Any]]:
    """Run the incremental-checkpoint measurement; one dict per checkpoint."""
    from headrace.runners.state.checkpoint_storage import (
        CheckpointMetadata,
        open_checkpoint_storage,
    )
    from headrace.runners.state.rocksdb import RocksDBStateBackend

    work = Path(tempfile.mkdtemp(prefix="headrace-bench-checkpoints-"))
    rng = random.Random(seed)
    backend = RocksDBStateBackend(state_dir=str(work / "state"), name="bench")
    storage = open_checkpoint_storage(checkpoint_dir or str(work / "checkpoints"), retained=2)
    rows = []
    try:
        start = time.perf_counter()
        for i in range(keys):
            backend.put_value("count", _key(i), None, i)
        print(f"loaded {keys:,} keys in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        previous = None
        for n in range(1, checkpoints + 1):
            if n > 1:
                for i in rng.sample(range(keys), int(keys * change)):
                    backend.put_value("count", _key(i), None, -i - n)
            started = time.perf_counter()
            snapshot = backend.snapshot()
            paused = time.perf_counter() - started
            directory = work / f"snapshot-{n}"
            files = snapshot.materialize(str(directory))
            shared = {f.name: directory / f.name for f in files if f.shared}
            private = {f.name: directory / f.name for f in files if not f.shared}
            private["manifest.json"] = directory / "manifest.json"
            handle = storage.upload_task_state(n, "Count", 0, shared_files=shared,
                                               private_files=private, previous=previous).result()
            metadata = CheckpointMetadata(n, [handle], job_id="bench-checkpoints")
            storage.commit(metadata)
            duration = time.perf_counter() - started
            snapshot.release()
            shutil.rmtree(directory)
            previous = handle
            rows.append({"checkpoint": n, "sync_pause_ms": paused * 1000,
                         **{f"{step}_ms": seconds * 1000
                            for step, seconds in snapshot.timings.items()},
                         "duration_ms": duration * 1000,
                         "uploaded_bytes": metadata.incremental_size,
                         "full_bytes": metadata.total_size,
                         "incremental_share": metadata.incremental_size / metadata.total_size})
            print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        backend.close()
        storage.close()
        shutil.rmtree(work, ignore_errors=True)
    return rows


_JOB = """
import json, logging, re, sys, time
sys.path.insert(0, {bench!r}); sys.path.insert(1, {repo!r})
import headrace as beam
from headrace.io.generator import GenerateEvents
from workloads import workloads
durations, pauses = [], []


class Collect(logging.Handler):
    def emit(self, record):
        text = record.getMessage()
        found = re.search(r"complete(?: \\(final\\))? in ([0-9.]+)s: sync pause per subtask "
                          r"(\\{{[^}}]*\\}})", text)
        if found and "(final)" not in text:
            durations.append(float(found.group(1)))
            pauses.extend(eval(found.group(2)).values())


logger = logging.getLogger("headrace.runners.multiprocess.checkpoint_coordinator")
logger.setLevel(logging.DEBUG)
logger.addHandler(Collect())
workload = next(w for w in workloads({scale}) if w.name == "W2")
flags = ["--runner=multiprocess", "--parallelism=2", "--quiet"] + {flags!r}
start = time.perf_counter()
with beam.Pipeline(argv=flags) as p:
    if {generated!r}:
        (p | GenerateEvents(num_events=workload.records, num_keys=1000, num_splits=2,
                            events_per_event_second=1000)
         | beam.Map(lambda e: (e[0], int(e[1])))
         | beam.WindowInto(beam.window.FixedWindows(10)) | beam.CombinePerKey(sum)
         | "Rewindow" >> beam.WindowInto(beam.window.GlobalWindows())
         | beam.combiners.Count.Globally())
    else:
        workload.pipeline(beam, p, workload.records)
elapsed = time.perf_counter() - start
print(json.dumps({{"records": workload.records, "seconds": elapsed, "durations": durations,
                  "pauses_ms": pauses}}))
"""

#: The jobs measured: bench/run.py's W2 (its source is one Create of 100 chunk numbers, each
#: expanded by a FlatMap: the whole input is one source batch, so a barrier can only follow
#: it), and the same computation over GenerateEvents, whose batches let barriers through.
THROUGHPUT_JOBS = {"W2 (bench/run.py)": False, "W2 over GenerateEvents": True}


def bench_throughput(scale: float, repeats: int) -> List[Dict[str, Any]]:
    """Median records/s without checkpoints and with one per second, per job, with the
    checkpoints that completed during the run (their duration and sync pauses)."""
    bench = str(Path(__file__).resolve().parent)
    repo = str(Path(__file__).resolve().parent.parent)
    rows = []
    for job, generated in THROUGHPUT_JOBS.items():
        runs: Dict[str, List[Dict[str, Any]]] = {"none": [], "every 1 s": []}
        for _ in range(repeats):
            for name in runs:
                checkpoint_dir = tempfile.mkdtemp(prefix="headrace-bench-w2-")
                flags = [] if name == "none" else [f"--checkpoint_dir={checkpoint_dir}",
                                                   "--checkpoint_interval=1"]
                code = _JOB.format(bench=bench, repo=repo, scale=scale, flags=flags,
                                   generated=generated)
                proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                      text=True, timeout=3600)
                shutil.rmtree(checkpoint_dir, ignore_errors=True)
                if proc.returncode != 0:
                    raise SystemExit(f"{job} ({name}) failed:\n{proc.stderr[-3000:]}")
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                runs[name].append(result)
                print(f"{job}, checkpoints {name}: {result['records'] / result['seconds']:,.0f} "
                      f"records/s, {len(result['durations'])} checkpoints", file=sys.stderr)
        for name, results in runs.items():
            durations = [d for r in results for d in r["durations"]]
            pauses = [p for r in results for p in r["pauses_ms"]]
            rows.append({"job": job, "checkpoints": name,
                         "rate": statistics.median(r["records"] / r["seconds"] for r in results),
                         "completed": statistics.median(len(r["durations"]) for r in results),
                         "duration_ms": statistics.median(durations) * 1000 if durations else None,
                         "sync_pause_ms": statistics.median(pauses) if pauses else None})
    return rows


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="state,throughput")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--change", type=float, default=0.01)
    parser.add_argument("--checkpoint_dir", default=None)
    parser.add_argument("--scale", type=float, default=1.0, help="W2's size (as bench/run.py)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    if "state" in parts:
        rows = bench_state(args.keys, args.checkpoints, args.change, args.checkpoint_dir)
        later = rows[1:] or rows
        print(f"\nRocksDB, {args.keys:,} keys, {args.change:.0%} changed between checkpoints "
              f"({len(rows)} checkpoints; the first uploads everything)")
        print("| checkpoint | sync pause ms | duration ms | uploaded | full state | share |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            print(f"| {row['checkpoint']} | {row['sync_pause_ms']:.1f} | "
                  f"{row['duration_ms']:.0f} | {row['uploaded_bytes']:,} | "
                  f"{row['full_bytes']:,} | {row['incremental_share']:.1%} |")
        print(f"\nafter the first: median sync pause "
              f"{statistics.median(r['sync_pause_ms'] for r in later):.1f} ms (max "
              f"{max(r['sync_pause_ms'] for r in later):.1f}), median upload share "
              f"{statistics.median(r['incremental_share'] for r in later):.1%} (max "
              f"{max(r['incremental_share'] for r in later):.1%}), median duration "
              f"{statistics.median(r['duration_ms'] for r in later):.0f} ms")
        steps = [key for key in later[0] if key.endswith("_ms") and key not in
                 ("sync_pause_ms", "duration_ms")]
        print("sync pause by step, median (max) ms: " + ", ".join(
            f"{key[:-3]} {statistics.median(r[key] for r in later):.1f} "
            f"({max(r[key] for r in later):.1f})" for key in steps))
    if "throughput" in parts:
        rows = bench_throughput(args.scale, args.repeats)
        print(f"\nW2 (scale {args.scale}: {int(1_000_000 * args.scale):,} records), multiprocess, "
              f"2 workers, median of {args.repeats}; checkpoints = those completed before the "
              "final one (median per run)")
        print("| job | checkpoints | records/s | cost | completed | duration ms | sync pause ms |")
        print("|---|---|---|---|---|---|---|")
        base = {}
        for row in rows:
            base.setdefault(row["job"], row["rate"])
            cost = 1 - row["rate"] / base[row["job"]]
            print(f"| {row['job']} | {row['checkpoints']} | {row['rate']:,.0f} | {cost:.1%} | "
                  f"{row['completed']:g} | {_figure(row['duration_ms'])} | "
                  f"{_figure(row['sync_pause_ms'])} |")


def _figure(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.0f}"

if __name__ == "__main__":
    main()
