"""A checkpoint storage outage on the multiprocess runner: while every upload to S3 fails
(refused, so no retry can help), checkpoints are aborted and the job goes on; once the store
takes writes again, later checkpoints complete and the results are exact."""
from __future__ import annotations

import logging
import threading
from collections import Counter

import pytest
from state.checkpoint_storage_support import FlakyS3Proxy, new_bucket

import headrace as beam
from headrace.io.generator import GenerateEvents, GeneratorSource
from headrace.runners.state.checkpoint_storage import open_checkpoint_storage
from headrace.testing.util import assert_that, equal_to

EVENTS = 6000


@pytest.fixture(autouse=True)
def _multiprocess_only(runner):
    if runner != "multiprocess":
        pytest.skip("checkpoints are taken by the multiprocess runner")


def _expected_counts():
    counts: Counter = Counter()
    source = GeneratorSource(GenerateEvents(num_events=EVENTS, num_keys=20,
                                            num_splits=2).config, True)
    for split in source.split(2):
        reader = split.open()
        while (batch := reader.read_batch(1000)) is not None:
            counts.update(event[0] for event in batch)
    return sorted(counts.items())


def test_failed_uploads_abort_checkpoints_and_later_ones_complete(s3_env, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="headrace")
    bucket = new_bucket()  # made straight on the server, before the outage
    proxy = FlakyS3Proxy(s3_env, every=0)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    url = f"s3://{bucket}/jobs/outage"
    proxy.fail_puts, proxy.fail_puts_status = True, 403
    stop = threading.Event()

    def end_outage():
        """The store comes back 1 s after it first refused an upload (the job is paced to
        outlast that)."""
        while not proxy.refused and not stop.wait(0.02):
            pass
        if not stop.wait(1.0):
            proxy.fail_puts = False

    recovery = threading.Thread(target=end_outage, daemon=True)
    recovery.start()
    try:
        p = beam.Pipeline(argv=["--runner=multiprocess", "--parallelism=2", "--quiet",
                                f"--checkpoint_dir={url}", "--checkpoint_interval=0.2",
                                "--checkpoints_retained=50"])
        counts = (p | GenerateEvents(num_events=EVENTS, num_keys=20, events_per_second=1500,
                                     num_splits=2)
                  | beam.Map(lambda e: (e[0], 1)) | beam.CombinePerKey(sum))
        assert_that(counts, equal_to(_expected_counts()))
        p.run().wait_until_finish()
    finally:
        stop.set()
        recovery.join(timeout=10)
        proxy.close()
    aborted = [r.message for r in caplog.records if "aborted" in r.message]
    assert aborted, "no checkpoint was aborted during the outage"
    aborted_ids = {int(message.split()[1]) for message in aborted}
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env)  # the proxy is gone
    with open_checkpoint_storage(url, read_only=True) as storage:
        complete = storage.checkpoint_ids()
    assert complete and max(complete) > max(aborted_ids)
    assert not aborted_ids & set(complete)
