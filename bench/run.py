"""Time the workloads on plain Python, headrace's runners and Apache Beam, in one run.

    python bench/run.py                      # all workloads and engines, 3 repeats, full size
    python bench/run.py --scale 0.1 --repeats 1 --engines plain,direct

Every (workload, engine, repeat) runs in a fresh subprocess, so peak memory (RSS) is its own
and no engine warms another's caches. Every engine generates the records itself, with the
same seeded generator (``workloads.generate_chunk``), as a job reads its input: the loop
calls it inline, the pipelines expand chunk numbers with ``FlatMap``. The ``generate only``
row is that generation alone, to show its share. The table gives the median records/s and
its ratio to the plain loop measured in the same run, and the CPU seconds the run used (the
driver and its workers, median) with the loop's CPU seconds divided by them: on a shared
machine the wall time also counts waiting for a core, the CPU time does not (nor does it
credit two workers for running at once).

    python bench/run.py --backpressure --engines multiprocess-2    # W1 into a sleeping sink

``--backpressure`` runs W1 into a keyed sink that sleeps (``workloads.SLOW_SINK``) and samples
the resident memory of the driver and its workers every 0.25 s: it must stay flat while
the source waits for the sink.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's headrace
from workloads import SLOW_SINK, records, workloads  # noqa: E402

ENGINES = {
    "plain": "plain Python loop",
    "generate": "generate only (no computation)",
    "direct": "headrace direct",
    "multiprocess-1": "headrace multiprocess, 1 worker",
    "multiprocess-2": "headrace multiprocess, 2 workers",
    "beam": "Apache Beam DirectRunner",
}


def _append(element: Any, path: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(repr(element) + "\n")


def _generate_only(total: int) -> None:
    for _ in records(total):
        pass


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # the process ended
        pass
    return 0.0


def _tree_rss_mb() -> float:
    """Resident memory of this process and its children (the workers), in MB."""
    me = os.getpid()
    total = _rss_mb(me)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:  # the parent pid
                total += _rss_mb(int(entry))
    return total


class RssSampler(threading.Thread):
    """Samples :func:`_tree_rss_mb` every ``interval`` seconds: ``samples`` of (s, MB)."""

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: List[Any] = []
        self.stopped = threading.Event()
        self.start_time = time.perf_counter()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.samples.append((time.perf_counter() - self.start_time, _tree_rss_mb()))


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_one(workload_name: str, engine: str, scale: float) -> Dict[str, Any]:
    if workload_name == SLOW_SINK.name:
        workload = SLOW_SINK._replace(records=int(1_000_000 * scale))
    else:
        workload = next(w for w in workloads(scale) if w.name == workload_name)
    total = workload.records
    sampler = RssSampler() if workload.name == SLOW_SINK.name else None
    if sampler is not None:
        sampler.start()
    if engine in ("plain", "generate"):
        run = workload.plain if engine == "plain" else _generate_only
        cpu = _cpu_seconds()
        start = time.perf_counter()
        run(total)
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu
        ok = True
    else:
        if engine == "beam":
            import apache_beam as sdk
            options = sdk.options.pipeline_options.PipelineOptions(["--runner=DirectRunner"])
        else:
            import headrace as sdk
            runner, _, workers = engine.partition("-")
            flags = [f"--runner={runner}", "--quiet"] + (
                [f"--parallelism={workers}"] if workers else [])
            options = sdk.options.pipeline_options.PipelineOptions(flags)
        out = tempfile.NamedTemporaryFile(suffix=".txt", delete=False).name
        # Made before the clock starts: making it imports the runner (start-up, as the
        # ``import`` of the SDK is), the same for both SDKs.
        pipeline = sdk.Pipeline(options=options)
        cpu = _cpu_seconds()
        start = time.perf_counter()
        with pipeline as p:
            workload.pipeline(sdk, p, total) | sdk.Map(_append, out)
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu  # the workers were waited for: their time is in
        with open(out, encoding="utf-8") as f:
            result = [eval(line) for line in f]  # our own repr of ints
        os.unlink(out)
        ok = workload.check(result, total)
    samples = []
    if sampler is not None:
        sampler.stopped.set()
        sampler.join()
        samples = sampler.samples
    # Workers are children: the largest of them counts too.
    rss_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                 resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return {"seconds": elapsed, "records": workload.records, "ok": ok,
            "max_rss_mb": rss_kb / 1024, "cpu_seconds": cpu, "rss_samples": samples}


def available(engine: str) -> bool:
    if engine.startswith("multiprocess"):
        probe = [sys.executable, "-c", "from headrace.sdk.runner import available_runners as a; "
                 "print('multiprocess' in a())"]
        return subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "True"
    if engine == "beam":
        # Not imported here: a child inherits this process's peak RSS across exec.
        return importlib.util.find_spec("apache_beam") is not None
    return True


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--workloads", default="W1,W2,W3,W4")
    parser.add_argument("--one", nargs=2, metavar=("WORKLOAD", "ENGINE"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--backpressure", action="store_true",
                        help="W1 into a sleeping sink, with memory sampled over time")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.scale)))
        return
    engines = [e for e in args.engines.split(",") if e]
    if args.backpressure:
        backpressure(engines, args)
        return
    rows = []
    for workload in workloads(args.scale):
        if workload.name not in args.workloads.split(","):
            continue
        results: Dict[str, List[Dict[str, Any]]] = {}
        for engine in engines:
            if not available(engine):
                continue
            for _ in range(args.repeats):
                results.setdefault(engine, []).append(_run(workload.name, engine, args.scale))
        plain = statistics.median(r["records"] / r["seconds"] for r in results["plain"])
        plain_cpu = statistics.median(r["cpu_seconds"] for r in results["plain"])
        for engine in engines:
            if engine not in results:
                rows.append((workload.name, workload.records, ENGINES[engine], None, None, None,
                             "not available"))
                continue
            runs = results[engine]
            rate = statistics.median(r["records"] / r["seconds"] for r in runs)
            rss = max(r["max_rss_mb"] for r in runs)
            cpu = statistics.median(r["cpu_seconds"] for r in runs)
            ok = "ok" if all(r["ok"] for r in runs) else "WRONG RESULT"
            rows.append((workload.name, workload.records, ENGINES[engine], rate, rate / plain,
                         cpu, plain_cpu / cpu, rss, ok))
        sys.stdout.flush()
    print(f"\nscale {args.scale}, {args.repeats} repeat(s), medians; "
          "ratio = records/s / plain loop")
    print("| workload | records | engine | records/s | ratio to plain | CPU s | CPU ratio "
          "| peak RSS MB | result |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, count, engine, rate, ratio, cpu, cpu_ratio, rss, ok in rows:
        if rate is None:
            print(f"| {name} | {count:,} | {engine} | - | - | - | - | - | {ok} |")
        else:
            print(f"| {name} | {count:,} | {engine} | {rate:,.0f} | {ratio:.3f} | {cpu:.2f} | "
                  f"{cpu_ratio:.3f} | {rss:,.0f} | {ok} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows))


def _result(proc: subprocess.CompletedProcess) -> Dict[str, Any]:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run(workload: str, engine: str, scale: float) -> Dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--scale", str(scale), "--one", workload,
                           engine], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"{workload} on {engine} failed:\n{proc.stderr[-2000:]}")
    return _result(proc)


def backpressure(engines: List[str], args: argparse.Namespace) -> None:
    """W1 into a sleeping sink: records/s and resident memory over the run, per engine."""
    print(f"\n{SLOW_SINK.name}, scale {args.scale}, {args.repeats} repeat(s): the run with the "
          "median rate; RSS (MB, driver and workers) is the largest sample in each quarter "
          "of the run")
    print("| engine | records | records/s | RSS 1st quarter | 2nd | 3rd | 4th | result |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for engine in engines:
        if engine in ("plain", "generate", "beam") or not available(engine):
            continue
        runs = sorted((_run(SLOW_SINK.name, engine, args.scale) for _ in range(args.repeats)),
                      key=lambda r: r["seconds"])
        run = runs[len(runs) // 2]
        samples = run["rss_samples"]
        quarters = [max((mb for t, mb in samples
                         if q * run["seconds"] / 4 <= t < (q + 1) * run["seconds"] / 4),
                        default=float("nan")) for q in range(4)]
        ok = "ok" if all(r["ok"] for r in runs) else "WRONG RESULT"
        rows.append((engine, run, quarters))
        print(f"| {ENGINES[engine]} | {run['records']:,} | {run['records'] / run['seconds']:,.0f}"
              f" | " + " | ".join(f"{mb:,.0f}" for mb in quarters) + f" | {ok} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
