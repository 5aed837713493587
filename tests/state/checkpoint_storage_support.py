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
