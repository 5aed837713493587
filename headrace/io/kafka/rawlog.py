"""Kafka's log as it is on the broker: record batches (the v2 format) fetched raw from a
partition's leader and parsed here, and the outcome of every transaction resolved from the
COMMIT/ABORT control markers per producer id, as Kafka's broker and consumers do together.

The exactly-once sink reads its progress partition this way at a restore (what committed
is then known from the control markers themselves, whatever the broker shows through
consumer APIs), and :mod:`headrace.testing.read_committed` builds its oracle on it.

Transactions, per producer id: its data batches since its previous control marker form
one transaction; the next COMMIT marker publishes them, the next ABORT marker discards
them, and without a marker yet the transaction is open. A data batch of the producer id
with a higher producer epoch than the open transaction means the old epoch's transaction
ended without a marker (Kafka always writes an ABORT marker when it fences an epoch): it
counts as aborted by fencing and is reported in :attr:`Outcomes.unmarked_fenced`.

The fetch speaks Kafka's plaintext protocol (no TLS or SASL).

>>> [r.value for r in decode_records(_example_batch())]
[b'v0', b'v1']
>>> b = _example_batch()
>>> resolve_transactions(decode_batches(b)).outcome  # not transactional: no outcome
{}
"""
from __future__ import annotations

import socket
import struct
import time
import zlib
from typing import Dict, List, NamedTuple, Optional, Tuple

#: Kafka API keys and the versions this client speaks (Fetch v4: isolation level, v2 batches).
_FETCH, _FETCH_VERSION = 1, 4
_READ_UNCOMMITTED = 0
_FETCH_WAIT_MS = 100
_TRANSACTIONAL, _CONTROL = 0x10, 0x20
_ABORT, _COMMIT = 0, 1
_BATCH_HEADER = struct.Struct(">qiiBiHiqqqhi")  # from baseOffset to the record count


class Record(NamedTuple):
    """One data record of the log, with the transaction facts of its batch."""

    offset: int
    timestamp_ms: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: Tuple[Tuple[str, Optional[bytes]], ...]
    producer_id: int
    producer_epoch: int
    transactional: bool


class Batch(NamedTuple):
    """A decoded record batch (magic 2)."""

    base_offset: int
    last_offset: int
    producer_id: int
    producer_epoch: int
    transactional: bool
    control: bool
    records: List[Record]
    #: For a control batch: "COMMIT" or "ABORT".
    marker: Optional[str]


# ---------------------------------------------------------------------------------------
# The wire protocol: just enough for Fetch.

def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    """A zig-zag varint (Kafka records' lengths and deltas)."""
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _bytes_field(data: bytes, pos: int) -> Tuple[Optional[bytes], int]:
    length, pos = _varint(data, pos)
    if length < 0:
        return None, pos
    return bytes(data[pos:pos + length]), pos + length


def _decompress(codec: int, payload: bytes) -> bytes:
    if codec == 0:
        return payload
    if codec == 1:
        return zlib.decompress(payload, 16 + zlib.MAX_WBITS)
    names = {2: "snappy", 3: "lz4", 4: "zstd"}
    if codec == 4:
        try:
            import zstandard
        except ImportError:
            pass
        else:
            return zstandard.ZstdDecompressor().decompressobj().decompress(payload)
    raise ValueError(f"Kafka raw log: record batches compressed with "
                     f"{names.get(codec, codec)} are not supported; produce uncompressed, "
                     f"or with gzip or zstd (with the zstandard package)")


def decode_batches(data: bytes) -> List[Batch]:
    """Decode the complete v2 record batches in a Fetch response's ``records`` bytes (a
    trailing partial batch, which brokers may return at the size limit, is left out)."""
    batches = []
    pos = 0
    while pos + 61 <= len(data):
        (base_offset, length, _leader_epoch, magic, _crc, attributes, last_delta,
         first_ts, _max_ts, producer_id, producer_epoch, _base_seq) = \
            _BATCH_HEADER.unpack_from(data, pos)[:12]
        end = pos + 12 + length
        if end > len(data):
            break
        if magic != 2:
            raise ValueError(f"Kafka raw log: record batch at offset {base_offset} has "
                             f"magic {magic}; only v2 batches (Kafka >= 0.11) carry "
                             f"transactions")
        (count,) = struct.unpack_from(">i", data, pos + 57)
        body = _decompress(attributes & 0x07, bytes(data[pos + 61:end]))
        transactional = bool(attributes & _TRANSACTIONAL)
        control = bool(attributes & _CONTROL)
        records = []
        rpos = 0
        for _ in range(count):
            _length, rpos = _varint(body, rpos)
            rpos += 1  # record attributes (unused)
            ts_delta, rpos = _varint(body, rpos)
            offset_delta, rpos = _varint(body, rpos)
            key, rpos = _bytes_field(body, rpos)
            value, rpos = _bytes_field(body, rpos)
            num_headers, rpos = _varint(body, rpos)
            headers = []
            for _h in range(num_headers):
                name, rpos = _bytes_field(body, rpos)
                header_value, rpos = _bytes_field(body, rpos)
                headers.append(((name or b"").decode("utf-8"), header_value))
            records.append(Record(base_offset + offset_delta, first_ts + ts_delta, key, value,
                                  tuple(headers), producer_id, producer_epoch, transactional))
        marker = None
        if control:
            if not records or records[0].key is None or len(records[0].key) < 4:
                raise ValueError(f"Kafka raw log: malformed control batch at offset "
                                 f"{base_offset}")
            _version, kind = struct.unpack_from(">hh", records[0].key)
            marker = {_ABORT: "ABORT", _COMMIT: "COMMIT"}.get(kind, f"type {kind}")
        batches.append(Batch(base_offset, base_offset + last_delta, producer_id, producer_epoch,
                             transactional, control, records, marker))
        pos = end
    return batches


def decode_records(data: bytes) -> List[Record]:
    """The data records of the batches in ``data`` (control records left out)."""
    return [r for b in decode_batches(data) if not b.control for r in b.records]


class _Connection:
    """A blocking connection to one broker speaking Kafka's request/response framing."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.correlation = 0

    def request(self, api_key: int, version: int, body: bytes) -> bytes:
        self.correlation += 1
        client = b"headrace-rawlog"
        header = struct.pack(">hhih", api_key, version, self.correlation, len(client)) + client
        message = header + body
        self.sock.sendall(struct.pack(">i", len(message)) + message)
        (size,) = struct.unpack(">i", self._read(4))
        payload = self._read(size)
        (correlation,) = struct.unpack_from(">i", payload)
        if correlation != self.correlation:
            raise ConnectionError(f"Kafka raw log: response {correlation} to request "
                                  f"{self.correlation}")
        return payload[4:]

    def _read(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self.sock.recv(size - len(chunks))
            if not chunk:
                raise ConnectionError("Kafka raw log: the broker closed the connection")
            chunks += chunk
        return bytes(chunks)

    def close(self) -> None:
        self.sock.close()


def _string(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack(">h", len(raw)) + raw


def _fetch(conn: _Connection, topic: str, partition: int, offset: int,
           max_bytes: int) -> Tuple[int, bytes]:
    """One Fetch v4 (read_uncommitted) of ``topic``/``partition`` from ``offset``:
    ``(high_watermark, records bytes)``."""
    # min_bytes 1 with a short wait: some brokers answer min_bytes 0 with no partitions.
    body = (struct.pack(">iiiib", -1, _FETCH_WAIT_MS, 1, max_bytes, _READ_UNCOMMITTED)
            + struct.pack(">i", 1) + _string(topic)
            + struct.pack(">iiqi", 1, partition, offset, max_bytes))
    data = conn.request(_FETCH, _FETCH_VERSION, body)
    pos = 4  # throttle time
    (num_topics,) = struct.unpack_from(">i", data, pos)
    pos += 4
    for _ in range(num_topics):
        (name_len,) = struct.unpack_from(">h", data, pos)
        pos += 2 + name_len
        (num_partitions,) = struct.unpack_from(">i", data, pos)
        pos += 4
        for _p in range(num_partitions):
            index, error, high_watermark, _lso, num_aborted = struct.unpack_from(">ihqqi",
                                                                                data, pos)
            pos += 26 + max(num_aborted, 0) * 16
            (size,) = struct.unpack_from(">i", data, pos)
            pos += 4
            records = data[pos:pos + max(size, 0)]
            pos += max(size, 0)
            if index == partition:
                if error:
                    raise RuntimeError(f"Kafka raw log: fetching {topic!r} partition "
                                       f"{partition} at offset {offset} failed with Kafka "
                                       f"error code {error}")
                return high_watermark, records
    return -1, b""  # nothing at or after offset within the wait


def _leader_address(bootstrap_servers: str, topic: str, partition: int,
                    timeout: float) -> Tuple[str, int]:
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": bootstrap_servers}).list_topics(
        timeout=timeout)
    meta = metadata.topics.get(topic)
    if meta is None or partition not in meta.partitions:
        raise LookupError(f"Kafka raw log: topic {topic!r} partition {partition} "
                          f"does not exist on {bootstrap_servers}")
    broker = metadata.brokers[meta.partitions[partition].leader]
    return broker.host, broker.port


def fetch_batches(bootstrap_servers: str, topic: str, partition: int = 0,
                  timeout: float = 10.0, max_bytes: int = 4 << 20) -> List[Batch]:
    """Every record batch of a partition, in log order, read raw from its leader.

    Reads up to the high watermark: an empty answer below it is retried until ``timeout``
    (a broker may answer so while it reloads the log), then raises naming the offset, so
    that a hole never passes for the end of the log."""
    host, port = _leader_address(bootstrap_servers, topic, partition, timeout)
    conn = _Connection(host, port, timeout)
    batches: List[Batch] = []
    try:
        offset, empty_since = 0, None
        while True:
            high_watermark, records = _fetch(conn, topic, partition, offset, max_bytes)
            fetched = [b for b in decode_batches(records) if b.last_offset >= offset]
            if not fetched:
                if records and len(records) >= max_bytes:
                    max_bytes *= 2  # one batch larger than the limit
                    continue
                if offset >= high_watermark:
                    return batches
                empty_since = empty_since if empty_since is not None else time.monotonic()
                if time.monotonic() - empty_since > timeout:
                    raise RuntimeError(
                        f"{topic}/{partition} on {host}:{port}: the broker returns no batch "
                        f"at offset {offset}, below its high watermark {high_watermark}")
                time.sleep(0.05)
                continue
            empty_since = None
            batches.extend(fetched)
            offset = fetched[-1].last_offset + 1
    finally:
        conn.close()



class Outcomes(NamedTuple):
    """Transactions of a partition resolved from its control markers."""

    #: ``base_offset`` of each transactional data batch -> "COMMIT" or "ABORT" (open ones
    #: are left out).
    outcome: Dict[int, str]
    #: Per producer id still in a transaction: the first offset of that open transaction.
    open_first_offset: Dict[int, int]
    #: (producer_id, old_epoch, new_epoch) where an epoch's transaction ended by fencing
    #: without an ABORT marker in the log.
    unmarked_fenced: List[Tuple[int, int, int]]


def resolve_transactions(batches: List[Batch]) -> Outcomes:
    """The outcome of every transactional data batch of a partition (``batches`` in log
    order), from the control markers alone: no last stable offset, no broker filtering."""
    open_txns: Dict[int, Tuple[int, List[Batch]]] = {}
    outcome: Dict[int, str] = {}
    unmarked: List[Tuple[int, int, int]] = []
    for batch in batches:
        pid = batch.producer_id
        if batch.control:
            _epoch, pending = open_txns.pop(pid, (None, []))
            for data_batch in pending:
                outcome[data_batch.base_offset] = ("COMMIT" if batch.marker == "COMMIT"
                                                   else "ABORT")
            continue
        if not batch.transactional:
            continue
        epoch, pending = open_txns.get(pid, (batch.producer_epoch, []))
        if pending and batch.producer_epoch > epoch:
            unmarked.append((pid, epoch, batch.producer_epoch))
            for data_batch in pending:
                outcome[data_batch.base_offset] = "ABORT"
            pending = []
        pending.append(batch)
        open_txns[pid] = (batch.producer_epoch, pending)
    return Outcomes(outcome, {pid: pending[0].base_offset
                              for pid, (_e, pending) in open_txns.items()}, unmarked)


def _example_batch() -> bytes:
    """A two-record, non-transactional v2 batch (for the docstring example)."""
    def varint(n: int) -> bytes:
        n = (n << 1) ^ (n >> 63)
        out = bytearray()
        while True:
            if n < 0x80:
                out.append(n)
                return bytes(out)
            out.append((n & 0x7F) | 0x80)
            n >>= 7

    body = b""
    for i in range(2):
        value = f"v{i}".encode()
        record = (b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(value)) + value
                  + varint(0))
        body += varint(len(record)) + record
    header = struct.pack(">iBiHiqqqhii", 0, 2, 0, 0, 1, 0, 0, -1, -1, -1, 2)
    return struct.pack(">qi", 0, len(header) + len(body)) + header + body


