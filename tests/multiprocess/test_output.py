"""User code's prints and log records reach the driver, on every runner: a worker's copies of
the driver's streams and handlers (pytest's capsys and caplog here) would lose them."""
import logging
import threading

import headrace as beam

LOG = logging.getLogger("headrace.tests.output")


def _print_from_a_thread(n):
    # User code may print from its own threads; their lines must arrive whole.
    thread = threading.Thread(target=print, args=(f"thread {n}",))
    thread.start()
    thread.join()
    return n


def test_prints_reach_the_drivers_stdout(capsys):
    with beam.Pipeline(argv=["--parallelism=2", "--quiet"]) as p:
        numbers = p | beam.Create(range(20))
        _ = numbers | beam.Map(lambda n: print(f"line {n}"))
        _ = numbers | beam.Map(_print_from_a_thread)
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == sorted([f"line {n}" for n in range(20)]
                                   + [f"thread {n}" for n in range(20)])


def test_log_records_reach_the_drivers_handlers(caplog):
    def log(n):
        LOG.info("element %d", n)
        if n == 0:
            try:
                raise ValueError("boom")
            except ValueError:
                LOG.exception("failed on %s", object())  # an argument that does not pickle

    with caplog.at_level(logging.INFO, logger="headrace.tests.output"):
        with beam.Pipeline(argv=["--parallelism=2", "--quiet"]) as p:
            _ = p | beam.Create(range(5)) | beam.Map(log)
    records = [r for r in caplog.records if r.name == LOG.name]
    assert sorted(r.getMessage() for r in records if r.levelno == logging.INFO) == [
        f"element {n}" for n in range(5)]
    [failure] = [r for r in records if r.levelno == logging.ERROR]
    assert failure.getMessage().startswith("failed on <object object at")
    assert "ValueError: boom" in caplog.text
