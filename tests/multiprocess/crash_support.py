"""Crash tests' harness: a keyed, windowed, stateful job in a driver subprocess, killed
(SIGKILL, real worker processes) at random moments and at named points of the checkpoint
protocol (``runners/engine/crash_points.py``), and its published output read back.

The job reads the replayable GenerateEvents source (bounded by a count, paced so that a
run lasts long enough to be killed), sums integer values per key and one-second event-time
window (CombinePerKey), counts events per key in user state (a stateful DoFn, so keyed
state lives in the state backend), and writes both to the exactly-once file sink.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import headrace as beam
from headrace.testing.processes import live_children

REPO = os.path.dirname(os.path.dirname(os.path.abspath(beam.__file__)))

JOB = textwrap.dedent("""\
    # {marker}
    import json, logging, sys
    import headrace as beam
    from headrace.io.generator import GenerateEvents
    from headrace.transforms import userstate, window

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    config = json.loads(sys.argv[1])


    class CountPerKey(beam.DoFn):
        COUNT = userstate.ReadModifyWriteStateSpec("count", beam.coders.VarIntCoder())

        def process(self, kv, count=beam.DoFn.StateParam(COUNT)):
            n = (count.read() or 0) + 1
            count.write(n)
            yield f"count,{{kv[0]}},{{n}}"


    with beam.Pipeline(argv=config["argv"]) as p:
        events = p | "Events" >> GenerateEvents(
            num_events=config["events"], num_keys=config["keys"], num_splits=4, seed=11,
            events_per_second=config["rate"], events_per_event_second=1000)
        keyed = events | "Keyed" >> beam.Map(lambda e: (e[0], int(e[1] * 1000)))
        sums = (keyed | "Windows" >> beam.WindowInto(window.FixedWindows(1))
                | "Sum" >> beam.CombinePerKey(sum)
                | "FormatSums" >> beam.Map(
                    lambda kv, w=beam.DoFn.WindowParam: f"sum,{{kv[0]}},{{w.start}},{{kv[1]}}")
                | "Global" >> beam.WindowInto(window.GlobalWindows()))
        counts = keyed | "Count" >> beam.ParDo(CountPerKey())
        ((sums, counts) | "Both" >> beam.Flatten()
         | "Out" >> beam.io.WriteToFiles(config["output"], suffix=".txt"))
""")


class CrashJob:
    """One run of the job in its own session (so that nothing it forks can outlive it)."""

    def __init__(self, workdir: Path, *, events: int, rate: Optional[float], keys: int = 200,
                 parallelism: int = 2, state_backend: str = "memory",
                 checkpoint_dir: Optional[str] = None, interval: float = 0.2,
                 pause_at: Sequence[str] = (), pause_seconds: float = 1.0,
                 extra_argv: Sequence[str] = (), output: Optional[str] = None) -> None:
        self.marker = f"headrace-crash-test-{uuid.uuid4().hex}"
        self.parallelism = parallelism
        self.workdir = workdir
        self.output = output or str(workdir / "out")
        self.pause_dir = workdir / "pauses"
        self.pause_dir.mkdir(parents=True, exist_ok=True)
        argv = ["--runner=multiprocess", f"--parallelism={parallelism}", "--quiet",
                f"--state_backend={state_backend}", "--restart_delay=0.05",
                f"--state_dir={workdir / 'state'}", *extra_argv]
        if checkpoint_dir is not None:
            argv += [f"--checkpoint_dir={checkpoint_dir}", f"--checkpoint_interval={interval}"]
        self.config = {"argv": argv, "events": events, "keys": keys, "rate": rate,
                       "output": self.output}
        script = workdir / "job.py"
        script.write_text(JOB.format(marker=self.marker))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [REPO] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        if pause_at:
            env.update(HEADRACE_TEST_PAUSE_AT=",".join(pause_at), HEADRACE_TEST_PAUSE_EVERY="3",
                       HEADRACE_TEST_PAUSE_DIR=str(self.pause_dir),
                       HEADRACE_TEST_PAUSE_SECONDS=str(pause_seconds))
        self.log = open(workdir / "driver.log", "wb")
        self.process = subprocess.Popen([sys.executable, str(script), json.dumps(self.config)],
                                        stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)

    def workers(self) -> List[int]:
        """The live worker processes (the driver's children running Python)."""
        return live_children(self.process.pid)

    def running(self) -> bool:
        return self.process.poll() is None

    def driver_log(self) -> str:
        self.log.flush()
        return (self.workdir / "driver.log").read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            raise AssertionError(f"the job did not end within {timeout} s; log:\n"
                                 + self.driver_log()[-4000:]) from None

    def kill_all(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        for pid in self.leftovers():
            os.kill(pid, signal.SIGKILL)

    def leftovers(self) -> List[int]:
        """Processes still alive whose command line carries this job's marker."""
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmdline = f.read()
                with open(f"/proc/{name}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if self.marker.encode() in cmdline and state not in ("Z", "X"):
                found.append(int(name))
        return found

    def close(self) -> None:
        self.kill_all()
        self.log.close()


def published_lines(output: str) -> List[bytes]:
    """Every line the sink published, sorted: the run's output as a multiset."""
    from headrace.io.fileio import read_parts

    lines: List[bytes] = []
    for data in read_parts(output, suffix=".txt").values():
        lines += data.splitlines()
    return sorted(lines)


def kill_randomly(job: CrashJob, kills: int, rng: random.Random, *, min_gap: float,
                  max_gap: float, pause_points: Sequence[str], deadline: float) -> Dict[str, int]:
    """SIGKILL a random worker of ``job`` ``kills`` times, each a random gap after a full set
    of workers is up (so that the restarted job runs and checkpoints a while); with
    ``pause_points``, every other kill happens where a process announced that it paused at
    the next of those named checkpoint points in turn (announced after that gap): the
    paused worker, or a random worker when the coordinator paused. Returns kills by kind."""
    done: Dict[str, int] = {}
    at_points = 0
    while sum(done.values()) < kills and job.running() and time.monotonic() < deadline:
        workers = job.workers()
        if len(workers) < job.parallelism:
            time.sleep(0.02)
            continue
        gap = rng.uniform(min_gap, max_gap)
        if pause_points and sum(done.values()) % 2 == 1:
            point = pause_points[at_points % len(pause_points)]
            pid = _pause_after(job, point, time.time() + gap, deadline)
            if pid is None:
                continue
            at_points += 1
            workers = job.workers()
            victim = pid if pid in workers else rng.choice(workers or [pid])
            kind = f"at {point}"
        else:
            time.sleep(gap)
            workers = job.workers()
            if len(workers) < job.parallelism:
                continue
            victim, kind = rng.choice(workers), "random"
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            continue
        done[kind] = done.get(kind, 0) + 1
        _wait_replaced(job, victim, deadline)
    return done


def _pause_after(job: CrashJob, point: str, since: float, deadline: float) -> Optional[int]:
    """The process that announced a pause at ``point`` at or after ``since`` (wall clock)."""
    while time.monotonic() < deadline and job.running():
        if time.time() >= since:
            for name in sorted(os.listdir(job.pause_dir)):
                path = job.pause_dir / name
                try:
                    announced = path.stat().st_mtime
                    path.unlink()
                except OSError:
                    continue
                named, pid, _ = name.split(".")
                if named == point and announced >= since:
                    return int(pid)
        time.sleep(0.01)
    return None


def _wait_replaced(job: CrashJob, victim: int, deadline: float) -> None:
    """Until the killed worker is gone and a full set of new workers runs (or the job ended)."""
    while job.running() and time.monotonic() < deadline:
        workers = job.workers()
        if victim not in workers and len(workers) >= job.parallelism:
            return
        time.sleep(0.02)
