"""Restart strategies: the policies themselves, and real worker deaths (SIGKILL) on the
multiprocess runner restarted by them."""
import argparse
import logging
import os
import random
import signal

import pytest

import headrace as beam
from headrace.runners.engine.restart import (
    ExponentialDelayRestartStrategy,
    FixedDelayRestartStrategy,
    NoRestartStrategy,
    restart_strategy_from_options,
    run_with_restarts,
)
from headrace.runners.multiprocess.coordinator import WorkerFailed
from headrace.sdk.options import OptionsError, PipelineOptions
from headrace.sdk.options.recovery import restart_strategy_name
from headrace.testing.processes import live_children
from headrace.testing.util import assert_that, equal_to

pytestmark = pytest.mark.no_pipeline


# ------------------------------------------------------------------------ the strategies


def test_fixed_delay_allows_its_attempts_then_gives_up():
    strategy = FixedDelayRestartStrategy(attempts=3, delay=2.5)
    assert [strategy.next_delay(t) for t in range(5)] == [2.5, 2.5, 2.5, None, None]
    assert strategy.restarts == 3


def test_fixed_delay_without_limit_keeps_restarting():
    strategy = FixedDelayRestartStrategy(attempts=None, delay=0)
    assert all(strategy.next_delay(t) == 0 for t in range(1000))


def test_exponential_delay_grows_caps_and_resets_after_a_healthy_run():
    strategy = ExponentialDelayRestartStrategy(initial_backoff=0.5, max_backoff=3,
                                               backoff_multiplier=2, jitter=0,
                                               reset_backoff_threshold=100)
    assert [strategy.next_delay(t) for t in (0, 1, 2, 3, 4)] == [0.5, 1, 2, 3, 3]
    # 4 + 3 (the last delay) + 99 s of running: not yet a reset.
    assert strategy.next_delay(4 + 3 + 99) == 3
    assert strategy.next_delay(106 + 3 + 100) == 0.5


def test_exponential_delay_jitter_stays_within_its_fraction():
    strategy = ExponentialDelayRestartStrategy(initial_backoff=10, max_backoff=10, jitter=0.1,
                                               rng=random.Random(1))
    delays = [strategy.next_delay(t) for t in range(200)]
    assert all(9.0 <= d <= 11.0 for d in delays)
    assert len(set(delays)) > 100  # really spread


def test_exponential_delay_attempts_count_since_the_last_reset():
    strategy = ExponentialDelayRestartStrategy(initial_backoff=1, jitter=0, attempts=2,
                                               reset_backoff_threshold=10)
    assert strategy.next_delay(0) == 1 and strategy.next_delay(1) == 1.5
    assert strategy.next_delay(2) is None
    strategy = ExponentialDelayRestartStrategy(initial_backoff=1, jitter=0, attempts=2,
                                               reset_backoff_threshold=10)
    strategy.next_delay(0), strategy.next_delay(1)
    assert strategy.next_delay(1 + 1.5 + 10) == 1  # reset: two more allowed


@pytest.mark.parametrize("argv, expected", [
    ([], "none"),
    (["--checkpoint_interval=0.5"], "fixed-delay (attempts unlimited, delay 1 s)"),
    (["--checkpoint_interval=0.5", "--restart_strategy=none"], "none"),
    (["--restart_strategy=fixed-delay"], "fixed-delay (attempts 1, delay 1 s)"),
    (["--restart_strategy=fixeddelay", "--restart_attempts=4", "--restart_delay=0"],
     "fixed-delay (attempts 4, delay 0 s)"),
    (["--restart_strategy=exponential-delay", "--restart_initial_backoff=0.1",
      "--restart_max_backoff=2", "--restart_backoff_multiplier=3", "--restart_jitter=0.5"],
     "exponential-delay (initial 0.1 s, max 2 s, x3, jitter 0.5, attempts unlimited)"),
])
def test_strategy_from_options_follows_flinks_defaults(argv, expected):
    assert restart_strategy_from_options(PipelineOptions(argv)).describe() == expected


@pytest.mark.parametrize("flag", ["--restart_strategy=sometimes", "--restart_attempts=0",
                                  "--restart_delay=-1", "--restart_backoff_multiplier=0.5",
                                  "--restart_jitter=2"])
def test_bad_restart_options_name_the_flag(flag):
    with pytest.raises(ValueError, match=flag.split("=")[0]):
        PipelineOptions([flag])


def test_bad_strategy_assigned_in_code_names_the_option():
    from headrace.sdk.options import RecoveryOptions

    view = PipelineOptions([]).view_as(RecoveryOptions)
    with pytest.raises(OptionsError, match="restart_strategy"):
        view.restart_strategy = "later"
    with pytest.raises(argparse.ArgumentTypeError):
        restart_strategy_name(3)


def test_run_with_restarts_logs_each_cause_and_reraises_the_last_failure(caplog):
    def always_fails(n):
        raise WorkerFailed(f"worker 1 died (attempt {n})\nmore detail")

    slept = []
    with caplog.at_level(logging.WARNING, logger="headrace.restart"):
        with pytest.raises(WorkerFailed, match=r"attempt 2") as raised:
            run_with_restarts(always_fails, FixedDelayRestartStrategy(2, 0.25),
                              sleep=slept.append)
    assert slept == [0.25, 0.25]
    restarts = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(restarts) == 2
    assert "restart 1" in restarts[0] and "WorkerFailed: worker 1 died (attempt 0)" in restarts[0]
    assert "more detail" not in restarts[0]
    assert any("restarted 2 time(s)" in note for note in raised.value.__notes__)


def test_run_with_restarts_does_not_restart_what_is_not_recoverable():
    calls = []

    def interrupted(n):
        calls.append(n)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_with_restarts(interrupted, FixedDelayRestartStrategy(None, 0))
    assert calls == [0]
    with pytest.raises(ValueError):
        run_with_restarts(lambda n: calls.append(n) or int("x"), NoRestartStrategy())
    assert calls == [0, 0]  # a second run, not restarted


# ------------------------------------------------- real worker deaths, multiprocess runner


def _live_children():
    return live_children(os.getpid())


class KillOwnWorker(beam.DoFn):
    """SIGKILLs the worker it runs in on element ``victim``, in the first ``kills`` attempts
    (a file per kill in ``directory`` tells later attempts what happened)."""

    def __init__(self, directory, victim, kills):
        self.directory, self.victim, self.kills = str(directory), victim, kills

    def process(self, element):
        if element == self.victim and len(os.listdir(self.directory)) < self.kills:
            open(os.path.join(self.directory, f"kill-{len(os.listdir(self.directory))}"),
                 "x").close()
            os.kill(os.getpid(), signal.SIGKILL)
        yield element


def _job(tmp_path, kills, extra_argv):
    kills_dir = tmp_path / "kills"
    kills_dir.mkdir()
    argv = ["--runner=multiprocess", "--parallelism=2", "--quiet", *extra_argv]
    with beam.Pipeline(argv=argv) as p:
        counts = (p | beam.Create(list(range(200)))
                  | beam.ParDo(KillOwnWorker(kills_dir, victim=123, kills=kills))
                  | beam.Map(lambda n: (n % 7, 1)) | beam.CombinePerKey(sum))
        assert_that(counts, equal_to([(k, len(range(k, 200, 7))) for k in range(7)]))
    return sorted(os.listdir(kills_dir))


def test_killed_worker_is_restarted_by_fixed_delay_and_the_job_completes(tmp_path, caplog):
    before = set(_live_children())
    with caplog.at_level(logging.WARNING, logger="headrace.restart"):
        kills = _job(tmp_path, 2, ["--restart_strategy=fixed-delay", "--restart_attempts=3",
                                   "--restart_delay=0.1"])
    assert kills == ["kill-0", "kill-1"]
    restarts = [r.getMessage() for r in caplog.records if "restarting the job" in r.getMessage()]
    assert len(restarts) == 2, restarts
    assert all("killed by signal SIGKILL" in line for line in restarts), restarts
    assert set(_live_children()) <= before


def test_killed_worker_fails_the_job_when_restarts_are_exhausted(tmp_path):
    before = set(_live_children())
    with pytest.raises(WorkerFailed, match="killed by signal SIGKILL") as raised:
        _job(tmp_path, 5, ["--restart_strategy=exponential-delay", "--restart_attempts=1",
                           "--restart_initial_backoff=0.05", "--restart_jitter=0"])
    assert any("restarted 1 time(s)" in note for note in raised.value.__notes__)
    assert set(_live_children()) <= before


def test_without_checkpoints_the_default_is_no_restart(tmp_path):
    with pytest.raises(WorkerFailed, match="killed by signal SIGKILL"):
        _job(tmp_path, 1, [])


@pytest.mark.parametrize("flag", ["--from_checkpoint=/tmp/nowhere", "--savepoint_dir=/tmp/x"])
def test_direct_runner_refuses_recovery_options(flag):
    with pytest.raises(OptionsError, match=flag.split("=")[0] + ": the direct runner"):
        with beam.Pipeline(argv=["--runner=direct", flag]) as p:
            _ = p | beam.Create([1])


def test_from_checkpoint_without_a_checkpoint_is_a_clear_error(tmp_path):
    from headrace.runners.engine.recovery import RestoreError

    (tmp_path / "empty").mkdir()
    for path, message in [(tmp_path / "empty", "no complete checkpoint or savepoint there"),
                          (tmp_path / "missing", "no such directory")]:
        with pytest.raises(RestoreError, match=message):
            with beam.Pipeline(argv=["--runner=multiprocess", "--parallelism=1", "--quiet",
                                     f"--from_checkpoint={path}"]) as p:
                _ = p | beam.Create([1])
