"""Kafka IO (``pip install 'headrace[kafka]'``): ``ReadFromKafka``, ``WriteToKafka`` and a
local broker for development (``KafkaDevBroker``, ``headrace kafka-dev``).

>>> from headrace.io.kafka import ReadFromKafka, WriteToKafka
>>> ReadFromKafka("127.0.0.1:9092", pattern="events-.*").source.display_name()
'Kafka(/events-.*/)'
"""
from headrace.io.kafka.dev import KafkaDevBroker, start_dev_broker
from headrace.io.kafka.read import ReadFromKafka
from headrace.io.kafka.records import DeadLetter, KafkaRecord
from headrace.io.kafka.source import KafkaSource
from headrace.io.kafka.write import WriteToKafka

__all__ = ["DeadLetter", "KafkaDevBroker", "KafkaRecord", "KafkaSource", "ReadFromKafka",
           "WriteToKafka", "start_dev_broker"]
