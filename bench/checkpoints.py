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
size it references. Targets: incremental <= 5% of full, sync pause < 50 ms.

``throughput``: W2 of ``bench/run.py`` (10 s tumbling windows, sum per key) on the
multiprocess runner with 2 workers, without checkpoints and with one per second
(``--checkpoint_interval=1``), each run in its own subprocess; the cost is the drop in
records/s. Target: < 15%.
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


_W2_JOB = """
import json, sys, tempfile, time
sys.path.insert(0, {bench!r}); sys.path.insert(1, {repo!r})
import headrace as beam
from workloads import workloads
workload = next(w for w in workloads({scale}) if w.name == "W2")
flags = ["--runner=multiprocess", "--parallelism=2", "--quiet"] + {flags!r}
start = time.perf_counter()
with beam.Pipeline(argv=flags) as p:
    workload.pipeline(beam, p, workload.records)
elapsed = time.perf_counter() - start
print(json.dumps({{"records": workload.records, "seconds": elapsed}}))
"""


def bench_throughput(scale: float, repeats: int) -> Dict[str, float]:
    """Median records/s of W2 without checkpoints and with one per second."""
    bench = str(Path(__file__).resolve().parent)
    repo = str(Path(__file__).resolve().parent.parent)
    rates: Dict[str, List[float]] = {"none": [], "every 1 s": []}
    for _ in range(repeats):
        for name in rates:
            checkpoint_dir = tempfile.mkdtemp(prefix="headrace-bench-w2-")
            flags = [] if name == "none" else [f"--checkpoint_dir={checkpoint_dir}",
                                               "--checkpoint_interval=1"]
            code = _W2_JOB.format(bench=bench, repo=repo, scale=scale, flags=flags)
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  timeout=3600)
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
            if proc.returncode != 0:
                raise SystemExit(f"W2 ({name}) failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            rates[name].append(result["records"] / result["seconds"])
            print(f"W2 checkpoints {name}: {rates[name][-1]:,.0f} records/s", file=sys.stderr)
    return {name: statistics.median(values) for name, values in rates.items()}


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
    if "throughput" in parts:
        rates = bench_throughput(args.scale, args.repeats)
        base, with_checkpoints = rates["none"], rates["every 1 s"]
        print(f"\nW2 (scale {args.scale}), multiprocess 2 workers, median of {args.repeats}:")
        print("| checkpoints | records/s |")
        print("|---|---|")
        for name, rate in rates.items():
            print(f"| {name} | {rate:,.0f} |")
        print(f"\ncost of checkpoints every second: {1 - with_checkpoints / base:.1%}")


if __name__ == "__main__":
    main()
