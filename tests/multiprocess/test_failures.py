"""The multiprocess runner under failure, with real processes and real signals (no mocks).

Each test checks that no process is left behind: no child of the test process
outlives it (the autouse fixture below), and where the job runs in a
subprocess, no process whose command line carries the job's marker survives
(forked workers inherit the driver's command line, marker included).

Process facts come from /proc (psutil is not a dependency). Every wait is
bounded; a job that would not end is ended by killing its workers.
"""
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import uuid

import pytest

import headrace as beam
from headrace.io.generator import GenerateEvents
from headrace.runners.multiprocess.coordinator import WorkerFailed
from headrace.runners.state.base.key_groups import DEFAULT_MAX_PARALLELISM, key_group_for
from headrace.sdk.coders import encode_key
from headrace.sdk.metrics import SYSTEM_NAMESPACE, MetricsFilter
from headrace.testing.util import assert_that, equal_to
from headrace.transforms import userstate

pytestmark = pytest.mark.no_pipeline

ARGV = ["--runner=multiprocess", "--parallelism=2", "--quiet"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(beam.__file__)))
#: How long a failing job may take to fail; generous for a loaded 2-core machine.
PROMPT = 10.0


# ----------------------------------------------------------------------------------- /proc


def _status(pid):
    """/proc/PID/status as a dict, or None once the process is gone (reaped)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def _pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _alive(pid):
    """Running or sleeping: not gone, not a zombie (a zombie runs nothing and holds no memory)."""
    status = _status(pid)
    return status is not None and status.get("State", "X")[:1] not in ("Z", "X")


def _children(parent):
    """Every process forked by ``parent`` (running this Python, not an exec'd helper such as
    the session's Kafka broker), zombies included (nobody reaped them)."""
    found = []
    python = os.path.realpath(sys.executable)
    for pid in _pids():
        status = _status(pid)
        if status is not None and status.get("PPid") == str(parent):
            try:
                if os.readlink(f"/proc/{pid}/exe") != python:
                    continue
            except OSError:  # a zombie has no executable any more
                pass
            found.append(pid)
    return sorted(found)


def _marked(marker):
    """Live processes (other than this one) whose command line contains ``marker``."""
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if marker.encode() in cmdline and _alive(pid):
            found.append(pid)
    return found


def _rss_kb(pid):
    status = _status(pid)
    if status is None or "VmRSS" not in status:
        return None
    return int(status["VmRSS"].split()[0])


def _kill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_for(predicate, timeout, what):
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def no_process_left_behind():
    """Fail the test if any child of this process started during it still exists."""
    before = set(_children(os.getpid()))
    yield
    left = [pid for pid in _children(os.getpid()) if pid not in before]
    described = {pid: (_status(pid) or {}).get("State") for pid in left}
    _kill(left)
    assert not left, f"processes left behind by the job (pid: state): {described}"


# ----------------------------------------------------------------------------- helpers


class PipelineThread(threading.Thread):
    """Runs a pipeline on the multiprocess runner; records its error and when it ended."""

    def __init__(self, build, extra_argv=()):
        super().__init__(daemon=True, name="pipeline-under-test")
        self.build = build
        self.argv = ARGV + list(extra_argv)
        self.error = None
        self.ended_at = None

    def run(self):
        try:
            with beam.Pipeline(argv=self.argv) as p:
                self.build(p)
        except BaseException as exc:  # handed to the test thread
            self.error = exc
        finally:
            self.ended_at = time.monotonic()

    def finish(self, timeout):
        """Wait for the job to end; if it does not, kill its workers (so it ends) and fail."""
        self.join(timeout)
        if self.is_alive():
            self.abort()
            pytest.fail(f"the job did not end within {timeout} s; its workers were killed")
        return self.error

    def abort(self):
        """End the job the hard way: its workers die, so the coordinator raises and returns."""
        _kill(_children(os.getpid()))
        self.join(10)


class MarkStarted(beam.DoFn):
    """Passes elements through; on its first element a worker creates ``directory/<pid>``.

    A test waits for these files to know that every worker is running the job.
    """

    def __init__(self, directory):
        self.directory = str(directory)

    def setup(self):
        self.marked = False

    def process(self, element):
        if not self.marked:
            self.marked = True
            open(os.path.join(self.directory, str(os.getpid())), "w").close()
        yield element


def _started_pids(directory):
    return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def endless_events():
    """An unbounded source (paced, so that two of them do not eat a loaded machine)."""
    return GenerateEvents(num_events=None, num_keys=50, events_per_second=4000, num_splits=2)


# --------------------------------------------------------------- 1. exceptions in user code


class UserError(Exception):
    pass


def failing_map_fn(event):
    raise UserError(f"user map failed on {event[:2]!r}")


class FailingDoFn(beam.DoFn):
    def process(self, event):
        raise UserError(f"user process failed on {event[:2]!r}")


class FailingCombineFn(beam.CombineFn):
    def create_accumulator(self):
        return 0

    def add_input(self, accumulator, value):
        raise UserError(f"user add_input failed on {value!r}")

    def merge_accumulators(self, accumulators):
        return sum(accumulators)

    def extract_output(self, accumulator):
        return accumulator


USER_FAILURES = {
    "map": (lambda events: events | "UserStep" >> beam.Map(failing_map_fn), "failing_map_fn"),
    "dofn_process": (lambda events: events | "UserStep" >> beam.ParDo(FailingDoFn()), "process"),
    "combinefn": (lambda events: (events | beam.Map(lambda event: (event[0], event[1]))
                                  | "UserStep" >> beam.CombinePerKey(FailingCombineFn())),
                  "add_input"),
}


@pytest.mark.parametrize("case", list(USER_FAILURES))
def test_user_exception_fails_the_job_promptly_with_type_label_and_traceback(case):
    apply_failing_step, function_name = USER_FAILURES[case]
    # The source never ends: only the failure can end this job.
    job = PipelineThread(lambda p: apply_failing_step(p | endless_events()))
    started = time.monotonic()
    job.start()
    error = job.finish(timeout=60)
    elapsed = job.ended_at - started
    print(f"\n[{case}] failed after {elapsed:.2f} s (workers started and torn down)")

    assert isinstance(error, UserError), repr(error)
    assert "user" in str(error) and "failed on" in str(error)
    assert "UserStep" in str(error) + "".join(getattr(error, "__notes__", []))
    frames = traceback.extract_tb(error.__traceback__)
    assert any(f.name == function_name and f.filename == __file__ for f in frames), \
        [(f.filename, f.name) for f in frames]
    assert elapsed < PROMPT


# ----------------------------------------------------- 2. a worker SIGKILLed from outside


@pytest.mark.parametrize("victim", [0, 1], ids=["lower_pid_worker", "higher_pid_worker"])
def test_worker_killed_from_outside_is_detected_within_2s(tmp_path, victim):
    def build(p):
        (p | endless_events() | beam.ParDo(MarkStarted(tmp_path))
           | beam.Map(lambda event: (event[0], 1)) | beam.CombinePerKey(sum))

    job = PipelineThread(build)
    job.start()
    try:
        workers = _wait_for(lambda: len(_started_pids(tmp_path)) == 2 and _started_pids(tmp_path),
                            30, "both workers to process data")
    except BaseException:
        job.abort()
        raise
    assert set(workers) <= set(_children(os.getpid()))
    target = workers[victim]
    survivor = workers[1 - victim]

    killed_at = time.monotonic()
    os.kill(target, signal.SIGKILL)
    error = job.finish(timeout=30)
    latency = job.ended_at - killed_at
    print(f"\n[kill {victim}] WorkerFailed raised {latency * 1000:.0f} ms after SIGKILL")

    assert isinstance(error, WorkerFailed), repr(error)
    message = str(error)
    assert re.search(rf"headrace worker [01] of 2 \(pid {target}\) died unexpectedly "
                     r"\(killed by signal SIGKILL\)", message), message
    assert latency < 2.0
    assert not _alive(survivor), "the surviving worker was not stopped"


def _channel_inodes(pid):
    """The pipes and sockets process ``pid`` holds open."""
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith(("pipe:", "socket:")):
            held.add(target)
    return held


def test_workers_hold_only_their_own_channels(tmp_path):
    """A worker must not keep a peer's pipe open: a peer's death must reach its readers as
    end-of-file and its writers as a broken pipe, which a third holder would prevent."""
    def build(p):
        (p | GenerateEvents(num_events=None, num_keys=50, events_per_second=3000, num_splits=3)
           | beam.ParDo(MarkStarted(tmp_path))
           | beam.Map(lambda event: (event[0], 1)) | beam.CombinePerKey(sum))

    job = PipelineThread(build, ["--parallelism=3"])
    job.start()
    try:
        workers = _wait_for(lambda: len(_started_pids(tmp_path)) == 3 and _started_pids(tmp_path),
                            30, "three workers to process data")
        held = {pid: _channel_inodes(pid) for pid in workers}
        coordinator = _channel_inodes(os.getpid())
    finally:
        job.abort()
    for inode in set().union(*held.values()) - coordinator:
        holders = [pid for pid in workers if inode in held[pid]]
        # A data pipe joins two workers; a control channel joins one worker and the coordinator.
        assert len(holders) <= 2, f"{inode} is open in workers {holders}"
        assert not (inode.startswith("socket:") and len(holders) > 1), \
            f"control channel {inode} is open in workers {holders}"


# ---------------------------------------------------------- scripts run in a subprocess

SCRIPT = textwrap.dedent("""\
    # {marker}
    import os, sys, time
    import headrace as beam
    from headrace.io.generator import GenerateEvents

    started, stuck = sys.argv[1], sys.argv[2] == "stuck"

    class MarkStarted(beam.DoFn):
        def setup(self):
            self.marked = False

        def process(self, event):
            if not self.marked:
                self.marked = True
                open(os.path.join(started, str(os.getpid())), "w").close()
            if stuck:
                time.sleep(600)  # a worker busy in user code: it reads no pipe meanwhile
            yield event

    with beam.Pipeline(argv={argv!r}) as p:
        (p | GenerateEvents(num_events=None, num_keys=50, events_per_second=4000, num_splits=2)
           | beam.ParDo(MarkStarted()) | beam.Map(lambda event: (event[0], 1))
           | beam.CombinePerKey(sum))
""")


@pytest.fixture(params=["flowing", "stuck"])
def driver(request, tmp_path):
    """Starts an endless job in a subprocess (its own session); yields (process, workers, marker).

    Returns once both workers process data: data keeps flowing, or (``stuck``) each worker
    sits in user code after its first element. Whatever happens, kills what is left at the end.
    """
    marker = f"headrace-failure-test-{uuid.uuid4().hex}"
    started = tmp_path / "started"
    started.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(marker=marker, argv=ARGV), str(started),
         request.param],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        def both_running():
            if process.poll() is not None:
                _, err = process.communicate()
                pytest.fail(f"the job ended early ({process.returncode}):\n{err.decode()}")
            workers = _children(process.pid)
            return workers if len(workers) == 2 and _started_pids(started) == workers else None

        workers = _wait_for(both_running, 60, "both workers of the job to process data")
        yield process, workers, marker
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        _kill(_marked(marker))


# ------------------------------------------------------------------------------ 3. Ctrl-C


def test_ctrl_c_stops_the_job_and_its_workers(driver):
    process, workers, marker = driver
    interrupted_at = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    try:
        _, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("the driver did not exit within 10 s of Ctrl-C")
    took = time.monotonic() - interrupted_at
    print(f"\n[Ctrl-C, {process.args[-1]}] driver exited {took * 1000:.0f} ms after SIGINT "
          f"(returncode {process.returncode})")

    stderr = err.decode(errors="replace")
    assert process.returncode != 0
    assert "KeyboardInterrupt" in stderr, stderr
    assert "WorkerFailed" not in stderr, stderr  # the workers ignore SIGINT: none "died"
    assert took < 5.0
    assert not [pid for pid in workers if _alive(pid)]
    assert not _marked(marker)


# --------------------------------------------------------- 4. the driver itself SIGKILLed


def test_workers_die_with_a_killed_driver(driver):
    process, workers, marker = driver
    killed_at = time.monotonic()
    os.kill(process.pid, signal.SIGKILL)  # the driver only; its workers are on their own
    process.wait(timeout=10)
    _wait_for(lambda: not [pid for pid in workers if _alive(pid)], 2.0,
              f"workers {workers} to die with their driver (PR_SET_PDEATHSIG)")
    gone_after = time.monotonic() - killed_at
    print(f"\n[driver SIGKILL, {process.args[-1]}] workers gone {gone_after * 1000:.0f} ms "
          "after the driver was killed")
    assert not _marked(marker)


# ------------------------------------------------------------------------ 5. backpressure

#: 40,000 records of 4 kB: 160 MB that a fast source would pile up in front of a slow consumer.
RECORDS, PAYLOAD = 40_000, 4_000
#: Peak RSS growth allowed per worker with --max_buffered_mb=1: a source batch (1024 records,
#: 4 MB) and its serialized copies, a message in flight, the pipe's contents being decoded.
#: Measured: 12-21 MB. With --max_buffered_mb=1000 instead, the source worker grows by
#: 130-150 MB (nearly everything it produced) and this test fails.
MAX_GROWTH_MB = 50


def _key_on_subtask(subtask, parallelism=2):
    """A key whose key group belongs to ``subtask`` (subtasks own contiguous key-group ranges)."""
    for n in range(1000):
        key = f"k{n}"
        group = key_group_for(encode_key(key), DEFAULT_MAX_PARALLELISM)
        if group * parallelism // DEFAULT_MAX_PARALLELISM == subtask:
            return key
    raise AssertionError("no key found")


class SlowConsumer(beam.DoFn):
    """Keyed (it has state), so it runs after a key exchange; sleeps 1 ms every 50 records."""

    SEEN = userstate.CombiningValueStateSpec("seen", sum)

    def __init__(self, directory):
        self.directory = str(directory)

    def setup(self):
        self.marked = False

    def process(self, kv, seen=beam.DoFn.StateParam(SEEN)):
        if not self.marked:
            self.marked = True
            open(os.path.join(self.directory, f"consumer-{os.getpid()}"), "w").close()
        seen.add(1)
        if seen.read() % 50 == 0:
            time.sleep(0.001)
        yield len(kv[1])


class Produce(beam.DoFn):
    """Turns an event into a (key, 4 kB) record; notes which worker produces."""

    def __init__(self, directory, key):
        self.directory = str(directory)
        self.key = key

    def setup(self):
        self.marked = False

    def process(self, event):
        if not self.marked:
            self.marked = True
            open(os.path.join(self.directory, f"source-{os.getpid()}"), "w").close()
        yield self.key, bytes(PAYLOAD)


def test_backpressure_bounds_worker_memory(tmp_path):
    # One split: the source runs on worker 0 only; every record's key belongs to worker 1,
    # so all 200 MB cross the pipe to a consumer that takes a few seconds to drain it.
    key = _key_on_subtask(1)

    def build(p):
        sizes = (p | GenerateEvents(num_events=RECORDS, num_splits=1)
                 | "Produce" >> beam.ParDo(Produce(tmp_path, key))
                 | "Slow" >> beam.ParDo(SlowConsumer(tmp_path))
                 | beam.CombineGlobally(sum))
        assert_that(sizes, equal_to([RECORDS * PAYLOAD]))

    baseline, peak = {}, {}
    job = PipelineThread(build, ["--max_buffered_mb=1"])
    started = time.monotonic()
    job.start()
    while job.is_alive() and time.monotonic() - started < 60:
        for pid in _children(os.getpid()):
            rss = _rss_kb(pid)
            if rss is not None:
                baseline.setdefault(pid, rss)
                peak[pid] = max(peak.get(pid, 0), rss)
        time.sleep(0.02)
    error = job.finish(timeout=0.1)
    elapsed = time.monotonic() - started
    growth_mb = {pid: (peak[pid] - baseline[pid]) / 1024 for pid in baseline}
    print(f"\n[backpressure] {elapsed:.1f} s; peak RSS growth per worker (MB): "
          + ", ".join(f"{pid}: {mb:.1f}" for pid, mb in growth_mb.items()))

    assert error is None, repr(error)  # includes the count: assert_that fails the job
    sources = [n for n in os.listdir(tmp_path) if n.startswith("source-")]
    consumers = [n for n in os.listdir(tmp_path) if n.startswith("consumer-")]
    assert len(sources) == len(consumers) == 1
    assert sources[0].split("-")[1] != consumers[0].split("-")[1], \
        "source and consumer ran in the same worker: nothing crossed a pipe"
    assert len(growth_mb) == 2
    assert max(growth_mb.values()) < MAX_GROWTH_MB, growth_mb


# ------------------------------------------------------------------------ 6. a normal job


def test_normal_job_leaves_nothing_and_reports_records_out_per_step():
    before = set(_children(os.getpid()))
    p = beam.Pipeline(argv=ARGV)
    (p | "Numbers" >> beam.Create(range(1000))
       | "Pair" >> beam.Map(lambda n: (n % 7, n))
       | "Sum" >> beam.CombinePerKey(sum)
       | "Format" >> beam.Map(lambda kv: f"{kv[0]}: {kv[1]}"))
    result = p.run()
    result.wait_until_finish()

    counters = result.metrics().query(
        MetricsFilter().with_namespace(SYSTEM_NAMESPACE).with_name("records_out"))["counters"]
    records_out = {r.key.step: r.committed for r in counters}
    read_steps = [step for step in records_out if step.startswith("Numbers")]
    assert len(read_steps) == 1, records_out
    assert records_out[read_steps[0]] == 1000
    assert records_out["Pair"] == 1000
    assert records_out["Sum"] == 7
    assert records_out["Format"] == 7
    assert set(_children(os.getpid())) == before
