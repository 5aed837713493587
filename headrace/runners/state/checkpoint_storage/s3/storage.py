"""Checkpoint storage in an S3 bucket (or any S3-compatible store: MinIO, moto...) via boto3.

The endpoint, credentials and region come from the usual AWS settings
(``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_DEFAULT_REGION``, ``AWS_PROFILE`` and the shared config files).
Throttling and 5xx answers are retried by botocore with backoff ("standard"
retry mode). Files over ``multipart_threshold`` are uploaded in parts. The
commit is a conditional put (``If-None-Match: *``): of two writers of one
checkpoint's ``_metadata``, the second is refused with 412.

>>> parse_s3_url("s3://bucket/jobs/a/")
('bucket', 'jobs/a/')
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

from headrace.runners.state.checkpoint_storage.base import CheckpointStorage
from headrace.runners.state.checkpoint_storage.base.errors import (
    CheckpointStorageConfigError,
    CheckpointStorageError,
)

DEFAULT_MULTIPART_THRESHOLD = 64 << 20
_DELETE_BATCH = 1000
# Answers to a conditional put that mean "try again": a concurrent conditional write
# to the same key (409), or a transient error botocore's retries gave up on.
_CONDITIONAL_RETRIES = 5


def parse_s3_url(url: str) -> Tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix ending with '/' or empty)."""
    if not url.startswith("s3://"):
        raise CheckpointStorageConfigError(f"--checkpoint_dir {url}: not an s3:// URL")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise CheckpointStorageConfigError(
            f"--checkpoint_dir {url}: no bucket (expected s3://bucket/prefix)")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise CheckpointStorageConfigError(
            "an s3:// --checkpoint_dir needs boto3: pip install 'headrace[s3]'") from None
    return boto3


class S3CheckpointStorage(CheckpointStorage):
    """Checkpoints under ``s3://bucket/prefix``; the bucket must exist."""

    _TRANSIENT = CheckpointStorage._TRANSIENT + ("_client", "_transfer", "_client_lock")

    def __init__(self, url: str, *, multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
                 multipart_chunksize: Optional[int] = None, retry_mode: str = "standard",
                 max_attempts: int = 8, validate: bool = True, **kwargs: Any) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        _boto3()
        super().__init__(f"s3://{self.bucket}/{self.prefix}", **kwargs)
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize or max(multipart_threshold, 5 << 20)
        self.retry_mode = retry_mode
        self.max_attempts = max_attempts
        if validate:
            self._check_bucket()

    def _init_transient(self) -> None:
        super()._init_transient()
        self._client_lock = threading.Lock()
        self._client: Optional[Tuple[int, Any, Any]] = None

    def _clients(self) -> Tuple[Any, Any]:
        """(client, transfer config), made once per process (clients are not fork-safe)."""
        with self._client_lock:
            if self._client is None or self._client[0] != os.getpid():
                boto3 = _boto3()
                from boto3.s3.transfer import TransferConfig
                from botocore.config import Config

                config = Config(retries={"mode": self.retry_mode,
                                         "max_attempts": self.max_attempts},
                                # each upload thread may run a multipart transfer of 4
                                max_pool_connections=4 * self.upload_threads + 4)
                client = boto3.session.Session().client("s3", config=config)
                transfer = TransferConfig(multipart_threshold=self.multipart_threshold,
                                          multipart_chunksize=self.multipart_chunksize,
                                          max_concurrency=4)
                self._client = (os.getpid(), client, transfer)
            return self._client[1], self._client[2]

    @property
    def client(self) -> Any:
        """The boto3 S3 client this process uses."""
        return self._clients()[0]

    def _check_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = _code(exc)
            if code in ("404", "NoSuchBucket"):
                raise CheckpointStorageConfigError(
                    f"--checkpoint_dir {self.url}: bucket {self.bucket!r} does not exist "
                    f"(create it first)") from None
            if code in ("403", "AccessDenied"):
                raise CheckpointStorageConfigError(
                    f"--checkpoint_dir {self.url}: access to bucket {self.bucket!r} denied "
                    f"(check the AWS credentials)") from None
            raise CheckpointStorageConfigError(
                f"--checkpoint_dir {self.url}: bucket {self.bucket!r}: {exc}") from None
        except BotoCoreError as exc:
            raise CheckpointStorageConfigError(
                f"--checkpoint_dir {self.url}: cannot reach S3 ({exc}; endpoint from "
                f"AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)") from None

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def _write_file(self, key: str, path: Path) -> None:
        client, transfer = self._clients()
        client.upload_file(str(path), self.bucket, self._key(key), Config=transfer)

    def _write_if_absent(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        for attempt in range(_CONDITIONAL_RETRIES):
            try:
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                       IfNoneMatch="*")
                return True
            except ClientError as exc:
                code = _code(exc)
                if code in ("PreconditionFailed", "412"):
                    return False
                retryable = code in ("ConditionalRequestConflict", "409") or _status(exc) >= 500
                if not retryable or attempt == _CONDITIONAL_RETRIES - 1:
                    raise CheckpointStorageError(
                        f"{self.url}: committing {key} failed: {exc}") from None
            time.sleep(0.05 * 2 ** attempt)
        return False

    def _read_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from None
            raise
        return response["Body"].read()

    def _read_to_file(self, key: str, path: Path) -> None:
        from botocore.exceptions import ClientError

        client, transfer = self._clients()
        try:
            client.download_file(self.bucket, self._key(key), str(path), Config=transfer)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from None
            raise

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return False
            raise
        return True

    def _list(self, prefix: str) -> Iterator[Tuple[str, int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.prefix)
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for item in page.get("Contents", ()):
                yield item["Key"][strip:], int(item["Size"])

    def _delete(self, keys: List[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start:start + _DELETE_BATCH]
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._key(k)} for k in batch], "Quiet": True})
            errors = [e for e in response.get("Errors", ()) if e.get("Code") != "NoSuchKey"]
            if errors:
                raise CheckpointStorageError(
                    f"{self.url}: deleting {len(errors)} objects failed, e.g. "
                    f"{errors[0].get('Key')}: {errors[0].get('Message')}")


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
