"""Fixtures for the checkpoint storage tests: a moto S3 server on loopback, and one
storage per backend (a temporary directory, a fresh bucket on that server).

Imported by the test modules (not a conftest, so that other tests under tests/state
do not start a server). AWS settings are set only while an S3 test runs.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest

from headrace.runners.state.checkpoint_storage import CheckpointStorage, open_checkpoint_storage

STORAGES = ["local", "s3"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server) over HTTP on a free loopback port, for the session."""
    pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = None
    for _ in range(3):  # another process may take the free port before the server does
        port = _free_port()
        candidate = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port,
                                                     verbose=False)
        try:
            with contextlib.redirect_stdout(None):
                candidate.start()
        except OSError:
            continue
        server = candidate
        break
    if server is None:
        pytest.fail("could not start moto's S3 server on a loopback port")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """AWS settings pointing boto3 at the moto server (the usual variables, no profile)."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return moto_endpoint


def new_bucket() -> str:
    import boto3

    name = f"ckpt-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=STORAGES)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh checkpoint location: a directory, or a prefix in a new bucket."""
    if request.param == "local":
        return str(tmp_path / "checkpoints")
    request.getfixturevalue("s3_env")
    return f"s3://{new_bucket()}/jobs/job-1"


@pytest.fixture
def open_storage(storage_url: str) -> Iterator[Callable[..., CheckpointStorage]]:
    """Opens storages on ``storage_url`` (several may be open, as after a restart); all are
    closed at the end of the test."""
    opened: List[CheckpointStorage] = []

    def make(**kwargs) -> CheckpointStorage:
        storage = open_checkpoint_storage(storage_url, **kwargs)
        opened.append(storage)
        return storage

    yield make
    for storage in opened:
        storage.close()


def stored_objects(url: str) -> Dict[str, bytes]:
    """Every object under a checkpoint location, read without the storage under test."""
    if url.startswith("s3://"):
        import boto3

        bucket, _, prefix = url[len("s3://"):].partition("/")
        client = boto3.client("s3")
        out = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=prefix + "/"):
            for item in page.get("Contents", ()):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                out[item["Key"][len(prefix) + 1:]] = body
        return out
    root = Path(url)
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")}


def put_object(url: str, key: str, data: bytes) -> None:
    """Write an object behind the storage's back (to corrupt or fake a crash's leftovers)."""
    if url.startswith("s3://"):
        import boto3

        bucket, _, prefix = url[len("s3://"):].partition("/")
        boto3.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)
    else:
        path = Path(url, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def delete_object(url: str, key: str) -> None:
    if url.startswith("s3://"):
        import boto3

        bucket, _, prefix = url[len("s3://"):].partition("/")
        boto3.client("s3").delete_object(Bucket=bucket, Key=f"{prefix}/{key}")
    else:
        os.unlink(Path(url, key))


def write_files(directory: Path, files: Dict[str, bytes]) -> Dict[str, Path]:
    """A task's local snapshot: files by name under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        paths[name] = path
    return paths


class FlakyS3Proxy:
    """An HTTP proxy in front of the S3 server that injects the failures S3 gives under load:
    every ``every``-th request is answered 503 SlowDown without reaching S3, and the first
    PUT of a key ending in ``fail_after_suffix`` reaches S3 but its answer is replaced by a
    500 (the write happened; the client cannot know)."""

    def __init__(self, upstream: str, every: int = 3, fail_after_suffix: str = "") -> None:
        import http.client
        import http.server
        import threading
        import urllib.parse

        self.every = every
        self.fail_after_suffix = fail_after_suffix
        #: While True every PUT is answered ``fail_puts_status`` without reaching S3.
        self.fail_puts = False
        self.fail_puts_status = 500
        self.refused = 0
        self.requests = 0
        self.injected = 0
        self.failed_after = []
        self._lock = threading.Lock()
        target = urllib.parse.urlsplit(upstream)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes: without this, Nagle's
                # algorithm and delayed ACKs add 40 ms to every answer.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

            def _reply(self, status: int, body: bytes, headers=()) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                body = self._body()
                with proxy._lock:
                    proxy.requests += 1
                    inject = proxy.every and proxy.requests % proxy.every == 0
                    outage = proxy.fail_puts and self.command == "PUT"
                    proxy.refused += bool(outage)
                    fail_after = (self.command == "PUT" and proxy.fail_after_suffix
                                  and self.path.split("?")[0].endswith(proxy.fail_after_suffix)
                                  and self.path not in proxy.failed_after)
                    if inject:
                        proxy.injected += 1
                    elif fail_after:
                        proxy.failed_after.append(self.path)
                if outage:
                    code = b"AccessDenied" if proxy.fail_puts_status == 403 else b"InternalError"
                    self._reply(proxy.fail_puts_status,
                                b"<Error><Code>" + code + b"</Code></Error>")
                    return
                if inject:
                    self._reply(503, b"<Error><Code>SlowDown</Code><Message>Please reduce your "
                                     b"request rate.</Message></Error>")
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("transfer-encoding", "connection")}
                headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                finally:
                    conn.close()
                if fail_after:
                    self._reply(500, b"<Error><Code>InternalError</Code><Message>We encountered "
                                     b"an internal error.</Message></Error>")
                    return
                self._reply(response.status, data, response.getheaders())

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
