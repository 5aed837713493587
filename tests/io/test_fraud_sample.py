"""samples/fraud_detection.py end to end on the test broker (both runners), and its
self-check failing on a duplicated alert."""
import importlib.util
import json
import os

import pytest

pytest.importorskip("confluent_kafka")

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "samples", "fraud_detection.py")


@pytest.fixture(scope="module")
def fraud():
    spec = importlib.util.spec_from_file_location("fraud_detection", SAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_runs_and_checks_its_output(fraud, kafka_bootstrap, capsys):
    assert fraud.main(["--bootstrap_servers", kafka_bootstrap, "--payments", "1500",
                       "--users", "50", "--parallelism=2"]) == 0
    assert "each exactly once" in capsys.readouterr().out


@pytest.mark.no_pipeline
def test_the_check_catches_a_duplicated_alert(fraud, kafka_bootstrap, kafka_topic):
    payments = fraud.generate_payments(30, 800, seed=3)
    alerts = sorted(fraud.expected_alerts(payments))
    assert alerts, "the generator plants fraud"
    topics = {"alerts": kafka_topic(1), "spend": kafka_topic(1)}
    from headrace.testing.kafka import produce

    records = [(0, u.encode(), json.dumps({"user": u, "small": s, "large": g}).encode(), 1.0)
               for u, s, g in alerts + [alerts[0]]]
    produce(kafka_bootstrap, topics["alerts"], records)
    with pytest.raises(SystemExit, match=rf"FAILED: {len(alerts) + 1} alerts "
                                         rf"\({len(alerts)} distinct\)"):
        fraud.check(kafka_bootstrap, topics, payments)
