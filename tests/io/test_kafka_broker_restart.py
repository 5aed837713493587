"""The Kafka broker gone mid-run for good: a read-process-write job (tests/io/kafka_eos_job.py:
ReadFromKafka -> keyed state -> WriteToKafka(exactly_once)) on the multiprocess runner with
checkpoints, whose broker is stopped after a few checkpoints, must end once its restart
strategy gives up, with an error naming the sink and the broker, never hang.

(A broker restart mid-run is not tested end to end: the local Tansu loses committed
transactional writes across a restart, see the README's Kafka section.) About 60 s, so
``-m kafka_chaos``."""
import json
import time

import pytest
from test_kafka_exactly_once_e2e import KEYS, Job, _latest_checkpoint

from headrace.io.kafka.dev import KafkaDevBroker
from headrace.testing.kafka import make_topic, produce

pytest.importorskip("confluent_kafka")
pytest.importorskip("rocksdict")
pytestmark = [pytest.mark.no_pipeline, pytest.mark.kafka_chaos]


def test_broker_gone_for_good_ends_the_job_with_a_clear_error(tmp_path):
    with KafkaDevBroker() as broker:  # its own: the test stops it
        bootstrap = broker.bootstrap_servers
        source, sink = make_topic(bootstrap, 4, "gone-in"), make_topic(bootstrap, 3, "gone-out")
        records = 4000
        # records past the first ones arrive only after the broker is gone: the job waits
        produce(bootstrap, source, [(i % 4, f"k{i % KEYS}".encode(), json.dumps(i).encode(),
                                     1.0) for i in range(records // 2)])
        config = {"bootstrap": bootstrap, "input": source, "output": sink,
                  "per_partition": records // 4,
                  "argv": ["--runner=multiprocess", "--parallelism=2", "--quiet",
                           "--state_backend=rocksdb", f"--state_dir={tmp_path / 'state'}",
                           f"--checkpoint_dir={tmp_path / 'checkpoints'}",
                           "--checkpoint_interval=0.2", "--restart_strategy=fixed-delay",
                           "--restart_attempts=2", "--restart_delay=0.5",
                           f"--job_name=gone-{source}"]}
        job = Job(tmp_path, config, 2)
        try:
            deadline = time.monotonic() + 60
            while _latest_checkpoint(str(tmp_path / "checkpoints")) < 3:
                assert job.process.poll() is None, job.text()[-4000:]
                assert time.monotonic() < deadline, f"no checkpoint 3: {job.text()[-4000:]}"
                time.sleep(0.05)
            broker.stop()
            gone = time.monotonic()
            code = job.process.wait(180)
            log = job.text()
            print(f"\njob ended with {code} {time.monotonic() - gone:.1f} s after the broker")
        finally:
            job.close()
    assert code != 0, log[-4000:]
    last = log[log.rfind("Traceback"):]
    assert bootstrap in last, last[-3000:]
    assert f"WriteToKafka({sink})" in last or source in last, last[-3000:]
    assert "restart strategy fixed-delay (attempts 2" in last, last[-3000:]
