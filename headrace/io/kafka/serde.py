"""Key and value (de)serializers for Kafka IO.

A (de)serializer is named (``"bytes"``, ``"str"``, ``"json"``), a one-argument callable,
or a ``confluent_kafka.serialization`` (De)Serializer such as the schema-registry Avro and
Protobuf ones, which are called with a ``SerializationContext`` (topic, field, headers).

>>> deserialize = resolve_deserializer("json", "value", "ReadFromKafka")
>>> deserialize(b'{"n": 1}', "t", None)
{'n': 1}
>>> resolve_serializer("str", "key", "WriteToKafka")("ä", "t", None)
b'\\xc3\\xa4'
"""
from __future__ import annotations

import json
from typing import Any, Callable, Optional

#: ``fn(data, topic, headers)``: the form every resolved (de)serializer takes.
Codec = Callable[[Any, str, Any], Any]


def _decode_str(data: Optional[bytes]) -> Optional[str]:
    return None if data is None else data.decode("utf-8")


def _decode_json(data: Optional[bytes]) -> Any:
    return None if data is None else json.loads(data)


def _encode_str(value: Any) -> Optional[bytes]:
    if value is None or isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise TypeError(f"the 'str' serializer needs str, got {type(value).__name__}")
    return value.encode("utf-8")


def _encode_json(value: Any) -> Optional[bytes]:
    return None if value is None else json.dumps(value, separators=(",", ":")).encode("utf-8")


def _encode_bytes(value: Any) -> Optional[bytes]:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"the 'bytes' serializer needs bytes, got {type(value).__name__}; "
                    f"choose serializer 'str' or 'json' or pass a function")


_DESERIALIZERS = {"bytes": lambda data: data, "str": _decode_str, "json": _decode_json}
_SERIALIZERS = {"bytes": _encode_bytes, "str": _encode_str, "json": _encode_json}


def _confluent(kind: str) -> Optional[type]:
    try:
        from confluent_kafka import serialization
    except ImportError:
        return None
    return getattr(serialization, kind)


def _resolve(spec: Any, field: str, owner: str, table: dict, kind: str) -> Codec:
    if isinstance(spec, str):
        if spec not in table:
            raise ValueError(f"{owner}: unknown {field} {kind.lower()} {spec!r}; use one of "
                             f"{sorted(table)} or a function")
        plain = table[spec]
        return lambda data, topic, headers: plain(data)
    confluent = _confluent(kind)
    if confluent is not None and isinstance(spec, confluent):
        from confluent_kafka.serialization import MessageField, SerializationContext

        message_field = MessageField.KEY if field == "key" else MessageField.VALUE
        return lambda data, topic, headers: spec(
            data, SerializationContext(topic, message_field, headers))
    if callable(spec):
        return lambda data, topic, headers: spec(data)
    raise TypeError(f"{owner}: the {field} {kind.lower()} must be one of {sorted(table)}, a "
                    f"function or a confluent_kafka {kind}, got {spec!r:.100}")


def resolve_deserializer(spec: Any, field: str, owner: str) -> Codec:
    """``fn(data, topic, headers)`` for a named, callable or confluent deserializer."""
    return _resolve(spec, field, owner, _DESERIALIZERS, "Deserializer")


def resolve_serializer(spec: Any, field: str, owner: str) -> Codec:
    """``fn(value, topic, headers)`` for a named, callable or confluent serializer."""
    return _resolve(spec, field, owner, _SERIALIZERS, "Serializer")
