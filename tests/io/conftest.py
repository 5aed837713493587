"""Fixtures of the IO tests: a Kafka broker for the session (or HEADRACE_KAFKA_BOOTSTRAP)."""
from headrace.testing.kafka import kafka_bootstrap, kafka_topic  # noqa: F401 (fixtures)
